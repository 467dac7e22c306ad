"""The in-memory matrix of skill vectors: cosine by one matrix-vector product.

Rows are unit vectors, so cosine is a dot product. Readers take a snapshot (views of the
first n rows) under a short lock and compute without it; writers append in place into
spare capacity (invisible to snapshots taken before), update rows in place, and replace
the arrays on growth or removal. 100,000 x 384 float32 is 146.5 MiB; one product 2.6 ms
(bench/search_bench.py, 2 cores).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from .embedder import DIM


class VectorIndex:
    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim
        self._lock = threading.Lock()
        self._ids = np.zeros(0, dtype=np.int64)
        self._matrix = np.zeros((0, dim), dtype=np.float32)
        self._n = 0
        self._row: dict[int, int] = {}

    def __len__(self) -> int:
        return self._n

    def __contains__(self, skill_id: object) -> bool:
        return skill_id in self._row

    def replace_all(self, items: Iterable[tuple[int, bytes | np.ndarray]]) -> None:
        """Load every (skill id, vector) at once (start-up, reindex)."""
        ids: list[int] = []
        rows: list[np.ndarray] = []
        for skill_id, vector in items:
            ids.append(skill_id)
            rows.append(_as_vector(vector, self.dim))
        matrix = np.vstack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            self._ids = np.asarray(ids, dtype=np.int64)
            self._matrix = np.ascontiguousarray(matrix, dtype=np.float32)
            self._n = len(ids)
            self._row = {skill_id: i for i, skill_id in enumerate(ids)}

    def upsert(self, skill_id: int, vector: bytes | np.ndarray) -> None:
        vec = _as_vector(vector, self.dim)
        with self._lock:
            row = self._row.get(skill_id)
            if row is not None:
                self._matrix[row] = vec
                return
            if self._n == len(self._ids):  # full: grow by half, copying once
                capacity = max(64, self._n + self._n // 2)
                matrix = np.zeros((capacity, self.dim), dtype=np.float32)
                matrix[:self._n] = self._matrix[:self._n]
                ids = np.full(capacity, -1, dtype=np.int64)
                ids[:self._n] = self._ids[:self._n]
                self._matrix, self._ids = matrix, ids
            self._matrix[self._n] = vec
            self._ids[self._n] = skill_id
            self._row[skill_id] = self._n
            self._n += 1

    def remove(self, skill_id: int) -> None:
        with self._lock:
            row = self._row.pop(skill_id, None)
            if row is None:
                return
            keep = np.ones(self._n, dtype=bool)
            keep[row] = False
            self._matrix = self._matrix[:self._n][keep].copy()
            self._ids = self._ids[:self._n][keep].copy()
            self._n -= 1
            self._row = {int(i): r for r, i in enumerate(self._ids)}

    def get(self, skill_id: int) -> np.ndarray | None:
        with self._lock:
            row = self._row.get(skill_id)
            return None if row is None else self._matrix[row].copy()

    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            return self._ids[:self._n], self._matrix[:self._n]

    def scores(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ids, cosine similarities) of every row."""
        ids, matrix = self._snapshot()
        return ids, matrix @ np.asarray(query, dtype=np.float32)

    def top(self, query: np.ndarray, k: int,
            allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """The k most similar (id, cosine), best first; `allowed` is a sorted id array."""
        ids, sims = self.scores(query)
        if allowed is not None:
            mask = np.isin(ids, allowed, assume_unique=True)
            ids, sims = ids[mask], sims[mask]
        if len(ids) == 0 or k <= 0:
            return []
        if k < len(ids):
            part = np.argpartition(-sims, k - 1)[:k]
        else:
            part = np.arange(len(ids))
        order = part[np.lexsort((ids[part], -sims[part]))]  # ties broken by id: stable pages
        return [(int(ids[i]), float(sims[i])) for i in order]

    def above(self, query: np.ndarray, threshold: float) -> list[tuple[int, float]]:
        """Every (id, cosine) at or above `threshold`, best first."""
        ids, sims = self.scores(query)
        hit = np.nonzero(sims >= threshold)[0]
        order = hit[np.argsort(-sims[hit], kind="stable")]
        return [(int(ids[i]), float(sims[i])) for i in order]


def _as_vector(vector: bytes | np.ndarray, dim: int) -> np.ndarray:
    vec = (np.frombuffer(vector, dtype=np.float32) if isinstance(vector, bytes | bytearray)
           else np.asarray(vector, dtype=np.float32).reshape(-1))
    if vec.shape != (dim,):
        raise ValueError(f"a vector of {vec.shape[0]} values where {dim} were expected")
    return vec


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()
