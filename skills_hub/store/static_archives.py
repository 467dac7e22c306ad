"""Public archives the reverse proxy sends by itself, without asking the app.

With `SKILLS_HUB_STATIC_ARCHIVES=<folder>` (README, "Running it"), nginx answers a download
of an exact version of a public skill from a file, at its static-file rate, with the same
headers the app sets. Three parts, each safe on its own:

- **Files**, shared by every node (they sit beside the repos, in
  `<repos>/.static-archives/<ns>/<name>/<version>/<sha256>.<fmt>`): the archive's bytes,
  written by the app when it answers a download of a public namespace's version (once per
  version and format), by an atomic rename. They are written, and a namespace's are removed
  when it goes private, under the namespace's lock with the visibility read from the
  catalogue, so a file exists only while its namespace is public on every node.
- **Maps**, per node (`<folder>/sha256.map`, `<folder>/digest.map`): nginx `map` entries from
  each file's URL to its sha256 and base64 digest, which nginx puts in the ETag,
  X-Checksum-Sha256 and Digest headers. `sync` writes them from the files and runs the
  reload command when they changed. nginx sends a file only when its map knows the URL
  and the file is there (the file's name holds the sha256 from the map), so a file newer
  than the map, or a map entry whose file was removed, goes to the app, which checks.
- **Counts**: nginx logs each download it answers to `<folder>/downloads.log`; `sync`
  adds the new lines' downloads to the catalogue, counted by the app's rule (a GET that is
  not a page's subresource), and then records how far it read (`downloads.offset`). A crash
  between the two may count those few seconds twice; a rotated or truncated log is read
  from its start.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .cache import write_replacing
from .interfaces import Catalogue

log = logging.getLogger(__name__)

FOLDER = ".static-archives"  # under the repos folder: shared by the nodes, as the repos are
FORMATS = ("tar.gz", "zip")
_NAME = r"[a-z0-9][a-z0-9-]{0,63}"
_PART = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$")
_FILE = re.compile(r"^([0-9a-f]{64})\.(tar\.gz|zip)$")
# One line of nginx's `log_format skills_hub_downloads` (web/proxy.py): status, method,
# the Sec-Fetch-Dest header, and the namespace and skill of the archive sent.
_LINE = re.compile(rf'^(\d{{3}}) ([A-Z]+) "([^"]*)" ({_NAME})/({_NAME})$')
# Fetch destinations that count as an install (web.middleware.NOT_SUBRESOURCE's rule).
COUNTED_DESTINATIONS = frozenset({"", "-", "document", "empty"})


def archive_url(namespace: str, name: str, version: str, fmt: str) -> str:
    return f"/api/v1/skills/{namespace}/{name}/versions/{version}/archive.{fmt}"


@dataclass(frozen=True)
class SyncReport:
    entries: int       # archives the maps name
    changed: bool      # whether the maps were rewritten (and the proxy reloaded)
    counted: int       # downloads read from the proxy's log and added to the catalogue


class StaticArchives:
    """The files (shared), this node's maps and its proxy's download log.

    Without a `folder` (the setting unset) nothing is written; a namespace going private
    still removes its files, in case another node, or this one before, had the setting.
    """

    def __init__(self, repos: Path, folder: Path | None = None,
                 reload: str | None = None) -> None:
        self.files = repos / FOLDER
        self.folder = folder
        self.reload = reload

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    # -- files: written and removed under the namespace's lock by the service ------------

    def path(self, namespace: str, name: str, version: str, sha256: str, fmt: str) -> Path:
        return self.files / namespace / name / version / f"{sha256}.{fmt}"

    def has(self, namespace: str, name: str, version: str, sha256: str, fmt: str) -> bool:
        return self.path(namespace, name, version, sha256, fmt).is_file()

    def put(self, namespace: str, name: str, version: str, sha256: str, fmt: str,
            data: bytes) -> None:
        """Write the archive's file (the caller holds the namespace's lock and has read
        that the namespace is public)."""
        if not all(_PART.match(p) for p in (namespace, name, version)) or fmt not in FORMATS:
            return  # never a path the proxy's location would not match
        path = self.path(namespace, name, version, sha256, fmt)
        if path.is_file():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        write_replacing(path, data)

    def remove_version(self, namespace: str, name: str, version: str) -> None:
        """Remove the files of a version the catalogue no longer has (`reconcile`)."""
        if all(_PART.match(p) for p in (namespace, name, version)):
            shutil.rmtree(self.files / namespace / name / version, ignore_errors=True)

    def remove_namespace(self, namespace: str) -> None:
        """Remove every file of `namespace` (the caller holds its lock), so the proxy sends
        none of them from now on, whatever its map says."""
        if _PART.match(namespace):
            shutil.rmtree(self.files / namespace, ignore_errors=True)

    def entries(self) -> Iterator[tuple[str, str]]:
        """(URL, sha256) of every file."""
        if not self.files.is_dir():
            return
        for path in sorted(self.files.glob("*/*/*/*")):
            found = _FILE.match(path.name)
            namespace, name, version = path.parts[-4:-1]
            if found and all(_PART.match(p) for p in (namespace, name, version)):
                yield archive_url(namespace, name, version, found[2]), found[1]

    # -- this node's maps and log ----------------------------------------------------------

    def sync(self, catalogue: Catalogue) -> SyncReport | None:
        """Count the proxy's new downloads, then rewrite the maps (and reload the proxy)
        if the files changed. None when another process of this node is syncing."""
        if self.folder is None:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        with _exclusive(self.folder / ".sync.lock") as held:
            if not held:
                return None
            counted = self._count(self.folder, catalogue)
            entries = list(self.entries())
            changed = self._write_maps(self.folder, entries)
            if changed and self.reload:
                done = subprocess.run(self.reload, shell=True, capture_output=True, text=True,
                                      timeout=60, check=False)
                if done.returncode != 0:
                    log.error("the proxy reload command %r failed (%d): %s", self.reload,
                              done.returncode, (done.stderr or done.stdout).strip()[-500:])
            return SyncReport(len(entries), changed, counted)

    @staticmethod
    def _write_maps(folder: Path, entries: list[tuple[str, str]]) -> bool:
        sha_map = "".join(f"{url} {sha};\n" for url, sha in entries)
        digest_map = "".join(
            f'{url} "{base64.b64encode(bytes.fromhex(sha)).decode()}";\n'
            for url, sha in entries)
        target = folder / "sha256.map"
        if target.is_file() and target.read_text() == sha_map \
                and (folder / "digest.map").is_file():
            return False
        # the digests first: the sha256 map is what lets nginx send a file
        write_replacing(folder / "digest.map", digest_map.encode(), sync=True)
        write_replacing(target, sha_map.encode(), sync=True)
        return True

    @staticmethod
    def _count(folder: Path, catalogue: Catalogue) -> int:
        """Add the downloads logged since the last read; record how far was read."""
        logfile = folder / "downloads.log"
        mark = folder / "downloads.offset"
        try:
            stat = logfile.stat()
        except FileNotFoundError:
            return 0
        try:
            done = json.loads(mark.read_text())
            offset = int(done["offset"]) if done.get("inode") == stat.st_ino else 0
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            offset = 0
        if offset > stat.st_size:  # truncated (copytruncate): read it again from the start
            offset = 0
        with open(logfile, "rb") as source:
            source.seek(offset)
            chunk = source.read(stat.st_size - offset)
        end = chunk.rfind(b"\n") + 1  # whole lines only; a line being written waits
        counts: Counter[tuple[str, str]] = Counter()
        for line in chunk[:end].decode("utf-8", "replace").splitlines():
            found = _LINE.match(line.strip())
            if found and found[1] == "200" and found[2] == "GET" \
                    and found[3].strip().lower() in COUNTED_DESTINATIONS:
                counts[(found[4], found[5])] += 1
        if counts:
            catalogue.add_downloads(counts)
        if end:
            read_to = {"inode": stat.st_ino, "offset": offset + end}
            write_replacing(mark, json.dumps(read_to).encode(), sync=True)
        return sum(counts.values())


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """A non-blocking flock: yields whether this process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
