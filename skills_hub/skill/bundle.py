"""A skill's files in memory: safe unpacking of uploads, content hash, deterministic archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

from skills_hub.config import Limits
from skills_hub.errors import ArchiveRejected, InvalidSkill, Problem
from skills_hub.skill.manifest import describe_character, unsafe_character

SKILL_MD = "SKILL.md"
_CHUNK = 64 * 1024
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_DRIVE = re.compile(r"^[A-Za-z]:")
# Git checks files out onto ordinary file systems: NAME_MAX and a sane bound on the whole path
# (the skill's folder in the namespace repository comes on top of it).
MAX_SEGMENT_BYTES = 255
MAX_PATH_BYTES = 1024
# Operating-system clutter dropped from every source; people zip folders on macOS.
_JUNK_NAMES = frozenset({".DS_Store"})
_JUNK_TOP = frozenset({"__MACOSX"})
# Also skipped when reading a local folder (the CLI): build output and version control.
_DIRECTORY_SKIP_DIRS = frozenset({".git", "__pycache__"})


@dataclass(frozen=True)
class Bundle:
    """The files of one skill: posix relative paths to bytes, and which are executable."""

    files: Mapping[str, bytes]
    executables: frozenset[str] = frozenset()
    root_name: str | None = None  # the folder the files came from (stripped), when known

    def content_hash(self) -> str:
        """sha256 of 'path:sha256(data)' lines in path order (ClawHub's fingerprint)."""
        hashes = self.file_hashes()
        lines = "\n".join(f"{path}:{hashes[path]}" for path in sorted(self.files))
        return hashlib.sha256(lines.encode("utf-8")).hexdigest()

    def file_hashes(self) -> dict[str, str]:
        """sha256 hex of every file, by path."""
        return {path: hashlib.sha256(data).hexdigest() for path, data in self.files.items()}

    @property
    def total_bytes(self) -> int:
        """The uncompressed size of all files."""
        return sum(len(data) for data in self.files.values())

    def skill_md(self) -> str:
        """The text of SKILL.md; raise InvalidSkill when it is missing or not UTF-8."""
        data = self.files.get(SKILL_MD)
        if data is None:
            raise InvalidSkill("the skill has no SKILL.md", problems=[Problem(
                SKILL_MD, "SKILL.md is missing", "Add a SKILL.md file at the skill's root.")])
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidSkill("SKILL.md is not UTF-8", problems=[Problem(
                SKILL_MD, f"SKILL.md is not valid UTF-8 (byte {exc.start})",
                "Save SKILL.md with UTF-8 encoding.")]) from None

    # The module's constructors, also reachable as Bundle.from_zip(...) and so on.
    @staticmethod
    def from_files(items: Iterable[tuple[str, bytes, bool]],
                   limits: Limits | None = None) -> Bundle:
        """Same as the module function from_files."""
        return from_files(items, limits)

    @staticmethod
    def from_zip(data: bytes, limits: Limits | None = None) -> Bundle:
        """Same as the module function from_zip."""
        return from_zip(data, limits)

    @staticmethod
    def from_targz(data: bytes, limits: Limits | None = None) -> Bundle:
        """Same as the module function from_targz."""
        return from_targz(data, limits)

    @staticmethod
    def from_archive(data: bytes, limits: Limits | None = None) -> Bundle:
        """Same as the module function from_archive."""
        return from_archive(data, limits)

    @staticmethod
    def from_directory(path: Path, limits: Limits | None = None) -> Bundle:
        """Same as the module function from_directory."""
        return from_directory(path, limits)


# --- refusals -------------------------------------------------------------------------------


def _reject(code: str, message: str, status: int = 400, hint: str = "") -> ArchiveRejected:
    """An ArchiveRejected with a message that says how to fix the upload."""
    rejected = ArchiveRejected(code, message, status=status)
    if hint:
        rejected.extra["hint"] = hint
    return rejected


def _cut(raw: str, limit: int = 80) -> str:
    """A path for a message: quoted safely, long ones shortened."""
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")


def clean_path(raw: str) -> str:
    """A safe posix relative path from an archive name; raise ArchiveRejected otherwise."""
    if "\x00" in raw:
        raise _reject("bad_path", f"{_cut(raw)}: file names cannot contain NUL bytes")
    try:
        encoded = raw.encode("utf-8")
    except UnicodeEncodeError:
        raise _reject("bad_path", f"{_cut(raw)}: file names must be UTF-8") from None
    char = unsafe_character(raw)
    if char is not None:
        raise _reject("unsafe_character", f"{_cut(raw)}: file names cannot contain "
                      f"{describe_character(char)}; control, bidi and invisible characters "
                      "make a name display as something else",
                      hint="Rename the file using visible characters only.")
    _check_length(raw, encoded)
    if raw.startswith(("/", "\\")) or _DRIVE.match(raw):
        raise _reject("absolute_path", f"{raw!r}: use paths relative to the skill folder")
    if ".." in re.split(r"[/\\]", raw):
        raise _reject("path_traversal", f"{raw!r}: '..' is not allowed in paths")
    if "\\" in raw:
        raise _reject("bad_path", f"{raw!r}: use '/' to separate folders, not '\\'")
    parts = [part for part in raw.split("/") if part != "."]
    if not parts or "" in parts:
        raise _reject("bad_path", f"{raw!r}: empty path segment; remove doubled or trailing '/'")
    if any(part.lower() == ".git" for part in parts):  # case-insensitive, as git itself
        raise _reject("bad_path", f"{raw!r}: '.git' folders cannot be uploaded; remove it")
    return "/".join(parts)


def _check_length(raw: str, encoded: bytes) -> None:
    """Refuse a path git could not check out: a segment over NAME_MAX, or a very long path."""
    longest = max(encoded.split(b"/"), key=len)
    if len(longest) > MAX_SEGMENT_BYTES:
        raise _reject("path_too_long", f"{_cut(raw)}: a file or folder name is "
                      f"{len(longest)} bytes; the limit is {MAX_SEGMENT_BYTES} bytes (UTF-8)",
                      hint="Shorten the name; file systems cannot store longer ones.")
    if len(encoded) > MAX_PATH_BYTES:
        raise _reject("path_too_long", f"{_cut(raw)}: the path is {len(encoded)} bytes; the "
                      f"limit is {MAX_PATH_BYTES} bytes (UTF-8)",
                      hint="Flatten the folders or shorten their names.")


def _check_folder(raw: str) -> None:
    """Check a folder entry's path; the archive's own root ('./') is fine."""
    if raw.strip("/") not in ("", "."):
        clean_path(raw.rstrip("/"))


def _is_junk(path: str) -> bool:
    """Operating-system clutter (macOS resource forks, Finder files)."""
    parts = path.split("/")
    return parts[0] in _JUNK_TOP or parts[-1] in _JUNK_NAMES


# --- collecting files under the caps --------------------------------------------------------


class _Readable(Protocol):
    """A binary stream (zip and tar members alike)."""

    def read(self, size: int = -1, /) -> bytes: ...


class _Collector:
    """Accumulates files, enforcing the count, size and ratio caps as bytes arrive."""

    def __init__(self, limits: Limits, compressed_size: int | None = None) -> None:
        self.limits = limits
        self.files: dict[str, bytes] = {}
        self.executables: set[str] = set()
        self.total = 0
        self.ratio_cap = (None if compressed_size is None
                          else int(limits.max_ratio * max(compressed_size, 1)))

    def check_count(self, count: int) -> None:
        """Refuse more files than the cap."""
        if count > self.limits.max_files:
            raise _reject("too_many_files", f"the upload has {count} files; the limit is "
                          f"{self.limits.max_files}. Remove files the skill does not need.")

    def check_file(self, path: str, size: int) -> None:
        """Refuse a file above the per-file cap."""
        if size > self.limits.max_file_bytes:
            raise _reject("file_too_large", f"{path}: larger than the "
                          f"{self.limits.max_file_bytes}-byte limit per file", status=413)

    def check_total(self, total: int) -> None:
        """Refuse a running total above the total cap or the compression-ratio cap."""
        if total > self.limits.max_total_bytes:
            raise _reject("archive_too_large", "the files add up to more than the "
                          f"{self.limits.max_total_bytes}-byte limit", status=413)
        if self.ratio_cap is not None and total > self.ratio_cap:
            raise _reject("compression_ratio", "the archive expands more than "
                          f"{self.limits.max_ratio:g} times; it looks like a compression bomb")

    def check_size(self, path: str, size: int) -> None:
        """Refuse a new file of this size (counted, not declared) if it breaks any cap."""
        self.check_file(path, size)
        self.check_total(self.total + size)

    def read_capped(self, path: str, stream: _Readable, member_cap: int | None = None) -> bytes:
        """Read a member in chunks, stopping as soon as a cap is passed."""
        chunks: list[bytes] = []
        size = 0
        while chunk := stream.read(_CHUNK):
            size += len(chunk)
            self.check_size(path, size)
            if member_cap is not None and size > member_cap:
                raise _reject("compression_ratio", f"{path}: expands more than "
                              f"{self.limits.max_ratio:g} times; it looks like a compression bomb")
            chunks.append(chunk)
        return b"".join(chunks)

    def zip_member_cap(self, compressed: int) -> int:
        """How far one zip member may inflate: the ratio cap on its own compressed size.

        At least one chunk, so a short, very repetitive text file still passes.
        """
        return max(int(self.limits.max_ratio * compressed), _CHUNK)

    def add(self, raw: str, data: bytes, executable: bool) -> None:
        """Add one file by its raw name; refuse bad paths, duplicates and caps."""
        path = clean_path(raw)
        if _is_junk(path):
            return
        if path in self.files:
            raise _reject("duplicate_path", f"{path}: appears more than once in the upload")
        self.check_count(len(self.files) + 1)
        self.check_size(path, len(data))
        self.files[path] = data
        self.total += len(data)
        if executable:
            self.executables.add(path)

    def finish(self, root_name: str | None = None) -> Bundle:
        """The normalised Bundle; refuse empty uploads and ones without SKILL.md."""
        if not self.files:
            raise _reject("empty_archive", "the upload contains no files; include SKILL.md")
        _check_file_folder_clash(self.files)
        files, executables, stripped = _strip_top_folder(self.files, self.executables)
        if SKILL_MD not in files:
            raise _reject("missing_skill_md", "no SKILL.md at the root of the upload; put "
                          "SKILL.md at the top level or zip the skill folder itself")
        return Bundle(MappingProxyType(dict(sorted(files.items()))), frozenset(executables),
                      stripped or root_name)


def _check_file_folder_clash(files: Mapping[str, bytes]) -> None:
    """Refuse a path used both as a file and as a folder (git cannot store that)."""
    folders = {path.rsplit("/", 1)[0] for path in files if "/" in path}
    expanded = {"/".join(f.split("/")[:i]) for f in folders for i in range(1, f.count("/") + 2)}
    clash = sorted(expanded & files.keys())
    if clash:
        raise _reject("duplicate_path", f"{clash[0]}: is both a file and a folder")


def _strip_top_folder(files: dict[str, bytes], executables: set[str]
                      ) -> tuple[dict[str, bytes], set[str], str | None]:
    """If every file sits in one folder holding SKILL.md, drop that folder from the paths."""
    if SKILL_MD in files:
        return files, executables, None
    tops = {path.split("/", 1)[0] for path in files}
    if len(tops) != 1 or any("/" not in path for path in files):
        return files, executables, None
    top = tops.pop()
    if f"{top}/{SKILL_MD}" not in files:
        return files, executables, None
    cut = len(top) + 1
    return ({path[cut:]: data for path, data in files.items()},
            {path[cut:] for path in executables}, top)


# --- constructors ---------------------------------------------------------------------------


def from_files(items: Iterable[tuple[str, bytes, bool]], limits: Limits | None = None) -> Bundle:
    """A Bundle from (path, data, executable) triples, e.g. a multipart upload."""
    collector = _Collector(limits or Limits())
    for path, data, executable in items:
        collector.add(path, data, executable)
    return collector.finish()


def from_archive(data: bytes, limits: Limits | None = None) -> Bundle:
    """A Bundle from zip or tar.gz bytes, told apart by their magic numbers."""
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return from_zip(data, limits)
    if data.startswith(b"\x1f\x8b"):
        return from_targz(data, limits)
    raise _reject("unsupported_archive", "the upload is neither a zip nor a tar.gz archive")


def from_zip(data: bytes, limits: Limits | None = None) -> Bundle:
    """A Bundle from zip bytes; every cap is enforced while inflating."""
    collector = _Collector(limits or Limits(), compressed_size=len(data))
    with _open_zip(data) as archive:
        members = [(_zip_name(info), info) for info in archive.infolist()]
        files = [(name, info) for name, info in members if _zip_member(name, info)]
        collector.check_count(len(files))
        _check_declared(collector, files)
        for name, info in files:
            content = _read_zip_member(archive, name, info, collector)
            collector.add(name, content, bool((info.external_attr >> 16) & 0o111))
    return collector.finish()


def _open_zip(data: bytes) -> zipfile.ZipFile:
    """Open zip bytes, mapping failures to refusals."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except UnicodeDecodeError:
        raise _reject("bad_path", "a file name in the zip is not valid UTF-8") from None
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError) as exc:
        raise _reject("bad_archive", f"the zip cannot be read ({exc})") from None
    return archive


def _zip_name(info: zipfile.ZipInfo) -> str:
    """The raw member name as UTF-8 (zips without the UTF-8 flag often still use it)."""
    # orig_filename keeps what zipfile's own clean-up hides (a NUL cut, '\\' on Windows).
    if info.flag_bits & 0x800:
        return info.orig_filename
    try:
        return info.orig_filename.encode("cp437").decode("utf-8")
    except UnicodeError:
        raise _reject("bad_path", f"{info.orig_filename!r}: file names must be UTF-8") from None


def _zip_member(name: str, info: zipfile.ZipInfo) -> bool:
    """True for a regular file; False for a folder or clutter; refuse links and special files."""
    mode = info.external_attr >> 16
    if name.endswith("/") or stat.S_ISDIR(mode):
        _check_folder(name)
        return False
    if _is_junk(clean_path(name)):
        return False
    if stat.S_ISLNK(mode):
        raise _reject("symlink", f"{name}: symbolic links are not allowed; "
                      "include the file itself")
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        raise _reject("special_file", f"{name}: only regular files are allowed")
    return True


def _check_declared(collector: _Collector, files: list[tuple[str, zipfile.ZipInfo]]) -> None:
    """Refuse early on declared sizes (cheap); real bytes are counted again while reading."""
    for name, info in files:
        collector.check_file(name, info.file_size)
    collector.check_total(sum(info.file_size for _, info in files))


def _read_zip_member(archive: zipfile.ZipFile, name: str, info: zipfile.ZipInfo,
                     collector: _Collector) -> bytes:
    """Inflate one member in chunks, never past the caps."""
    try:
        with archive.open(info) as stream:
            return collector.read_capped(name, stream, collector.zip_member_cap(info.compress_size))
    except ArchiveRejected:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError) as exc:
        raise _reject("bad_archive", f"{name}: cannot be read ({exc})") from None


def from_targz(data: bytes, limits: Limits | None = None) -> Bundle:
    """A Bundle from tar.gz bytes; the gzip stream is inflated only up to the caps."""
    limits = limits or Limits()
    collector = _Collector(limits, compressed_size=len(data))
    raw = _gunzip_capped(data, limits)
    if not raw.strip(b"\x00"):
        raise _reject("empty_archive", "the archive contains no files; include SKILL.md")
    try:
        with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as archive:
            members = [m for m in archive.getmembers() if _tar_member(m)]
            collector.check_count(len(members))
            for member in members:
                content = _read_tar_member(archive, member, collector)
                collector.add(member.name, content, bool(member.mode & 0o111))
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise _reject("bad_archive", f"the tar archive cannot be read ({exc})") from None
    return collector.finish()


def _tar_stream_cap(limits: Limits, compressed_size: int) -> int:
    """How many tar bytes may be inflated: the caps plus room for headers and padding."""
    overhead = 4096 * (limits.max_files + 16) + 20480
    content = min(limits.max_total_bytes, int(limits.max_ratio * max(compressed_size, 1)))
    return content + overhead


def _gunzip_capped(data: bytes, limits: Limits) -> bytes:
    """Inflate (possibly multi-member) gzip data, refusing once it passes the stream cap."""
    cap = _tar_stream_cap(limits, len(data))
    out = bytearray()
    pending = data
    try:
        while pending:
            inflater = zlib.decompressobj(wbits=31)
            pending = _inflate_member(inflater, pending, out, cap, limits, len(data))
            if pending and not pending.startswith(b"\x1f\x8b"):
                if pending.strip(b"\x00"):
                    raise _reject("bad_archive", "unexpected bytes after the gzip data")
                break
    except zlib.error as exc:
        raise _reject("bad_archive", f"the gzip data cannot be read ({exc})") from None
    return bytes(out)


def _inflate_member(inflater: zlib._Decompress, data: bytes, out: bytearray, cap: int,
                    limits: Limits, compressed_size: int) -> bytes:
    """Inflate one gzip member into out in bounded steps; return the bytes after it."""
    chunk = inflater.decompress(data, _CHUNK)
    while True:
        out += chunk
        if len(out) > cap:
            raise _stream_cap_error(limits, len(out), compressed_size)
        if inflater.eof:
            return inflater.unused_data
        if not inflater.unconsumed_tail and not chunk:
            raise _reject("bad_archive", "the gzip data is truncated")
        chunk = inflater.decompress(inflater.unconsumed_tail, _CHUNK)


def _stream_cap_error(limits: Limits, inflated: int, compressed_size: int) -> ArchiveRejected:
    """The refusal for an inflated stream past its cap: a bomb or simply too big."""
    if inflated > limits.max_ratio * max(compressed_size, 1):
        return _reject("compression_ratio", "the archive expands more than "
                       f"{limits.max_ratio:g} times; it looks like a compression bomb")
    return _reject("archive_too_large", "the files add up to more than the "
                   f"{limits.max_total_bytes}-byte limit", status=413)


def _tar_member(member: tarfile.TarInfo) -> bool:
    """True for a regular file; False for a folder or clutter; refuse links and special files."""
    if member.isdir():
        _check_folder(member.name)
        return False
    if _is_junk(clean_path(member.name)):
        return False
    if member.issym():
        raise _reject("symlink", f"{member.name}: symbolic links are not allowed; "
                      "include the file itself")
    if member.islnk():
        raise _reject("hardlink", f"{member.name}: hard links are not allowed; "
                      "include the file itself")
    if not member.isreg():
        raise _reject("special_file", f"{member.name}: only regular files are allowed")
    return True


def _read_tar_member(archive: tarfile.TarFile, member: tarfile.TarInfo,
                     collector: _Collector) -> bytes:
    """Read one regular member under the caps."""
    collector.check_size(member.name, member.size)
    stream = archive.extractfile(member)
    if stream is None:
        raise _reject("special_file", f"{member.name}: only regular files are allowed")
    with stream:
        return collector.read_capped(member.name, stream)


def from_directory(path: Path, limits: Limits | None = None) -> Bundle:
    """A Bundle from a local folder, skipping VCS and build clutter; links are refused."""
    root = Path(path)
    if not root.is_dir():
        raise _reject("bad_path", f"{root}: not a folder")
    collector = _Collector(limits or Limits())
    for rel, entry in _walk(root, ""):
        collector.add(rel, _read_file(entry, rel, collector), _is_executable(entry))
    return collector.finish(root_name=root.resolve().name or None)


def _walk(folder: Path, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(relative path, entry) for every file below folder, sorted, without following links."""
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        rel = f"{prefix}{entry.name}"
        if entry.name in _DIRECTORY_SKIP_DIRS:
            continue
        if entry.is_symlink():
            raise _reject("symlink", f"{rel}: symbolic links are not allowed; copy the file in")
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), f"{rel}/")
        elif not entry.is_file(follow_symlinks=False):
            raise _reject("special_file", f"{rel}: only regular files are allowed")
        elif not entry.name.endswith(".pyc"):
            yield rel, entry


