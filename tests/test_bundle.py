"""Safe unpacking of uploads, the content hash, and reproducible archives."""

from __future__ import annotations

import hashlib
import io
import os
import random
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from skills_hub.config import Limits
from skills_hub.errors import ArchiveRejected, InvalidSkill
from skills_hub.skill import (
    Bundle,
    from_archive,
    from_directory,
    from_files,
    from_targz,
    from_zip,
    to_targz,
    to_zip,
)

SKILL = b"---\nname: demo\ndescription: Demo skill.\n---\n# Demo\n"
MB = 1024 * 1024
LIMITS = Limits()


def noise(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes, reproducibly."""
    return random.Random(seed).randbytes(size)


# --- building archives in tests ---------------------------------------------------------------

ZipEntry = tuple[str, bytes, int]  # name, data, unix mode (file type bits included)


def make_zip(entries: list[ZipEntry], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip with the given entries, written as-is (duplicates too)."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names
        with zipfile.ZipFile(buffer, "w", method) as archive:
            for name, data, mode in entries:
                info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
                info.create_system = 3
                info.external_attr = mode << 16
                archive.writestr(info, data, compress_type=method)
    return buffer.getvalue()


def reg(name: str, data: bytes = b"x", mode: int = 0o644) -> ZipEntry:
    """A regular-file zip entry."""
    return name, data, stat.S_IFREG | mode


def skill_zip(*extra: ZipEntry, method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip with SKILL.md plus extra entries."""
    return make_zip([reg("SKILL.md", SKILL), *extra], method)


TarEntry = tuple[str, bytes, bytes, str]  # name, data, tar type, link name


def make_targz(entries: list[TarEntry]) -> bytes:
    """A tar.gz with the given entries, written as-is."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=1) as archive:
        for name, data, kind, link in entries:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = kind, link, 0o644
            info.size = len(data) if kind == tarfile.REGTYPE else 0
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return buffer.getvalue()


def treg(name: str, data: bytes = b"x") -> TarEntry:
    """A regular-file tar entry."""
    return name, data, tarfile.REGTYPE, ""


def skill_targz(*extra: TarEntry) -> bytes:
    """A tar.gz with SKILL.md plus extra entries."""
    return make_targz([treg("SKILL.md", SKILL), *extra])


def patch(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace every occurrence of old (same length) in an archive's bytes."""
    assert len(old) == len(new) and old in data
    return data.replace(old, new)


# --- hostile uploads --------------------------------------------------------------------------

HOSTILE: list[tuple[str, Callable[[], bytes], str, int]] = [
    # zip
    ("zip-dotdot", lambda: skill_zip(reg("../evil.sh")), "path_traversal", 400),
    ("zip-dotdot-inner", lambda: skill_zip(reg("a/../../evil")), "path_traversal", 400),
    ("zip-dotdot-backslash", lambda: skill_zip(reg("..\\evil")), "path_traversal", 400),
    ("zip-absolute", lambda: skill_zip(reg("/etc/cron.d/evil")), "absolute_path", 400),
    ("zip-drive-letter", lambda: skill_zip(reg("C:\\evil.bat")), "absolute_path", 400),
    ("zip-backslash-root", lambda: skill_zip(reg("\\evil")), "absolute_path", 400),
    ("zip-backslash-separator", lambda: skill_zip(reg("scripts\\run.py")), "bad_path", 400),
    ("zip-symlink", lambda: skill_zip(("link", b"/etc/passwd", stat.S_IFLNK | 0o777)),
     "symlink", 400),
    ("zip-fifo", lambda: skill_zip(("pipe", b"", stat.S_IFIFO | 0o644)), "special_file", 400),
    ("zip-101-files", lambda: skill_zip(*(reg(f"f{i}.txt") for i in range(100))),
     "too_many_files", 400),
    ("zip-5mb-plus-1", lambda: skill_zip(reg("big.bin", b"\0" * (5 * MB + 1)),
                                         method=zipfile.ZIP_STORED), "file_too_large", 413),
    ("zip-20mb-plus", lambda: skill_zip(*(reg(f"f{i}.bin", b"\0" * (4 * MB)) for i in range(5)),
                                        method=zipfile.ZIP_STORED), "archive_too_large", 413),
    ("zip-bomb", lambda: skill_zip(reg("zeros.txt", b"\0" * (4 * MB))), "compression_ratio",
     400),
    ("zip-corrupt", lambda: b"PK\x03\x04" + noise(500), "bad_archive", 400),
    ("zip-bad-crc", lambda: patch(skill_zip(method=zipfile.ZIP_STORED), b"# Demo", b"# Evil"),
     "bad_archive", 400),
    ("zip-duplicate", lambda: skill_zip(reg("a.txt"), reg("a.txt")), "duplicate_path", 400),
    ("zip-duplicate-after-dot", lambda: skill_zip(reg("./SKILL.md", SKILL)), "duplicate_path",
     400),
    ("zip-file-and-folder", lambda: skill_zip(reg("a"), reg("a/b")), "duplicate_path", 400),
    ("zip-git-config", lambda: skill_zip(reg(".git/config")), "bad_path", 400),
    ("zip-git-config-upper", lambda: skill_zip(reg("a/.GIT/hooks/x")), "bad_path", 400),
    ("zip-empty-segment", lambda: skill_zip(reg("a//b")), "bad_path", 400),
    ("zip-nul", lambda: patch(skill_zip(reg("aXb")), b"aXb", b"a\0b"), "bad_path", 400),
    ("zip-not-utf8", lambda: patch(skill_zip(reg("aXb")), b"aXb", b"a\xffb"), "bad_path", 400),
    ("zip-empty", lambda: make_zip([]), "empty_archive", 400),
    ("zip-only-folders", lambda: make_zip([("a/", b"", stat.S_IFDIR | 0o755)]),
     "empty_archive", 400),
    ("zip-no-skill-md", lambda: make_zip([reg("README.md")]), "missing_skill_md", 400),
    ("zip-skill-md-too-deep", lambda: make_zip([reg("a/b/SKILL.md", SKILL)]),
     "missing_skill_md", 400),
    ("zip-two-top-folders", lambda: make_zip([reg("a/SKILL.md", SKILL), reg("b/x")]),
     "missing_skill_md", 400),
    # tar.gz
    ("tar-dotdot", lambda: skill_targz(treg("../evil.sh")), "path_traversal", 400),
    ("tar-absolute", lambda: skill_targz(treg("/etc/evil")), "absolute_path", 400),
    ("tar-symlink", lambda: skill_targz(("link", b"", tarfile.SYMTYPE, "/etc/passwd")),
     "symlink", 400),
    ("tar-symlink-inside", lambda: skill_targz(("link", b"", tarfile.SYMTYPE, "SKILL.md")),
     "symlink", 400),
    ("tar-hardlink", lambda: skill_targz(("hard", b"", tarfile.LNKTYPE, "SKILL.md")),
     "hardlink", 400),
    ("tar-char-device", lambda: skill_targz(("null", b"", tarfile.CHRTYPE, "")),
     "special_file", 400),
    ("tar-block-device", lambda: skill_targz(("sda", b"", tarfile.BLKTYPE, "")),
     "special_file", 400),
    ("tar-fifo", lambda: skill_targz(("pipe", b"", tarfile.FIFOTYPE, "")), "special_file", 400),
    ("tar-101-files", lambda: skill_targz(*(treg(f"f{i}.txt") for i in range(100))),
     "too_many_files", 400),
    ("tar-5mb-plus-1", lambda: skill_targz(treg("big.bin", noise(5 * MB + 1))),
     "file_too_large", 413),
    ("tar-20mb-plus", lambda: skill_targz(*(treg(f"f{i}.bin", noise(4 * MB, i))
                                            for i in range(5))), "archive_too_large", 413),
    ("tar-bomb", lambda: skill_targz(treg("zeros.txt", b"\0" * (4 * MB))), "compression_ratio",
     400),
    ("tar-corrupt-gzip", lambda: b"\x1f\x8b\x08\x00" + noise(500), "bad_archive", 400),
    ("tar-truncated", lambda: skill_targz(treg("a.txt", noise(5000)))[:-200], "bad_archive",
     400),
    ("tar-not-a-tar", lambda: __import__("gzip").compress(noise(2000)), "bad_archive", 400),
    ("tar-duplicate", lambda: skill_targz(treg("a.txt"), treg("a.txt")), "duplicate_path", 400),
    ("tar-git-config", lambda: skill_targz(treg(".git/config")), "bad_path", 400),
    ("tar-empty", lambda: make_targz([]), "empty_archive", 400),
    ("tar-no-skill-md", lambda: make_targz([treg("README.md")]), "missing_skill_md", 400),
    # neither
    ("not-an-archive", lambda: b"hello world", "unsupported_archive", 400),
    ("rar", lambda: b"Rar!\x1a\x07\x00" + noise(100), "unsupported_archive", 400),
]


@pytest.mark.parametrize("build, code, status",
                         [pytest.param(b, c, s, id=i) for i, b, c, s in HOSTILE])
def test_hostile_archives_are_refused(build: Callable[[], bytes], code: str,
                                      status: int) -> None:
    data = build()
    with pytest.raises(ArchiveRejected) as info:
        from_archive(data, LIMITS)
    assert (info.value.code, info.value.status) == (code, status)
    assert info.value.message


@pytest.mark.parametrize("code, items", [
    ("path_traversal", [("../x", b"", False)]),
    ("absolute_path", [("/x", b"", False)]),
    ("bad_path", [("", b"", False)]),
    ("bad_path", [("a/", b"", False)]),
    ("bad_path", [("a\udcffb", b"", False)]),
    ("duplicate_path", [("SKILL.md", SKILL, False), ("SKILL.md", SKILL, False)]),
    ("file_too_large", [("SKILL.md", b"x" * (5 * MB + 1), False)]),
    ("too_many_files", [(f"f{i}", b"", False) for i in range(101)]),
    ("empty_archive", []),
    ("missing_skill_md", [("README.md", b"", False)]),
])
def test_bad_file_uploads_are_refused(code: str, items: list[tuple[str, bytes, bool]]) -> None:
    with pytest.raises(ArchiveRejected) as info:
        from_files(items, LIMITS)
    assert info.value.code == code


def test_zip_bomb_is_never_fully_inflated() -> None:
    bomb = skill_zip(reg("zeros.txt", b"\0" * (50 * MB)))
    small = Limits(max_file_bytes=100 * MB, max_total_bytes=100 * MB)
    with pytest.raises(ArchiveRejected) as info:
        from_zip(bomb, small)
    assert info.value.code == "compression_ratio"


def test_zip_bomb_member_hidden_by_padding_is_refused() -> None:
    # The whole archive stays under 100:1 thanks to incompressible padding; the member does not.
    data = skill_zip(reg("pad.bin", noise(100_000)), reg("zeros.txt", b"\0" * (4 * MB)))
    assert 4 * MB / len(data) < LIMITS.max_ratio
    with pytest.raises(ArchiveRejected) as info:
        from_zip(data, LIMITS)
    assert info.value.code == "compression_ratio"
    assert "zeros.txt" in info.value.message


def test_small_repetitive_member_passes() -> None:
    data = skill_zip(reg("pad.bin", noise(2000)), reg("rule.md", b"=" * 30_000))
    assert len(from_zip(data, LIMITS).files["rule.md"]) == 30_000


def test_zip_with_lying_sizes_is_refused_without_inflating() -> None:
    data = skill_zip(reg("zeros.txt", b"\0" * (3 * MB)))
    declared = (3 * MB).to_bytes(4, "little")
    with pytest.raises(ArchiveRejected) as info:
        from_zip(patch(data, declared, (100).to_bytes(4, "little")), LIMITS)
    assert info.value.code == "bad_archive"


def test_total_cap_is_configurable() -> None:
    data = skill_zip(reg("a.txt", noise(2000)))
    with pytest.raises(ArchiveRejected) as info:
        from_zip(data, Limits(max_total_bytes=1000))
    assert (info.value.code, info.value.status) == ("archive_too_large", 413)


def test_limits_are_configurable() -> None:
    with pytest.raises(ArchiveRejected) as info:
        from_zip(skill_zip(reg("a"), reg("b")), Limits(max_files=2))
    assert info.value.code == "too_many_files"


# --- normalisation ----------------------------------------------------------------------------


def test_zip_of_the_skill_folder_is_stripped() -> None:
    data = make_zip([("demo/", b"", stat.S_IFDIR | 0o755), reg("demo/SKILL.md", SKILL),
                     reg("demo/scripts/run.py", b"print(1)\n", 0o755),
                     reg("__MACOSX/demo/._SKILL.md"), reg("demo/.DS_Store")])
    bundle = from_archive(data, LIMITS)
    assert sorted(bundle.files) == ["SKILL.md", "scripts/run.py"]
    assert bundle.executables == frozenset({"scripts/run.py"})
    assert bundle.root_name == "demo"


def test_macos_clutter_does_not_count_towards_the_file_cap() -> None:
    entries = [reg("demo/SKILL.md", SKILL)] + [reg(f"demo/f{i}") for i in range(99)]
    clutter = [reg(f"__MACOSX/demo/._f{i}") for i in range(99)]
    assert len(from_zip(make_zip(entries + clutter), LIMITS).files) == 100


def test_tar_of_dot_with_root_folder_entry() -> None:
    data = make_targz([("./", b"", tarfile.DIRTYPE, ""), treg("./SKILL.md", SKILL)])
    assert from_targz(data, LIMITS).files == {"SKILL.md": SKILL}


def test_root_skill_md_is_kept_as_is() -> None:
    bundle = from_targz(make_targz([treg("./SKILL.md", SKILL), treg("./a/b.md")]), LIMITS)
    assert sorted(bundle.files) == ["SKILL.md", "a/b.md"]
    assert bundle.root_name is None


def test_from_files_keeps_executables() -> None:
    bundle = from_files([("SKILL.md", SKILL, False), ("scripts/run.sh", b"echo\n", True)],
                        LIMITS)
    assert bundle.executables == frozenset({"scripts/run.sh"})
    assert bundle.total_bytes == len(SKILL) + 5


def test_bundle_static_constructors() -> None:
    assert Bundle.from_zip(skill_zip(), LIMITS).files == {"SKILL.md": SKILL}
    assert Bundle.from_targz(skill_targz()).files == {"SKILL.md": SKILL}


# --- hashing and SKILL.md ---------------------------------------------------------------------


def test_content_hash_is_clawhubs_fingerprint() -> None:
    files = {"b.txt": b"bee", "SKILL.md": SKILL, "a/c.py": b"see"}
    bundle = Bundle(files, frozenset())
    sha = {path: hashlib.sha256(data).hexdigest() for path, data in files.items()}
    lines = "\n".join(f"{path}:{sha[path]}" for path in sorted(files))
    assert bundle.content_hash() == hashlib.sha256(lines.encode("utf-8")).hexdigest()
    assert bundle.file_hashes() == sha


def test_content_hash_ignores_executable_bits_and_order() -> None:
    one = Bundle({"SKILL.md": SKILL, "x": b"1"}, frozenset())
    two = Bundle({"x": b"1", "SKILL.md": SKILL}, frozenset({"x"}))
    assert one.content_hash() == two.content_hash()


def test_skill_md_text() -> None:
    assert Bundle({"SKILL.md": SKILL}, frozenset()).skill_md() == SKILL.decode()


@pytest.mark.parametrize("files", [{"README.md": b""}, {"SKILL.md": b"\xff\xfe bad"}])
def test_skill_md_missing_or_not_utf8(files: dict[str, bytes]) -> None:
    with pytest.raises(InvalidSkill) as info:
        Bundle(files, frozenset()).skill_md()
    assert info.value.problems[0].field == "SKILL.md"


# --- reproducible archives --------------------------------------------------------------------


def sample_bundle(reverse: bool = False) -> Bundle:
    """A small bundle with an executable and a non-ASCII name."""
    items = [("SKILL.md", SKILL), ("scripts/run.sh", b"#!/bin/sh\necho hi\n"),
             ("references/naïve.md", b"# notes\n"), ("assets/data.bin", noise(3000))]
    ordered = dict(reversed(items) if reverse else items)
    return Bundle(ordered, frozenset({"scripts/run.sh"}))


@pytest.mark.parametrize("writer", [to_targz, to_zip])
@pytest.mark.parametrize("prefix", ["", None, "demo"])
def test_archives_are_deterministic(writer: Callable[[Bundle, str | None], bytes],
                                    prefix: str | None) -> None:
    first = writer(sample_bundle(), prefix)
    assert writer(sample_bundle(reverse=True), prefix) == first
    assert writer(sample_bundle(), prefix) == first


def test_targz_metadata_is_fixed() -> None:
    data = to_targz(sample_bundle(), "demo")
    assert data[:4] == b"\x1f\x8b\x08\x00"  # gzip, deflate, no flags (no file name)
    assert data[4:8] == b"\0\0\0\0"  # mtime 0
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = archive.getmembers()
    assert [m.name for m in members] == sorted(f"demo/{p}" for p in sample_bundle().files)
    for member in members:
        assert (member.mtime, member.uid, member.gid, member.uname, member.gname) == (
            0, 0, 0, "", "")
        expected = 0o755 if member.name == "demo/scripts/run.sh" else 0o644
        assert member.mode == expected


def test_zip_metadata_is_fixed() -> None:
    with zipfile.ZipFile(io.BytesIO(to_zip(sample_bundle(), None))) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(sample_bundle().files)
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_DEFLATED
        expected = 0o755 if info.filename == "scripts/run.sh" else 0o644
        assert info.external_attr >> 16 == stat.S_IFREG | expected


@pytest.mark.parametrize("prefix", ["", "demo"])
def test_round_trip_through_zip_and_tar(prefix: str) -> None:
    bundle = sample_bundle()
    for packed in (to_zip(bundle, prefix), to_targz(bundle, prefix)):
        again = from_archive(packed, LIMITS)
        assert again.content_hash() == bundle.content_hash()
        assert again.files == bundle.files
        assert again.executables == bundle.executables
        assert again.root_name == (prefix or None)


def test_bad_prefix_is_refused() -> None:
    with pytest.raises(ArchiveRejected):
        to_zip(sample_bundle(), "../up")


# --- local folders ----------------------------------------------------------------------------


def write_skill(root: Path) -> Path:
    """A skill folder with clutter that from_directory must skip."""
    folder = root / "demo"
    (folder / "scripts").mkdir(parents=True)
    (folder / "SKILL.md").write_bytes(SKILL)
    run = folder / "scripts" / "run.sh"
    run.write_bytes(b"#!/bin/sh\n")
    run.chmod(0o755)
    for clutter in (".git/HEAD", "__pycache__/x.cpython-311.pyc", "scripts/old.pyc",
                    ".DS_Store", "scripts/__pycache__/y.pyc"):
        (folder / clutter).parent.mkdir(parents=True, exist_ok=True)
        (folder / clutter).write_bytes(b"junk")
    return folder


def test_from_directory(tmp_path: Path) -> None:
    bundle = from_directory(write_skill(tmp_path), LIMITS)
    assert sorted(bundle.files) == ["SKILL.md", "scripts/run.sh"]
    assert bundle.executables == frozenset({"scripts/run.sh"})
    assert bundle.root_name == "demo"


def test_from_directory_refuses_symlinks(tmp_path: Path) -> None:
    folder = write_skill(tmp_path)
    (folder / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ArchiveRejected) as info:
        from_directory(folder, LIMITS)
    assert info.value.code == "symlink"


def test_from_directory_refuses_symlinked_folders(tmp_path: Path) -> None:
    folder = write_skill(tmp_path)
    (folder / "etc").symlink_to("/etc", target_is_directory=True)
    with pytest.raises(ArchiveRejected) as info:
        from_directory(folder, LIMITS)
    assert info.value.code == "symlink"


def test_from_directory_refuses_fifos(tmp_path: Path) -> None:
    folder = write_skill(tmp_path)
    os.mkfifo(folder / "pipe")
    with pytest.raises(ArchiveRejected) as info:
        from_directory(folder, LIMITS)
    assert info.value.code == "special_file"


def test_from_directory_caps_file_size(tmp_path: Path) -> None:
    folder = write_skill(tmp_path)
    (folder / "big.bin").write_bytes(b"\0" * 2001)
    with pytest.raises(ArchiveRejected) as info:
        from_directory(folder, Limits(max_file_bytes=2000))
    assert (info.value.code, info.value.status) == ("file_too_large", 413)
