"""The lockfile of a skills folder, `.skills-hub-lock.json`: what was installed from where."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import ConfigError

LOCK_NAME = ".skills-hub-lock.json"
LOCK_FORMAT = 1


@dataclass(frozen=True)
class LockEntry:
    """One installed skill.

    `kind` is "hub" (source is the server URL, namespace the skill's namespace) or "git"
    (source is the git URL, namespace the tap's name). `archive_sha256` is None for git.
    """

    kind: str
    source: str
    namespace: str
    name: str
    version: str
    commit: str
    content_sha256: str
    archive_sha256: str | None
    pinned: bool
    installed_at: str

    @property
    def ref(self) -> str:
        """`namespace/name`, the form `install` accepts."""
        return f"{self.namespace}/{self.name}"

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LockEntry:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Lockfile:
    """The entries of one skills folder, read on creation and written atomically."""

    def __init__(self, skills_dir: Path) -> None:
        self.path = skills_dir / LOCK_NAME
        self.entries: dict[str, LockEntry] = self._read()

    def _read(self) -> dict[str, LockEntry]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the lockfile {self.path}: {exc}",
                              extra={"hint": "fix the JSON or delete the file"}) from exc
        try:
            return {name: LockEntry.from_dict(entry)
                    for name, entry in sorted(raw.get("skills", {}).items())}
        except (AttributeError, TypeError) as exc:
            raise ConfigError(f"the lockfile {self.path} has an unexpected shape: {exc}",
                              extra={"hint": "fix the file or delete it"}) from exc

    def get(self, name: str) -> LockEntry | None:
        return self.entries.get(name)

    def put(self, entry: LockEntry) -> None:
        self.entries[entry.name] = entry
        self.save()

    def remove(self, name: str) -> None:
        self.entries.pop(name, None)
        self.save()

    def save(self) -> None:
        body = {"lockfile_version": LOCK_FORMAT,
                "skills": {name: asdict(self.entries[name]) for name in sorted(self.entries)}}
        write_atomic(self.path, (json.dumps(body, indent=2) + "\n").encode("utf-8"), 0o644)


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write a file through a temp file in the same folder, fsync and rename over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
