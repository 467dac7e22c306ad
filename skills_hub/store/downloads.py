"""Download counts, kept in memory and added to the index in one transaction about once a
second (and at close), instead of a write transaction per download.

Counts are not acknowledged writes: a crash (kill -9, power loss) loses at most the last
interval's counts of that process. Each process adds its own counts (`downloads + n`), so
several workers' counts add up.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

from .interfaces import Catalogue

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0


class DownloadCounts:
    """Downloads per (namespace, skill name), flushed by a background thread."""

    def __init__(self, catalogue: Catalogue, interval: float = FLUSH_SECONDS) -> None:
        self._catalogue = catalogue
        self._interval = interval
        self._pending: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, namespace: str, name: str) -> None:
        with self._lock:
            self._pending[(namespace, name)] += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="download-counts")
                self._thread.start()

    def flush(self) -> None:
        """Add what was counted since the last flush to the index (kept for the next try
        if the write fails)."""
        with self._lock:
            batch, self._pending = self._pending, Counter()
        if not batch:
            return
        try:
            self._catalogue.add_downloads(batch)
        except Exception:  # any backend's error (locked, connection lost): keep and retry
            log.exception("could not write %d download counts; retrying", sum(batch.values()))
            with self._lock:
                self._pending.update(batch)

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.flush()
