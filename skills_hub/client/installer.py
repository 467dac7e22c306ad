"""Local installs: verify what was downloaded, write it atomically, record it in the lockfile."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from skills_hub.errors import BadRequest, HubError, NotFound
from skills_hub.skill.bundle import Bundle, from_directory, from_targz

from .errors import IntegrityError
from .hub import HubClient
from .lockfile import LockEntry, Lockfile, now

# Skill names per the agentskills.io spec; also what keeps a name from escaping the folder.
_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class Deprecated(HubError):
    """The version was deprecated by a failed re-check of the registry's checks."""

    status = 409
    code = "deprecated"


@dataclass(frozen=True)
class Installed:
    """The outcome of one install: the new lock entry, its folder, what it replaced."""

    entry: LockEntry
    path: Path
    previous: LockEntry | None
    verdict: str = ""  # the registry's checks verdict of the installed version ("" from git)


def skill_path(skills_dir: Path, name: str) -> Path:
    """The folder of skill `name`; refuse names that are not valid skill names."""
    if not _NAME.match(name) or "--" in name:
        raise BadRequest(f"{name!r} is not a valid skill name",
                         extra={"hint": "skill names are lowercase letters, digits and "
                                        "single hyphens"})
    return skills_dir / name


def install_from_hub(hub: HubClient, namespace: str, name: str, version: str | None,
                     skills_dir: Path, *, allow_deprecated: bool = False,
                     client_id: str | None = None) -> Installed:
    """Install `namespace/name` at `version` (None: the latest the server resolves for
    `client_id`, which may be a canary; given: pinned).

    A deprecated version (a re-check of the registry's checks failed it, or agents'
    outcomes collapsed) is refused unless `allow_deprecated`.
    """
    target = skill_path(skills_dir, name)
    meta = hub.version(namespace, name, version or "latest", client_id=client_id)
    if meta.get("deprecated") and not allow_deprecated:
        why = meta.get("deprecated_reason") or "the registry's checks now fail it"
        raise Deprecated(
            f"{namespace}/{name} {meta['version']} is deprecated: {why}",
            extra={"hint": f"read `skills-hub findings {namespace}/{name}@{meta['version']}`"
                           "; pass --allow-deprecated to install it anyway"})
    download = hub.archive(namespace, name, meta["version"], "tar.gz")
    archive_sha = verify_archive(download.data, download.sha256, meta)
    bundle = from_targz(download.data)
    verify_content(bundle, meta["content_sha256"], f"{namespace}/{name} {meta['version']}")
    entry = LockEntry(kind="hub", source=hub.server, namespace=namespace, name=name,
                      version=meta["version"], commit=meta.get("commit") or "",
                      content_sha256=meta["content_sha256"], archive_sha256=archive_sha,
                      pinned=version is not None, installed_at=now())
    return replace(install_bundle(bundle, entry, target), verdict=str(meta.get("verdict") or ""))


def install_bundle(bundle: Bundle, entry: LockEntry, target: Path) -> Installed:
    """Write the files (replacing an older install only once complete), then the lockfile."""
    lock = Lockfile(target.parent)
    previous = lock.get(entry.name)
    write_bundle(bundle, target, entry.content_sha256)
    lock.put(entry)
    return Installed(entry, target, previous)


def verify_archive(data: bytes, header_sha: str | None, meta: dict[str, object]) -> str:
    """The archive's sha256, after checking it against the download's header and the
    version's published digest; raise IntegrityError on any mismatch."""
    actual = hashlib.sha256(data).hexdigest()
    archives = meta.get("archives")
    published = archives.get("tar.gz", {}).get("sha256") if isinstance(archives, dict) else None
    label = f"{meta.get('namespace')}/{meta.get('name')} {meta.get('version')}"
    if not header_sha:
        raise IntegrityError(f"the download of {label} came without an X-Checksum-Sha256 "
                             "header; refusing to install unverified bytes")
    if not published:
        raise IntegrityError(f"the registry published no tar.gz digest for {label}")
    for source, expected in (("X-Checksum-Sha256 header", header_sha),
                             ("version's archive digest", published)):
        if actual != expected.strip().lower():
            raise IntegrityError(f"checksum mismatch for {label}: the archive's sha256 is "
                                 f"{actual}, the {source} says {expected}; nothing was "
                                 "installed")
    return actual


def verify_content(bundle: Bundle, expected: str, label: str) -> None:
    """Raise IntegrityError unless the bundle's content hash is `expected`."""
    actual = bundle.content_hash()
    if actual != expected:
        raise IntegrityError(f"content hash mismatch for {label}: the files hash to {actual}, "
                             f"expected {expected}; nothing was installed")


def write_bundle(bundle: Bundle, target: Path, expected_hash: str) -> None:
    """Write the files into a temp folder beside `target`, check that what landed on disk
    hashes to `expected_hash`, then rename it into place.

    An existing folder is moved aside only after the new one is complete, and put back
    if the final rename fails. Executables get mode 755, other files 644.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".new", dir=target.parent))
    try:
        _write_files(bundle, staging)
        verify_content(from_directory(staging), expected_hash, f"the files written to {staging}")
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_files(bundle: Bundle, root: Path) -> None:
    os.chmod(root, 0o755)  # mkdtemp makes it 0700
    for rel, data in bundle.files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(dest, 0o755 if rel in bundle.executables else 0o644)


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists() and not target.is_symlink():
        os.rename(staging, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    old.rmdir()  # only the unique name is wanted; rename needs it free
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    _remove(old)


def uninstall(skills_dir: Path, name: str) -> LockEntry:
    """Remove an installed skill's folder and its lock entry."""
    target = skill_path(skills_dir, name)
    lock = Lockfile(skills_dir)
    entry = lock.get(name)
    if entry is None:
        raise NotFound(f"{name} is not installed in {skills_dir}",
                       extra={"hint": "`skills-hub list` shows what is installed there"})
    if target.exists() or target.is_symlink():
        doomed = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".del", dir=skills_dir))
        doomed.rmdir()
        os.rename(target, doomed)
        _remove(doomed)
    lock.remove(name)
    return entry


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    else:
        shutil.rmtree(path)
