"""Rate-limit buckets in SQLite: shared by every worker process of a home."""

from __future__ import annotations

from .db import Table


class RateBuckets(Table):
    """Token buckets per key in `rate_buckets` (m010), one write transaction a take."""

    def take(self, key: str, units: float, *, rate: float, burst: float, now: float,
             force: bool = False) -> float | None:
        with self._tx() as conn:
            row = conn.execute("SELECT level, since FROM rate_buckets WHERE key = ?",
                               (key,)).fetchone()
            level = burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * rate)
            if units > level and not force:
                return level
            conn.execute("INSERT OR REPLACE INTO rate_buckets (key, level, since) "
                         "VALUES (?, ?, ?)", (key, level - units, max(now, row[1] if row else now)))
        return None

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        row = self._conn().execute("SELECT level, since FROM rate_buckets WHERE key = ?",
                                   (key,)).fetchone()
        return burst if row is None else min(burst, row[0] + max(0.0, now - row[1]) * rate)

    def sweep(self, prefix: str, *, rate: float, burst: float, now: float) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM rate_buckets WHERE substr(key, 1, ?) = ? "
                "AND level + max(0, ? - since) * ? >= ?",
                (len(prefix), prefix, now, rate, burst))
        return int(cur.rowcount)
