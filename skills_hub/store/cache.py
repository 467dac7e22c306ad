"""Memory and disk caches: a byte-bounded, thread-safe LRU for immutable content (bundles,
archives); per-process facts that every process drops when the home's `Generation` moves;
content-addressed immutable files a reverse proxy can serve. Each cache has a name, under
which /metrics counts its hits and misses (`skills_hub_cache_hits_total{cache="..."}`)."""

from __future__ import annotations

import mmap
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Generic, TypeVar

from ..metrics import cache_counters

if TYPE_CHECKING:
    from . import interfaces

T = TypeVar("T")


class ContentCache(Generic[T]):
    def __init__(self, max_bytes: int, size_of: Callable[[T], int], *,
                 name: str = "content") -> None:
        self.max_bytes = max_bytes
        self._hit, self._miss = cache_counters(name)
        self._size_of = size_of
        self._items: OrderedDict[Hashable, T] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], T]) -> T:
        """The cached value for `key`, made (outside the lock) and kept when missing."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                value = self._items[key]
                self._hit()
                return value
        self._miss()
        value = make()
        size = self._size_of(value)
        if size > self.max_bytes:
            return value
        with self._lock:
            if key not in self._items:
                self._items[key] = value
                self._bytes += size
            while self._bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._bytes -= self._size_of(old)
        return value


class Generation:
    """A value shared by every process of one home (a 16-byte memory-mapped file), replaced
    after each write that can change what a `FactCache` holds. Reading it is a memory read,
    not a system call or a query, so a cache can check it on every request."""

    SIZE = 16

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._guard = threading.Lock()

    def current(self) -> bytes:
        return self._mapped()[:self.SIZE]

    def bump(self) -> None:
        """Tell every process's caches that the facts changed (call it after the commit)."""
        self._mapped()[:self.SIZE] = os.urandom(self.SIZE)

    def _mapped(self) -> mmap.mmap:
        if self._map is None:
            with self._guard:
                if self._map is None:
                    self._map = self._open()
        return self._map

    def _open(self) -> mmap.mmap:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size < self.SIZE:
                os.ftruncate(fd, self.SIZE)
            return mmap.mmap(fd, self.SIZE)
        finally:
            os.close(fd)


K = TypeVar("K", bound=Hashable)


class FactCache(Generic[K, T]):
    """Facts read from the index, kept per process until the home's `Generation` moves.

    A value is kept only if the generation did not move while it was being read, so a
    write that commits and then bumps can never leave a stale fact behind. `make` returning
    None (not found) is not kept: the caller takes its slow path and its errors."""

    def __init__(self, generation: interfaces.Generation, max_items: int = 50_000, *,
                 name: str = "facts") -> None:
        self._hit, self._miss = cache_counters(name)
        self._generation = generation
        self._max_items = max_items
        self._items: dict[K, T] = {}
        self._seen = b""
        self._lock = threading.Lock()

    def get_or_make(self, key: K, make: Callable[[], T | None]) -> T | None:
        now = self._generation.current()
        if now != self._seen:
            with self._lock:
                self._items.clear()
                self._seen = now
        value = self._items.get(key)
        if value is not None:
            self._hit()
            return value
        self._miss()
        value = make()
        if value is None or self._generation.current() != now:
            return value
        with self._lock:
            if self._seen == now:
                if len(self._items) >= self._max_items:
                    del self._items[next(iter(self._items))]
                self._items[key] = value
        return value


class ImmutableFiles:
    """Content-addressed files under one folder (`<sha256>.<ext>`), each written once by an
    atomic rename, never changed: what a reverse proxy may serve by itself."""

    def __init__(self, folder: Path, *, name: str = "files") -> None:
        self.folder = folder
        self._hit, self._miss = cache_counters(name)

    def path(self, sha256: str, ext: str) -> Path:
        return self.folder / f"{sha256}.{ext}"

    def ensure(self, sha256: str, ext: str, data: bytes) -> Path:
        """The file of `data`, written first if it is not there yet."""
        path = self.path(sha256, ext)
        if path.exists():
            self._hit()
        else:
            self._miss()
            self.folder.mkdir(parents=True, exist_ok=True)
            write_replacing(path, data)
        return path


def write_replacing(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Write `path` by a rename of a temporary file beside it, readable by all (a reverse
    proxy's workers read these files): readers see the old file or the new one, never
    half of one. `sync` flushes it to disk before the rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
