"""A value counted off the request path (a keyword index's term statistics), by a worker
thread, again whenever the catalogue has changed: both backends' keyword indexes use it."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

CHECK_S = 10.0  # how often `current` looks whether the catalogue moved since the count


class Recounted(Generic[T]):
    """`count()` run by a worker thread at `start` and again when `mark()` (the catalogue's
    mark) differs from its value at the last count; `current` serves the last count (None
    before the first) and wakes the worker at most every CHECK_S."""

    def __init__(self, count: Callable[[], T], mark: Callable[[], Hashable], *,
                 name: str) -> None:
        self._count, self._mark, self._name = count, mark, name
        self.value: T | None = None
        self.checked = -math.inf  # when `current` last compared the marks
        self._counted_at: Hashable = None  # the mark the value was counted at
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        self._worker = threading.Thread(target=self._run, daemon=True, name=self._name)
        self._worker.start()
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def refresh(self) -> None:
        """Count now (in the caller's thread)."""
        with self._lock:  # one at a time, so an older count never replaces a newer
            mark = self._mark()
            self.value = self._count()
            self._counted_at = mark

    def current(self) -> T | None:
        """The last count; every CHECK_S, wake the worker if the catalogue changed
        (meanwhile the old count serves)."""
        now = time.monotonic()
        if self._worker is not None and now - self.checked >= CHECK_S:
            self.checked = now
            if self._mark() != self._counted_at:
                self._wake.set()
        return self.value

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.refresh()
            except Exception:  # searches go on with the old count; the next check retries
                log.exception("counting %s failed", self._name)
                self._counted_at = None
