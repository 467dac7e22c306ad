"""Staged uploads on disk: the `Uploads` interface for ClawHub's two-step publish."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from pathlib import Path

STAGING_TTL_SECONDS = 24 * 3600


class FileUploads:
    """Files uploaded for a coming publish, by sha256, in one folder per namespace (the
    uploading token's), beside the repos (`Settings.uploads_dir`), never in them: every
    process and every node sharing the repos sees them. A publish removes the files it
    used; uploads older than a day go. Implements `interfaces.Uploads`."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, namespace: str, sha256: str, data: bytes) -> None:
        folder = self.root / namespace
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{sha256}.{secrets.token_hex(6)}"
        partial.write_bytes(data)
        partial.replace(folder / sha256)

    def get(self, namespace: str, sha256: str) -> bytes | None:
        try:
            data = (self.root / namespace / sha256).read_bytes()
        except FileNotFoundError:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha256 else None

    def drop(self, namespace: str, hashes: Iterable[str]) -> None:
        for sha256 in hashes:
            (self.root / namespace / sha256).unlink(missing_ok=True)

    def sweep(self, namespace: str) -> None:
        folder = self.root / namespace
        cutoff = time.time() - STAGING_TTL_SECONDS
        for path in folder.iterdir() if folder.is_dir() else ():
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
            except FileNotFoundError:  # another worker swept it first
                continue