def _read_file(entry: os.DirEntry[str], rel: str, collector: _Collector) -> bytes:
    """Read a local file, never more than one byte past the per-file cap."""
    with open(entry.path, "rb") as handle:
        data = handle.read(collector.limits.max_file_bytes + 1)
    collector.check_size(rel, len(data))
    return data


def _is_executable(entry: os.DirEntry[str]) -> bool:
    """Whether the owner may execute the file."""
    return bool(entry.stat(follow_symlinks=False).st_mode & stat.S_IXUSR)


# --- deterministic archives -----------------------------------------------------------------


def _archive_name(prefix: str | None, path: str) -> str:
    """The member name under an optional folder prefix."""
    if not prefix:
        return path
    return f"{clean_path(prefix.strip('/'))}/{path}"


def _mode(bundle: Bundle, path: str) -> int:
    """0o755 for executables, else 0o644."""
    return 0o755 if path in bundle.executables else 0o644


def to_targz(bundle: Bundle, prefix: str | None) -> bytes:
    """A reproducible tar.gz: sorted, zero times and owners, fixed modes, bare gzip header."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(bundle.files):
            data = bundle.files[path]
            info = tarfile.TarInfo(_archive_name(prefix, path))
            info.size, info.mtime, info.mode = len(data), 0, _mode(bundle, path)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(data))
    return gzip.compress(buffer.getvalue(), compresslevel=9, mtime=0)


def to_zip(bundle: Bundle, prefix: str | None) -> bytes:
    """A reproducible zip: sorted, 1980-01-01 times, deflated, fixed unix modes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bundle.files):
            info = zipfile.ZipInfo(_archive_name(prefix, path), date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix, so external_attr carries the mode
            info.external_attr = (stat.S_IFREG | _mode(bundle, path)) << 16
            archive.writestr(info, bundle.files[path], compresslevel=9)
    return buffer.getvalue()
