"""Outcome reports, trust, health, proposals and canaries in PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from ...domain import (
    TRUST_LEVELS,
    CanaryRow,
    NewOutcome,
    OutcomeRecord,
    ProposalRow,
    TaskStats,
    TaskVector,
    TrustEvent,
    VersionStats,
)
from .. import guards
from ..columns import _PROPOSAL_COLUMNS
from ..evidence import OUTCOME_COLUMNS, OUTCOME_KEY, PROPOSAL_KEY, page_query
from .db import Conn, Table, nul_misses
from .sql import _proposal, lock_skill

_REPORT_COLUMNS = ("reporter", "report_id", "version", "outcome", "failure_kind", "score",
                   "signals_json", "agent", "model", "client", "at", "task_key", "discount")
_REPORT_TYPES = ("text", "text", "text", "text", "text", "float8", "text", "text", "text",
                 "text", "text", "text", "text")


class Outcomes(Table):
    """Outcome reports and what they fold into; trust and health."""

    def record_outcomes(self, namespace: str, name: str, reports: list[NewOutcome], *,
                        decay: Callable[[float], float],
                        ema: Callable[[float | None, bool], float],
                        client_cap: int | None = None) -> list[NewOutcome]:
        """Store the reports not seen before (by reporter and id) and fold them into the
        per-version stats, the decayed totals and the client counts, all in one
        transaction. Returns the reports that were new.

        A batch is a handful of statements whatever its size (the reports go in as arrays,
        the folds are computed here and written back per version, day and client); the
        skill's advisory lock makes concurrent batches for one skill take turns, as SQLite's
        single writer does, so none of the read-modify-writes loses another's counts."""
        if not reports:
            return []
        with self._tx() as conn:
            lock_skill(self.db, conn, namespace, name)
            # What the guards need, read before this batch's reports are in the table.
            seen = _seen_tasks(conn, namespace, name, guards.task_keys(reports))
            counts = _client_counts(conn, namespace, name, guards.client_keys(reports))
            fresh = _insert_reports(conn, namespace, name, reports)
            fresh, after = guards.guard(fresh, seen, counts, client_cap)
            _write_guards(conn, namespace, name, fresh, after)
            if fresh:
                _fold_version_stats(conn, namespace, name, fresh, ema)
                _fold_totals(conn, namespace, name, fresh, decay)
                _fold_days(conn, namespace, name, fresh)
                _fold_clients(conn, namespace, name, fresh)
        return fresh

    @nul_misses(dict)
    def version_stats(self, namespace: str, name: str) -> dict[str, VersionStats]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT version, successes, failures, infra_errors, score_sum, scored, ema, "
                "last_at, discounted FROM version_stats WHERE namespace = %s AND name = %s",
                (namespace, name)).fetchall()
        return {version: VersionStats(version, wins, losses, infra,
                                      score_sum / scored if scored else None, level, last,
                                      discounted)
                for version, wins, losses, infra, score_sum, scored, level, last, discounted
                in rows}

    def add_authors(self, namespace: str, name: str, version: str,
                    authors: Iterable[str]) -> None:
        """Remember who published a version (reporter keys: token hashes, `user:<id>`)."""
        keys = list(dict.fromkeys(authors))
        if not keys:
            return
        with self._tx() as conn:
            conn.execute("INSERT INTO version_authors (namespace, name, version, author) "
                         "SELECT %s, %s, %s, unnest(%s::text[]) ON CONFLICT DO NOTHING",
                         (namespace, name, version, keys))

    @nul_misses(dict)
    def authors(self, namespace: str, name: str) -> dict[str, frozenset[str]]:
        """version -> the reporter keys that published it (`add_authors`)."""
        with self._read() as conn:
            rows = conn.execute("SELECT version, author FROM version_authors WHERE "
                                "namespace = %s AND name = %s", (namespace, name)).fetchall()
        out: dict[str, set[str]] = {}
        for version, author in rows:
            out.setdefault(str(version), set()).add(str(author))
        return {version: frozenset(keys) for version, keys in out.items()}

    @nul_misses(list)
    def outcome_days(self, namespace: str, name: str,
                     since: str) -> list[tuple[str, str, int, int]]:
        """(version, day, successes, failures) of a skill's counted reports from the UTC day
        `since` (YYYY-MM-DD) on, one row per version and day (the evidence chart's data; a
        counter kept by `record_outcomes`)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT version, day, successes, failures FROM outcome_days "
                "WHERE namespace = %s AND name = %s AND day >= %s",
                (namespace, name, since)).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    @nul_misses(int)
    def success_clients(self, namespace: str, name: str) -> int:
        """Distinct clients with at least one success on any version of the skill (a
        counter kept by `record_outcomes`)."""
        with self._read() as conn:
            row = conn.execute("SELECT clients FROM skill_client_counts "
                               "WHERE namespace = %s AND name = %s", (namespace, name)).fetchone()
        return int(row[0]) if row else 0

    @nul_misses(lambda: "community")
    def trust_of(self, namespace: str, name: str) -> str:
        with self._read() as conn:
            row = conn.execute("SELECT trust FROM skill_trust WHERE namespace = %s "
                               "AND name = %s", (namespace, name)).fetchone()
        return str(row[0]) if row else "community"

    def change_trust(self, namespace: str, name: str, old: str, new: str, reason: str,
                     actor: str) -> bool:
        """Move trust from `old` to `new` (compare-and-set); False when it was not `old`."""
        if new not in TRUST_LEVELS:
            raise ValueError(f"unknown trust level {new!r}")
        with self._tx() as conn:
            lock_skill(self.db, conn, namespace, name)
            row = conn.execute("SELECT trust FROM skill_trust WHERE namespace = %s "
                               "AND name = %s", (namespace, name)).fetchone()
            if (str(row[0]) if row else "community") != old:
                return False
            conn.execute("INSERT INTO skill_trust (namespace, name, trust) VALUES (%s, %s, %s) "
                         "ON CONFLICT (namespace, name) DO UPDATE SET trust = excluded.trust",
                         (namespace, name, new))
            conn.execute("UPDATE skills SET trust = %s WHERE namespace = %s AND name = %s",
                         (new, namespace, name))
            conn.execute("INSERT INTO trust_events (namespace, name, old, new, reason, actor, "
                         "at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                         (namespace, name, old, new, reason, actor,
                          datetime.now(UTC).isoformat()))
        return True

    @nul_misses(list)
    def trust_events(self, namespace: str, name: str, limit: int = 50) -> list[TrustEvent]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT old, new, reason, actor, at FROM trust_events WHERE namespace = %s "
                "AND name = %s ORDER BY id DESC LIMIT %s", (namespace, name, limit)).fetchall()
        return [TrustEvent(*row) for row in rows]

    def set_health(self, namespace: str, name: str, version: str, status: str,
                   reason: str) -> bool:
        """Record a version's health (`deprecated` or `healthy`); False if unchanged."""
        with self._tx() as conn:
            lock_skill(self.db, conn, namespace, name)
            row = conn.execute("SELECT status FROM version_health WHERE namespace = %s "
                               "AND name = %s AND version = %s",
                               (namespace, name, version)).fetchone()
            if (row[0] if row else "healthy") == status:
                return False
            conn.execute(
                "INSERT INTO version_health (namespace, name, version, status, reason, at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (namespace, name, version) "
                "DO UPDATE SET status = excluded.status, reason = excluded.reason, "
                "at = excluded.at",
                (namespace, name, version, status, reason, datetime.now(UTC).isoformat()))
        return True

    @nul_misses(dict)
    def health(self, namespace: str, name: str) -> dict[str, tuple[str, str]]:
        """version -> (status, reason) for versions with a recorded health."""
        with self._read() as conn:
            rows = conn.execute("SELECT version, status, reason FROM version_health "
                                "WHERE namespace = %s AND name = %s",
                                (namespace, name)).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def outcome_totals(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[tuple[float, float, str]]]:
        """(namespace, name) -> [(successes, failures, as_of)] per version, undecayed."""
        wanted = list(dict.fromkeys(keys))
        out: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        if not wanted:
            return out
        with self._read() as conn:
            rows = conn.execute(
                "SELECT o.namespace, o.name, o.successes, o.failures, o.as_of "
                "FROM outcome_totals o JOIN unnest(%s::text[], %s::text[]) AS k(namespace, name) "
                "ON o.namespace = k.namespace AND o.name = k.name",
                ([k[0] for k in wanted], [k[1] for k in wanted])).fetchall()
        for row in rows:
            out.setdefault((row[0], row[1]), []).append(
                (float(row[2]), float(row[3]), str(row[4])))
        return out

    def task_stats(self, keys: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], list[TaskStats]]:
        """(namespace, name) -> its counted reports per task (`learning.tasks`)."""
        wanted = list(dict.fromkeys(keys))
        out: dict[tuple[str, str], list[TaskStats]] = {}
        if not wanted:
            return out
        with self._read() as conn:
            rows = conn.execute(
                "SELECT o.namespace, o.name, o.task_key, "
                "count(*) FILTER (WHERE o.outcome = 'success'), "
                "count(*) FILTER (WHERE o.outcome = 'failure'), "
                "avg(extract(epoch FROM o.at::timestamptz)), count(DISTINCT o.reporter) "
                "FROM outcome_reports o JOIN unnest(%s::text[], %s::text[]) AS k(namespace, name) "
                "ON o.namespace = k.namespace AND o.name = k.name "
                "WHERE o.task_key IS NOT NULL AND o.discount IS NULL "
                "AND o.outcome <> 'infra_error' GROUP BY o.namespace, o.name, o.task_key",
                ([k[0] for k in wanted], [k[1] for k in wanted])).fetchall()
        for row in rows:
            out.setdefault((row[0], row[1]), []).append(
                TaskStats(row[2], int(row[3]), int(row[4]), float(row[5] or 0.0), int(row[6])))
        return out

    def save_task_vectors(self, model: str, vectors: Iterable[TaskVector]) -> None:
        """Store reported tasks' embeddings; a task already stored is kept."""
        batch = list(vectors)
        if not batch:
            return
        now = datetime.now(UTC).isoformat()
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO task_vectors (task_key, model, vector, label, created_at) "
                "SELECT k, %s, v, l, %s FROM unnest(%s::text[], %s::bytea[], %s::text[]) "
                "AS t(k, v, l) ON CONFLICT DO NOTHING",
                (model, now, [v.task_key for v in batch], [v.vector for v in batch],
                 [v.label for v in batch]))

    def task_vectors(self, model: str, keys: Iterable[str]) -> dict[str, TaskVector]:
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        with self._read() as conn:
            rows = conn.execute(
                "SELECT task_key, vector, label FROM task_vectors "
                "WHERE model = %s AND task_key = ANY(%s::text[])", (model, wanted)).fetchall()
        return {key: TaskVector(key, bytes(blob), shown) for key, blob, shown in rows}

    @nul_misses(list)
    def outcome_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str, str] | None,
                     limit: int) -> list[OutcomeRecord]:
        """A keyset page of a namespace's reports (see `store.evidence`)."""
        sql, params = page_query("%s", f"SELECT {OUTCOME_COLUMNS} FROM outcome_reports",
                                 OUTCOME_KEY, namespace, name=name, since=since, until=until,
                                 after=after, limit=limit)
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [OutcomeRecord(*row) for row in rows]


