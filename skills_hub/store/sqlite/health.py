"""Scheduled health checks in SQLite: the scheduler's lease, each version's last check and
claim, the log of checks (m011). Every process of a home shares them through index.db."""

from __future__ import annotations

from ...domain import HealthCandidate, HealthCheckRow
from .db import Table

LEASE = "health-scheduler"

# Conditional upsert: the row is written only when nobody holds the lease, this holder
# does, or it expired; `changes()` then says whether this holder has it.
_TAKE = """
INSERT INTO health_lease (name, holder, expires_at, taken_at) VALUES (?, ?, ?, ?)
ON CONFLICT (name) DO UPDATE SET
    holder = excluded.holder,
    expires_at = excluded.expires_at,
    taken_at = CASE WHEN health_lease.holder = excluded.holder THEN health_lease.taken_at
                    ELSE excluded.taken_at END
WHERE health_lease.holder = excluded.holder OR health_lease.expires_at < excluded.taken_at
"""

_CANDIDATES = """
SELECT s.namespace, s.name, v.version, n.visibility, v.published_at,
       s.latest_version = v.version AS is_latest, s.downloads,
       r.verdict, r.pipeline AS report_pipeline, r.checked_at AS report_checked_at,
       h.fingerprint, h.checked_at, h.downloads AS downloads_at_check, h.ema AS ema_at_check,
       st.ema, coalesce(d.recent, 0) AS recent_reports, h.claimed_by, h.claimed_until
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
           FROM outcome_days WHERE day >= ? GROUP BY namespace, name, version) d
    ON d.namespace = s.namespace AND d.name = s.name AND d.version = v.version
"""

# A claim is taken when no other holder's claim is live and the version's last check is
# still the one the claimer saw (`IS`: NULL-safe, a version never checked).
_CLAIM = """
INSERT INTO health_state (namespace, name, version, claimed_by, claimed_until)
VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace, name, version) DO UPDATE SET
    claimed_by = excluded.claimed_by, claimed_until = excluded.claimed_until
WHERE (health_state.claimed_by IS NULL OR health_state.claimed_by = excluded.claimed_by
       OR health_state.claimed_until < ?)
  AND health_state.checked_at IS ?
"""

_COLUMNS = ("namespace, name, version, at, kind, holder, fingerprint, priority, reasons, "
            "old_verdict, new_verdict, health, note, ms, downloads, ema")


class HealthChecks(Table):
    """`interfaces.HealthChecks` over index.db."""

    def take_lease(self, holder: str, *, now: float, ttl: float) -> bool:
        with self._tx() as conn:
            return conn.execute(_TAKE, (LEASE, holder, now + ttl, now)).rowcount == 1

    def release_lease(self, holder: str) -> None:
        with self._tx() as conn:
            conn.execute("DELETE FROM health_lease WHERE name = ? AND holder = ?",
                         (LEASE, holder))

    def lease(self) -> tuple[str, float] | None:
        row = self._conn().execute("SELECT holder, expires_at FROM health_lease WHERE name = ?",
                                   (LEASE,)).fetchone()
        return None if row is None else (str(row[0]), float(row[1]))

    def candidates(self, *, since_day: str) -> list[HealthCandidate]:
        rows = self._conn().execute(_CANDIDATES, (since_day,)).fetchall()
        return [HealthCandidate(**{**dict(r), "is_latest": bool(r["is_latest"])})
                for r in rows]

    def claim(self, namespace: str, name: str, version: str, holder: str, *, now: float,
              until: float, checked_at: float | None) -> bool:
        with self._tx() as conn:
            cur = conn.execute(_CLAIM, (namespace, name, version, holder, until, now,
                                        checked_at))
            if cur.rowcount != 1:
                return False
            # The insert path takes a version never seen, whatever `checked_at` said.
            row = conn.execute("SELECT checked_at FROM health_state WHERE namespace = ? AND "
                               "name = ? AND version = ?", (namespace, name, version)).fetchone()
            return bool(row[0] == checked_at)

    def release_claim(self, namespace: str, name: str, version: str, holder: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE health_state SET claimed_by = NULL, claimed_until = NULL "
                         "WHERE namespace = ? AND name = ? AND version = ? AND claimed_by = ?",
                         (namespace, name, version, holder))

    def record_check(self, check: HealthCheckRow) -> None:
        with self._tx() as conn:
            conn.execute(f"INSERT INTO health_checks ({_COLUMNS}) VALUES "
                         f"({', '.join('?' for _ in _COLUMNS.split(', '))})", _values(check))
            conn.execute(
                "INSERT INTO health_state (namespace, name, version, fingerprint, checked_at, "
                "downloads, ema, claimed_by, claimed_until) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, "
                "NULL) ON CONFLICT (namespace, name, version) DO UPDATE SET fingerprint = "
                "excluded.fingerprint, checked_at = excluded.checked_at, downloads = "
                "excluded.downloads, ema = excluded.ema, claimed_by = NULL, claimed_until = NULL",
                (check.namespace, check.name, check.version, check.fingerprint, check.at,
                 check.downloads, check.ema))

    def checks_since(self, at: float) -> int:
        row = self._conn().execute("SELECT count(*) FROM health_checks WHERE at >= ?",
                                   (at,)).fetchone()
        return int(row[0])

    def recent_checks(self, *, readable: frozenset[str] | None, changed: bool,
                      limit: int, namespace: str | None = None) -> list[HealthCheckRow]:
        clauses, params = [], []
        if readable is not None:
            marks = ", ".join("?" for _ in readable)
            clauses.append("(coalesce(n.visibility, 'public') = 'public'"
                           + (f" OR c.namespace IN ({marks}))" if readable else ")"))
            params.extend(sorted(readable))
        if changed:
            clauses.append("(c.old_verdict IS NOT c.new_verdict OR c.health != '')")
        if namespace is not None:
            clauses.append("c.namespace = ?")
            params.append(namespace)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        columns = ", ".join(f"c.{c}" for c in _COLUMNS.split(", "))
        rows = self._conn().execute(
            f"SELECT {columns} FROM health_checks c LEFT JOIN namespaces n "
            f"ON n.name = c.namespace {where} ORDER BY c.at DESC, c.id DESC LIMIT ?",
            (*params, limit)).fetchall()
        return [HealthCheckRow(**dict(r)) for r in rows]

    def prune_checks(self, before: float) -> int:
        with self._tx() as conn:
            return int(conn.execute("DELETE FROM health_checks WHERE at < ?",
                                    (before,)).rowcount)


def _values(check: HealthCheckRow) -> tuple[object, ...]:
    return (check.namespace, check.name, check.version, check.at, check.kind, check.holder,
            check.fingerprint, check.priority, check.reasons, check.old_verdict,
            check.new_verdict, check.health, check.note, check.ms, check.downloads, check.ema)
