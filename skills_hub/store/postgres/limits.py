"""Rate-limit buckets in PostgreSQL: shared by every process of every node."""

from __future__ import annotations

from .db import Table

# One statement: refill, check and spend under the row's lock (the upsert's conflict
# path locks the row, so two nodes taking from one bucket at once serialise on it).
_TAKE = """
INSERT INTO rate_buckets AS b (key, level, since)
VALUES (%(key)s, %(burst)s - %(units)s, %(now)s)
ON CONFLICT (key) DO UPDATE SET
    level = least(%(burst)s, b.level + greatest(0, %(now)s - b.since) * %(rate)s) - %(units)s,
    since = greatest(b.since, %(now)s)
WHERE %(force)s
    OR least(%(burst)s, b.level + greatest(0, %(now)s - b.since) * %(rate)s) >= %(units)s
RETURNING level
"""


class RateBuckets(Table):
    """Token buckets per key in `rate_buckets` (m002): one statement a take."""

    def take(self, key: str, units: float, *, rate: float, burst: float, now: float,
             force: bool = False) -> float | None:
        if units > burst and not force:  # never fits: say so without a write
            return self.level(key, rate=rate, burst=burst, now=now)
        params = {"key": key, "units": float(units), "rate": float(rate),
                  "burst": float(burst), "now": float(now), "force": force}
        with self._tx() as conn:
            if conn.execute(_TAKE, params).fetchone() is not None:
                return None
        return self.level(key, rate=rate, burst=burst, now=now)

    def level(self, key: str, *, rate: float, burst: float, now: float) -> float:
        with self._read() as conn:
            row = conn.execute("SELECT level, since FROM rate_buckets WHERE key = %s",
                               (key,)).fetchone()
        return float(burst) if row is None else \
            min(float(burst), float(row[0]) + max(0.0, now - float(row[1])) * rate)

    def sweep(self, prefix: str, *, rate: float, burst: float, now: float) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM rate_buckets WHERE left(key, %s) = %s "
                "AND level + greatest(0, %s - since) * %s >= %s",
                (len(prefix), prefix, float(now), float(rate), float(burst)))
        return int(cur.rowcount)