class Proposals(Table):
    """Refinement proposals and their support; canary releases."""

    def add_proposal(self, row: ProposalRow) -> None:
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO proposals ({_PROPOSAL_COLUMNS}) VALUES "
                f"({', '.join(['%s'] * 22)})",
                (row.id, row.namespace, row.name, row.base_version, row.applies_to, row.status,
                 row.proposer, row.proposer_namespace, json.dumps(row.edits),
                 json.dumps(row.evidence), row.reasoning, row.content_sha256, row.commit_sha,
                 row.tree_sha, row.verdict, json.dumps(row.report), row.support,
                 row.created_at, row.decided_at, row.decided_by, row.comment, row.version))
            conn.execute("INSERT INTO proposal_support (proposal_id, proposer, evidence_json, "
                         "at) VALUES (%s, %s, %s, %s)",
                         (row.id, row.proposer, json.dumps(row.evidence), row.created_at))

    @nul_misses(lambda: None)
    def get_proposal(self, proposal_id: str) -> ProposalRow | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE id = %s",
                               (proposal_id,)).fetchone()
        return _proposal(row) if row else None

    @nul_misses(lambda: None)
    def open_proposal_like(self, namespace: str, name: str,
                           content_sha256: str) -> ProposalRow | None:
        """The open proposal whose resulting content is exactly this (agreeing edits)."""
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE namespace = %s AND name = %s "
                "AND status = 'open' AND content_sha256 = %s ORDER BY created_at LIMIT 1",
                (namespace, name, content_sha256)).fetchone()
        return _proposal(row) if row else None

    def add_support(self, proposal_id: str, proposer: str, evidence: dict[str, Any]) -> bool:
        """Count another proposer for a proposal; False when this one already counted."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT INTO proposal_support (proposal_id, proposer, evidence_json, at) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (proposal_id, proposer, json.dumps(evidence), datetime.now(UTC).isoformat()))
            if cursor.rowcount != 1:
                return False
            conn.execute("UPDATE proposals SET support = support + 1 WHERE id = %s",
                         (proposal_id,))
        return True

    @nul_misses(list)
    def proposals(self, namespace: str, name: str | None = None, status: str | None = None,
                  proposer: str | None = None, limit: int = 100) -> list[ProposalRow]:
        where, params = ["namespace = %s"], [namespace]
        for column, value in (("name", name), ("status", status), ("proposer", proposer)):
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE {' AND '.join(where)} "
                "ORDER BY created_at DESC, id LIMIT %s", (*params, limit)).fetchall()
        return [_proposal(r) for r in rows]

    @nul_misses(list)
    def proposal_page(self, namespace: str, *, name: str | None, since: str | None,
                      until: str | None, after: tuple[str, str] | None,
                      limit: int) -> list[ProposalRow]:
        """A keyset page of a namespace's proposals (see `store.evidence`)."""
        sql, params = page_query("%s", f"SELECT {_PROPOSAL_COLUMNS} FROM proposals",
                                 PROPOSAL_KEY, namespace, name=name, since=since, until=until,
                                 after=after, limit=limit)
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [_proposal(r) for r in rows]

    def decide_proposal(self, proposal_id: str, status: str, by: str, comment: str,
                        version: str | None) -> bool:
        """Close an open proposal (compare-and-set on `open`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE proposals SET status = %s, decided_at = %s, decided_by = %s, "
                "comment = %s, version = %s WHERE id = %s AND status = 'open'",
                (status, datetime.now(UTC).isoformat(), by, comment, version, proposal_id))
        return cursor.rowcount == 1

    def start_canary(self, namespace: str, name: str, version: str, stable_version: str,
                     share: float) -> None:
        """A new active canary; any active one of the skill is superseded."""
        now = datetime.now(UTC).isoformat()
        with self._tx() as conn:
            lock_skill(self.db, conn, namespace, name)
            conn.execute("UPDATE canaries SET state = 'superseded', decided_at = %s WHERE "
                         "namespace = %s AND name = %s AND state = 'active'",
                         (now, namespace, name))
            # SQLite's INSERT OR REPLACE: a canary of the same version starts over.
            conn.execute("DELETE FROM canaries WHERE namespace = %s AND name = %s "
                         "AND version = %s", (namespace, name, version))
            conn.execute("INSERT INTO canaries (namespace, name, version, stable_version, "
                         "share, state, started_at) VALUES (%s, %s, %s, %s, %s, 'active', %s)",
                         (namespace, name, version, stable_version, share, now))

    @nul_misses(list)
    def canaries(self, namespace: str, name: str) -> list[CanaryRow]:
        """Every canary of a skill, newest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT namespace, name, version, stable_version, share, state, started_at, "
                "decided_at, decision_json FROM canaries WHERE namespace = %s AND name = %s "
                "ORDER BY started_at DESC", (namespace, name)).fetchall()
        return [CanaryRow(namespace, name, version, stable, share, state, started, decided,
                          json.loads(decision) if decision else None)
                for namespace, name, version, stable, share, state, started, decided, decision
                in rows]

    def finish_canary(self, namespace: str, name: str, version: str, state: str,
                      decision: dict[str, Any]) -> bool:
        """Close an active canary (compare-and-set on `active`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE canaries SET state = %s, decided_at = %s, decision_json = %s WHERE "
                "namespace = %s AND name = %s AND version = %s AND state = 'active'",
                (state, datetime.now(UTC).isoformat(), json.dumps(decision), namespace, name,
                 version))
        return cursor.rowcount == 1


# -- record_outcomes' steps, inside its transaction ---------------------------------------


def _insert_reports(conn: Conn, namespace: str, name: str,
                    reports: list[NewOutcome]) -> list[NewOutcome]:
    """Insert the batch in one statement; the reports whose (reporter, id) was new, in
    batch order (of two with one key in the batch, the first)."""
    columns = [[r.reporter for r in reports], [r.report_id for r in reports],
               [r.version for r in reports], [r.outcome for r in reports],
               [r.failure_kind for r in reports], [r.score for r in reports],
               [r.signals_json for r in reports], [r.agent for r in reports],
               [r.model for r in reports], [r.client for r in reports],
               [r.at.isoformat() for r in reports], [r.task_key for r in reports],
               [r.discount for r in reports]]
    arrays = ", ".join(f"%s::{t}[]" for t in _REPORT_TYPES)
    names = ", ".join(_REPORT_COLUMNS)
    rows = conn.execute(
        f"INSERT INTO outcome_reports (namespace, name, {names}, received_at) "
        f"SELECT %s, %s, {names}, %s FROM unnest({arrays}) WITH ORDINALITY "
        f"AS x({names}, n) ORDER BY n ON CONFLICT (reporter, report_id) DO NOTHING "
        "RETURNING reporter, report_id",
        (namespace, name, datetime.now(UTC).isoformat(), *columns)).fetchall()
    inserted = {(str(r[0]), str(r[1])) for r in rows}
    fresh = []
    for report in reports:
        key = (report.reporter, report.report_id)
        if key in inserted:
            inserted.discard(key)
            fresh.append(report)
    return fresh


def _seen_tasks(conn: Conn, namespace: str, name: str,
                keys: set[guards.TaskKey]) -> set[guards.TaskKey]:
    """The (version, reporter, task) keys that already have a counted report."""
    if not keys:
        return set()
    wanted = list(keys)
    rows = conn.execute(
        "SELECT DISTINCT o.version, o.reporter, o.task_key FROM outcome_reports o "
        "JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(version, reporter, task_key) "
        "ON o.version = k.version AND o.reporter = k.reporter AND o.task_key = k.task_key "
        "WHERE o.namespace = %s AND o.name = %s AND o.discount IS NULL "
        "AND o.outcome <> 'infra_error'",
        ([k[0] for k in wanted], [k[1] for k in wanted], [k[2] for k in wanted], namespace,
         name)).fetchall()
    return {(str(r[0]), str(r[1]), str(r[2])) for r in rows}


def _client_counts(conn: Conn, namespace: str, name: str,
                   keys: set[guards.ClientKey]) -> dict[guards.ClientKey, int]:
    """Counted reports per (version, client) so far (the client cap's counter)."""
    if not keys:
        return {}
    wanted = list(keys)
    rows = conn.execute(
        "SELECT c.version, c.client, c.counted FROM version_clients c "
        "JOIN unnest(%s::text[], %s::text[]) AS k(version, client) "
        "ON c.version = k.version AND c.client = k.client "
        "WHERE c.namespace = %s AND c.name = %s",
        ([k[0] for k in wanted], [k[1] for k in wanted], namespace, name)).fetchall()
    return {(str(r[0]), str(r[1])): int(r[2]) for r in rows}


def _write_guards(conn: Conn, namespace: str, name: str, fresh: list[NewOutcome],
                  after: dict[guards.ClientKey, int]) -> None:
    """The discounts `guards.guard` gave (an author's came with the report) and the new
    per-client counts."""
    marked = [r for r in fresh if r.discount not in (None, guards.AUTHOR)]
    if marked:
        conn.execute(
            "UPDATE outcome_reports o SET discount = k.discount "
            "FROM unnest(%s::text[], %s::text[], %s::text[]) AS k(reporter, report_id, discount) "
            "WHERE o.reporter = k.reporter AND o.report_id = k.report_id",
            ([r.reporter for r in marked], [r.report_id for r in marked],
             [r.discount for r in marked]))
    if after:
        keys = list(after)
        _upsert(conn, "version_clients", ("namespace", "name", "version", "client"),
                ("counted",), ("text", "text", "text", "text", "int4"),
                [(namespace, name, v, c, after[(v, c)]) for v, c in keys])


def _fold_version_stats(conn: Conn, namespace: str, name: str, reports: list[NewOutcome],
                        ema: Callable[[float | None, bool], float]) -> None:
    versions = list(dict.fromkeys(r.version for r in reports))
    stored = {row[0]: tuple(row[1:]) for row in conn.execute(
        "SELECT version, successes, failures, infra_errors, score_sum, scored, ema, last_at, "
        "discounted FROM version_stats WHERE namespace = %s AND name = %s AND "
        "version = ANY(%s)", (namespace, name, versions)).fetchall()}
    folded = []
    for version in versions:
        wins, losses, infra, score_sum, scored, level, last, discounted = stored.get(
            version, (0, 0, 0, 0.0, 0, None, None, 0))
        for report in (r for r in reports if r.version == version):
            if report.outcome == "infra_error":
                infra += 1
                continue
            if report.discount is not None:
                discounted += 1
                continue
            wins, losses = (wins + 1, losses) if report.outcome == "success" else (
                wins, losses + 1)
            level = ema(level, report.outcome == "success")
            if report.score is not None:
                score_sum, scored = score_sum + report.score, scored + 1
            last = max(last or "", report.at.isoformat())
        folded.append((namespace, name, version, wins, losses, infra, score_sum, scored,
                       level, last, discounted))
    _upsert(conn, "version_stats", ("namespace", "name", "version"),
            ("successes", "failures", "infra_errors", "score_sum", "scored", "ema", "last_at",
             "discounted"),
            ("text", "text", "text", "int4", "int4", "int4", "float8", "int4", "float8",
             "text", "int4"), folded)


def _fold_totals(conn: Conn, namespace: str, name: str, reports: list[NewOutcome],
                 decay: Callable[[float], float]) -> None:
    """The decayed counts ranking reads: decay the stored ones to the newest report."""
    counted = [r for r in reports if r.counted]
    versions = list(dict.fromkeys(r.version for r in counted))
    if not versions:
        return
    stored = {row[0]: (float(row[1]), float(row[2]), str(row[3])) for row in conn.execute(
        "SELECT version, successes, failures, as_of FROM outcome_totals "
        "WHERE namespace = %s AND name = %s AND version = ANY(%s)",
        (namespace, name, versions)).fetchall()}
    folded = []
    for version in versions:
        mine = [r for r in counted if r.version == version]
        stamp = max(r.at for r in mine)
        s = f = 0.0
        if version in stored:
            old_s, old_f, old_stamp = stored[version]
            as_of = datetime.fromisoformat(old_stamp)
            stamp = max(stamp, as_of)
            factor = decay((stamp - as_of).total_seconds())
            s, f = old_s * factor, old_f * factor
        for report in mine:
            weight = decay((stamp - report.at).total_seconds())
            s, f = (s + weight, f) if report.outcome == "success" else (s, f + weight)
        folded.append((namespace, name, version, s, f, stamp.isoformat()))
    _upsert(conn, "outcome_totals", ("namespace", "name", "version"),
            ("successes", "failures", "as_of"),
            ("text", "text", "text", "float8", "float8", "text"), folded)


def _fold_days(conn: Conn, namespace: str, name: str, reports: list[NewOutcome]) -> None:
    """Count the counted reports per UTC day and version (`outcome_days`)."""
    days: dict[tuple[str, str], list[int]] = {}
    for report in reports:
        if report.counted:
            day = report.at.astimezone(UTC).date().isoformat()
            cell = days.setdefault((day, report.version), [0, 0])
            cell[0 if report.outcome == "success" else 1] += 1
    if not days:
        return
    keys = list(days)
    conn.execute(
        "INSERT INTO outcome_days (namespace, name, day, version, successes, failures) "
        "SELECT %s, %s, * FROM unnest(%s::text[], %s::text[], %s::int4[], %s::int4[]) "
        "ON CONFLICT (namespace, name, day, version) DO UPDATE SET "
        "successes = outcome_days.successes + excluded.successes, "
        "failures = outcome_days.failures + excluded.failures",
        (namespace, name, [k[0] for k in keys], [k[1] for k in keys],
         [days[k][0] for k in keys], [days[k][1] for k in keys]))


def _fold_clients(conn: Conn, namespace: str, name: str, reports: list[NewOutcome]) -> None:
    """Count the counted reports per client; a client's first success counts the client."""
    tally: dict[str, list[int]] = {}
    for report in reports:
        if report.counted:
            cell = tally.setdefault(report.client, [0, 0])
            cell[0 if report.outcome == "success" else 1] += 1
    if not tally:
        return
    clients = list(tally)
    rows = conn.execute(
        "INSERT INTO skill_clients (namespace, name, client, successes, failures) "
        "SELECT %s, %s, * FROM unnest(%s::text[], %s::int4[], %s::int4[]) "
        "ON CONFLICT (namespace, name, client) DO UPDATE SET "
        "successes = skill_clients.successes + excluded.successes, "
        "failures = skill_clients.failures + excluded.failures "
        "RETURNING client, successes",
        (namespace, name, clients, [tally[c][0] for c in clients],
         [tally[c][1] for c in clients])).fetchall()
    # A client counts when its successes went from none to some in this batch.
    new_clients = sum(1 for client, successes in rows
                      if tally[client][0] and successes == tally[client][0])
    if new_clients:
        conn.execute("INSERT INTO skill_client_counts (namespace, name, clients) "
                     "VALUES (%s, %s, %s) ON CONFLICT (namespace, name) DO UPDATE SET "
                     "clients = skill_client_counts.clients + excluded.clients",
                     (namespace, name, new_clients))


def _upsert(conn: Conn, table: str, key: tuple[str, ...], values: tuple[str, ...],
            types: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert or overwrite `rows` (key columns, then value columns) in one statement."""
    columns = (*key, *values)
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    sets = ", ".join(f"{c} = excluded.{c}" for c in values)
    conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {sets}",
        [list(column) for column in zip(*rows, strict=True)])
