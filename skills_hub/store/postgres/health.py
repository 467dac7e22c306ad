"""Scheduled health checks in PostgreSQL: the scheduler's lease, each version's last check
and claim, the log of checks (m003), shared by every process of every node."""

from __future__ import annotations

from ...domain import HealthCandidate, HealthCheckRow
from .db import Table

LEASE = "health-scheduler"

# One conditional upsert: the conflict path locks the row, so two nodes taking the lease
# at once serialise on it and exactly one sees its own holder come back.
_TAKE = """
INSERT INTO health_lease AS l (name, holder, expires_at, taken_at)
VALUES (%(name)s, %(holder)s, %(expires)s, %(now)s)
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    expires_at = excluded.expires_at,
    taken_at = CASE WHEN l.holder = excluded.holder THEN l.taken_at ELSE excluded.taken_at END
WHERE l.holder = excluded.holder OR l.expires_at < excluded.taken_at
RETURNING holder
"""

_CANDIDATES = """
SELECT s.namespace, s.name, v.version, n.visibility, v.published_at,
       (s.latest_version = v.version)::int, s.downloads,
       r.verdict, r.pipeline, r.checked_at,
       h.fingerprint, h.checked_at, h.downloads, h.ema,
       st.ema, coalesce(d.recent, 0), h.claimed_by, h.claimed_until
FROM versions v
JOIN skills s ON s.id = v.skill_id
JOIN namespaces n ON n.name = s.namespace
LEFT JOIN reports r ON r.namespace = s.namespace AND r.name = s.name
    AND r.version = v.version AND r.content_sha256 = v.content_sha256
LEFT JOIN health_state h ON h.namespace = s.namespace AND h.name = s.name
    AND h.version = v.version
LEFT JOIN version_stats st ON st.namespace = s.namespace AND st.name = s.name
    AND st.version = v.version
LEFT JOIN (SELECT namespace, name, version, sum(successes + failures) AS recent
           FROM outcome_days WHERE day >= %s GROUP BY namespace, name, version) d
    ON d.namespace = s.namespace AND d.name = s.name AND d.version = v.version
"""

# A claim is taken when no other holder's claim is live and the version's last check is
# still the one the claimer saw; RETURNING says which check the row now holds.
_CLAIM = """
INSERT INTO health_state AS h (namespace, name, version, claimed_by, claimed_until)
VALUES (%(namespace)s, %(name)s, %(version)s, %(holder)s, %(until)s)
ON CONFLICT (namespace, name, version) DO UPDATE SET
    claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until
WHERE (h.claimed_by IS NULL OR h.claimed_by = excluded.claimed_by
       OR h.claimed_until < %(now)s)
  AND h.checked_at IS NOT DISTINCT FROM %(checked_at)s::double precision
RETURNING checked_at
"""

_COLUMNS = ("namespace", "name", "version", "at", "kind", "holder", "fingerprint", "priority",
            "reasons", "old_verdict", "new_verdict", "health", "note", "ms", "downloads", "ema")


class HealthChecks(Table):
    """`interfaces.HealthChecks` over the shared database."""

    def take_lease(self, holder: str, *, now: float, ttl: float) -> bool:
        with self._tx() as conn:
            row = conn.execute(_TAKE, {"name": LEASE, "holder": holder,
                                       "expires": float(now + ttl), "now": float(now)}
                               ).fetchone()
        return row is not None

    def release_lease(self, holder: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM health_lease WHERE name = %s AND holder = %s",
                         (LEASE, holder))

    def lease(self) -> tuple[str, float] | None:
        with self._read() as conn:
            row = conn.execute("SELECT holder, expires_at FROM health_lease WHERE name = %s",
                               (LEASE,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def candidates(self, *, since_day: str) -> list[HealthCandidate]:
        with self._read() as conn:
            rows = conn.execute(_CANDIDATES, (since_day,)).fetchall()
        return [HealthCandidate(ns, name, version, visibility, published, bool(latest),
                                int(downloads), verdict, pipeline, report_at, fingerprint,
                                checked_at, downloads_then, ema_then, ema, int(recent),
                                claimed_by, claimed_until)
                for (ns, name, version, visibility, published, latest, downloads, verdict,
                     pipeline, report_at, fingerprint, checked_at, downloads_then, ema_then,
                     ema, recent, claimed_by, claimed_until) in rows]

    def claim(self, namespace: str, name: str, version: str, holder: str, *, now: float,
              until: float, checked_at: float | None) -> bool:
        with self._tx() as conn:
            row = conn.execute(_CLAIM, {"namespace": namespace, "name": name,
                                        "version": version, "holder": holder,
                                        "until": float(until), "now": float(now),
                                        "checked_at": checked_at}).fetchone()
        # The insert path takes a version never seen, whatever `checked_at` said.
        return row is not None and row[0] == checked_at

    def release_claim(self, namespace: str, name: str, version: str, holder: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE health_state SET claimed_by = NULL, claimed_until = NULL "
                         "WHERE namespace = %s AND name = %s AND version = %s "
                         "AND claimed_by = %s", (namespace, name, version, holder))

    def record_check(self, check: HealthCheckRow) -> None:
        with self._tx() as conn:
            conn.execute(f"INSERT INTO health_checks ({', '.join(_COLUMNS)}) VALUES "
                         f"({', '.join('%s' for _ in _COLUMNS)})",
                         tuple(getattr(check, c) for c in _COLUMNS))
            conn.execute(
                "INSERT INTO health_state (namespace, name, version, fingerprint, checked_at, "
                "downloads, ema, claimed_by, claimed_until) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s, NULL, NULL) ON CONFLICT (namespace, name, version) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, checked_at = excluded.checked_at, "
                "downloads = excluded.downloads, ema = excluded.ema, claimed_by = NULL, "
                "claimed_until = NULL",
                (check.namespace, check.name, check.version, check.fingerprint,
                 float(check.at), check.downloads, check.ema))

    def checks_since(self, at: float) -> int:
        with self._read() as conn:
            row = conn.execute("SELECT count(*) FROM health_checks WHERE at >= %s",
                               (float(at),)).fetchone()
        return int(row[0]) if row else 0

    def recent_checks(self, *, readable: frozenset[str] | None, changed: bool,
                      limit: int, namespace: str | None = None) -> list[HealthCheckRow]:
        clauses: list[str] = []
        params: list[object] = []
        if readable is not None:
            clauses.append("(coalesce(n.visibility, 'public') = 'public' "
                           "OR c.namespace = ANY(%s))")
            params.append(sorted(readable))
        if changed:
            clauses.append("(c.old_verdict IS DISTINCT FROM c.new_verdict OR c.health != '')")
        if namespace is not None:
            clauses.append("c.namespace = %s")
            params.append(namespace)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {', '.join('c.' + c for c in _COLUMNS)} FROM health_checks c "
                f"LEFT JOIN namespaces n ON n.name = c.namespace {where} "
                f"ORDER BY c.at DESC, c.id DESC LIMIT %s", (*params, limit)).fetchall()
        return [HealthCheckRow(*row) for row in rows]

    def prune_checks(self, before: float) -> int:
        with self._tx() as conn:
            return int(conn.execute("DELETE FROM health_checks WHERE at < %s",
                                    (float(before),)).rowcount)
