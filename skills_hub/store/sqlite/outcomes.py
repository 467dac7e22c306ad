"""Outcome reports, trust, health, proposals and canaries in SQLite."""

from __future__ import annotations

import json
import sqlite3
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
from .db import Table
from .sql import _proposal


class Outcomes(Table):
    """Outcome reports and what they fold into; trust and health."""

    def record_outcomes(self, namespace: str, name: str, reports: list[NewOutcome], *,
                        decay: Callable[[float], float],
                        ema: Callable[[float | None, bool], float],
                        client_cap: int | None = None) -> list[NewOutcome]:
        """Store the reports not seen before (by reporter and id) and fold them into the
        per-version stats, the decayed totals and the client counts, all in one
        transaction. Returns the reports that were new, with their discounts
        (`store.guards`)."""
        fresh: list[NewOutcome] = []
        with self._tx() as conn:
            # What the guards need, read before this batch's reports are in the table.
            seen = {key for key in guards.task_keys(reports) if conn.execute(
                "SELECT 1 FROM outcome_reports WHERE namespace = ? AND name = ? AND "
                "version = ? AND reporter = ? AND task_key = ? AND discount IS NULL AND "
                "outcome != 'infra_error' LIMIT 1", (namespace, name, *key)).fetchone()}
            counts = _client_counts(conn, namespace, name, guards.client_keys(reports))
            for report in reports:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO outcome_reports (reporter, report_id, namespace, "
                    "name, version, outcome, failure_kind, score, signals_json, agent, model, "
                    "client, at, received_at, task_key, discount) VALUES (?, ?, ?, ?, ?, ?, ?, "
                    "?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (report.reporter, report.report_id, namespace, name, report.version,
                     report.outcome, report.failure_kind, report.score, report.signals_json,
                     report.agent, report.model, report.client, report.at.isoformat(),
                     datetime.now(UTC).isoformat(), report.task_key, report.discount))
                if cursor.rowcount == 1:
                    fresh.append(report)
            fresh, after = guards.guard(fresh, seen, counts, client_cap)
            _write_guards(conn, namespace, name, fresh, after)
            for version in dict.fromkeys(r.version for r in fresh):
                mine = [r for r in fresh if r.version == version]
                _fold_version_stats(conn, namespace, name, version, mine, ema)
                _fold_totals(conn, namespace, name, version, mine, decay)
            _fold_days(conn, namespace, name, fresh)
            for report in fresh:
                if report.counted:
                    _fold_client(conn, namespace, name, report)
        return fresh

    def version_stats(self, namespace: str, name: str) -> dict[str, VersionStats]:
        rows = self._conn().execute(
            "SELECT version, successes, failures, infra_errors, score_sum, scored, ema, last_at, "
            "discounted FROM version_stats WHERE namespace = ? AND name = ?",
            (namespace, name)).fetchall()
        return {row["version"]: VersionStats(
            row["version"], row["successes"], row["failures"], row["infra_errors"],
            row["score_sum"] / row["scored"] if row["scored"] else None, row["ema"],
            row["last_at"], row["discounted"]) for row in rows}

    def add_authors(self, namespace: str, name: str, version: str,
                    authors: Iterable[str]) -> None:
        """Remember who published a version (reporter keys: token hashes, `user:<id>`)."""
        with self._tx() as conn:
            conn.executemany("INSERT OR IGNORE INTO version_authors (namespace, name, version, "
                             "author) VALUES (?, ?, ?, ?)",
                             [(namespace, name, version, a) for a in dict.fromkeys(authors)])

    def authors(self, namespace: str, name: str) -> dict[str, frozenset[str]]:
        """version -> the reporter keys that published it (`add_authors`)."""
        out: dict[str, set[str]] = {}
        for row in self._conn().execute("SELECT version, author FROM version_authors WHERE "
                                        "namespace = ? AND name = ?", (namespace, name)):
            out.setdefault(str(row[0]), set()).add(str(row[1]))
        return {version: frozenset(keys) for version, keys in out.items()}

    def outcome_days(self, namespace: str, name: str,
                     since: str) -> list[tuple[str, str, int, int]]:
        """(version, day, successes, failures) of a skill's counted reports from the UTC day
        `since` (YYYY-MM-DD) on, one row per version and day (the evidence chart's data; a
        counter kept by `record_outcomes`)."""
        rows = self._conn().execute(
            "SELECT version, day, successes, failures FROM outcome_days WHERE namespace = ? "
            "AND name = ? AND day >= ?", (namespace, name, since)).fetchall()
        return [(str(r[0]), str(r[1]), int(r[2]), int(r[3])) for r in rows]

    def success_clients(self, namespace: str, name: str) -> int:
        """Distinct clients with at least one success on any version of the skill (a
        counter kept by `record_outcomes`: counting rows cost ~10 ms a post at 74k)."""
        row = self._conn().execute(
            "SELECT clients FROM skill_client_counts WHERE namespace = ? AND name = ?",
            (namespace, name)).fetchone()
        return int(row[0]) if row else 0

    def trust_of(self, namespace: str, name: str) -> str:
        row = self._conn().execute("SELECT trust FROM skill_trust WHERE namespace = ? AND "
                                   "name = ?", (namespace, name)).fetchone()
        return str(row[0]) if row else "community"

    def change_trust(self, namespace: str, name: str, old: str, new: str, reason: str,
                     actor: str) -> bool:
        """Move trust from `old` to `new` (compare-and-set); False when it was not `old`."""
        if new not in TRUST_LEVELS:
            raise ValueError(f"unknown trust level {new!r}")
        with self._tx() as conn:
            row = conn.execute("SELECT trust FROM skill_trust WHERE namespace = ? AND "
                               "name = ?", (namespace, name)).fetchone()
            if (str(row[0]) if row else "community") != old:
                return False
            conn.execute("INSERT OR REPLACE INTO skill_trust (namespace, name, trust) "
                         "VALUES (?, ?, ?)", (namespace, name, new))
            conn.execute("UPDATE skills SET trust = ? WHERE namespace = ? AND name = ?",
                         (new, namespace, name))
            conn.execute("INSERT INTO trust_events (namespace, name, old, new, reason, actor, "
                         "at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (namespace, name, old, new, reason, actor,
                          datetime.now(UTC).isoformat()))
        return True

    def trust_events(self, namespace: str, name: str, limit: int = 50) -> list[TrustEvent]:
        rows = self._conn().execute(
            "SELECT old, new, reason, actor, at FROM trust_events WHERE namespace = ? AND "
            "name = ? ORDER BY id DESC LIMIT ?", (namespace, name, limit)).fetchall()
        return [TrustEvent(**row) for row in rows]

    def set_health(self, namespace: str, name: str, version: str, status: str,
                   reason: str) -> bool:
        """Record a version's health (`deprecated` or `healthy`); False if unchanged."""
        with self._tx() as conn:
            row = conn.execute("SELECT status FROM version_health WHERE namespace = ? AND "
                               "name = ? AND version = ?", (namespace, name, version)).fetchone()
            if (row[0] if row else "healthy") == status:
                return False
            conn.execute("INSERT OR REPLACE INTO version_health (namespace, name, version, "
                         "status, reason, at) VALUES (?, ?, ?, ?, ?, ?)",
                         (namespace, name, version, status, reason,
                          datetime.now(UTC).isoformat()))
        return True

    def health(self, namespace: str, name: str) -> dict[str, tuple[str, str]]:
        """version -> (status, reason) for versions with a recorded health."""
        rows = self._conn().execute("SELECT version, status, reason FROM version_health "
                                    "WHERE namespace = ? AND name = ?", (namespace, name))
        return {r[0]: (r[1], r[2]) for r in rows.fetchall()}

    def outcome_totals(self, keys: Iterable[tuple[str, str]]
                       ) -> dict[tuple[str, str], list[tuple[float, float, str]]]:
        """(namespace, name) -> [(successes, failures, as_of)] per version, undecayed."""
        out: dict[tuple[str, str], list[tuple[float, float, str]]] = {}
        wanted = list(dict.fromkeys(keys))
        if len(wanted) > 400:  # most of a catalogue: one scan beats chunks of OR terms
            keep = set(wanted)
            for row in self._conn().execute(
                    "SELECT namespace, name, successes, failures, as_of FROM outcome_totals"):
                if (row[0], row[1]) in keep:
                    out.setdefault((row[0], row[1]), []).append(
                        (float(row[2]), float(row[3]), str(row[4])))
            return out
        for start in range(0, len(wanted), 400):
            batch = wanted[start:start + 400]
            cond = " OR ".join("(namespace = ? AND name = ?)" for _ in batch)
            rows = self._conn().execute(
                "SELECT namespace, name, successes, failures, as_of FROM outcome_totals "
                f"WHERE {cond}", [v for key in batch for v in key]).fetchall()
            for row in rows:
                out.setdefault((row[0], row[1]), []).append(
                    (float(row[2]), float(row[3]), str(row[4])))
        return out

    def task_stats(self, keys: Iterable[tuple[str, str]]
                   ) -> dict[tuple[str, str], list[TaskStats]]:
        """(namespace, name) -> its counted reports per task (`learning.tasks`)."""
        out: dict[tuple[str, str], list[TaskStats]] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 200):
            batch = wanted[start:start + 200]
            cond = " OR ".join("(namespace = ? AND name = ?)" for _ in batch)
            rows = self._conn().execute(
                "SELECT namespace, name, task_key, sum(outcome = 'success'), "
                "sum(outcome = 'failure'), avg((julianday(at) - 2440587.5) * 86400.0), "
                "count(DISTINCT reporter) FROM outcome_reports "
                f"WHERE task_key IS NOT NULL AND ({cond}) AND discount IS NULL "
                "AND outcome != 'infra_error' GROUP BY namespace, name, task_key",
                [v for key in batch for v in key]).fetchall()
            for row in rows:
                out.setdefault((row[0], row[1]), []).append(
                    TaskStats(row[2], int(row[3]), int(row[4]), float(row[5] or 0.0),
                              int(row[6])))
        return out

    def save_task_vectors(self, model: str, vectors: Iterable[TaskVector]) -> None:
        """Store reported tasks' embeddings; a task already stored is kept."""
        now = datetime.now(UTC).isoformat()
        with self._tx() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO task_vectors (task_key, model, vector, label, "
                "created_at) VALUES (?, ?, ?, ?, ?)",
                [(v.task_key, model, v.vector, v.label, now) for v in vectors])

    def task_vectors(self, model: str, keys: Iterable[str]) -> dict[str, TaskVector]:
        out: dict[str, TaskVector] = {}
        wanted = list(dict.fromkeys(keys))
        for start in range(0, len(wanted), 500):
            batch = wanted[start:start + 500]
            rows = self._conn().execute(
                "SELECT task_key, vector, label FROM task_vectors WHERE model = ? AND "
                f"task_key IN ({', '.join('?' for _ in batch)})", [model, *batch]).fetchall()
            for key, blob, shown in rows:
                out[key] = TaskVector(key, bytes(blob), shown)
        return out

    def outcome_page(self, namespace: str, *, name: str | None, since: str | None,
                     until: str | None, after: tuple[str, str, str] | None,
                     limit: int) -> list[OutcomeRecord]:
        """A keyset page of a namespace's reports (see `store.evidence`)."""
        sql, params = page_query("?", f"SELECT {OUTCOME_COLUMNS} FROM outcome_reports",
                                 OUTCOME_KEY, namespace, name=name, since=since, until=until,
                                 after=after, limit=limit)
        return [OutcomeRecord(*row) for row in self._conn().execute(sql, params).fetchall()]



class Proposals(Table):
    """Refinement proposals and their support; canary releases."""

    def add_proposal(self, row: ProposalRow) -> None:
        with self._tx() as conn:
            conn.execute(
                f"INSERT INTO proposals ({_PROPOSAL_COLUMNS}) VALUES "
                f"({', '.join('?' * 22)})",
                (row.id, row.namespace, row.name, row.base_version, row.applies_to, row.status,
                 row.proposer, row.proposer_namespace, json.dumps(row.edits),
                 json.dumps(row.evidence), row.reasoning, row.content_sha256, row.commit_sha,
                 row.tree_sha, row.verdict, json.dumps(row.report), row.support,
                 row.created_at, row.decided_at, row.decided_by, row.comment, row.version))
            conn.execute("INSERT INTO proposal_support (proposal_id, proposer, evidence_json, "
                         "at) VALUES (?, ?, ?, ?)", (row.id, row.proposer,
                                                     json.dumps(row.evidence), row.created_at))

    def get_proposal(self, proposal_id: str) -> ProposalRow | None:
        row = self._conn().execute(f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE id = ?",
                                   (proposal_id,)).fetchone()
        return _proposal(row) if row else None

    def open_proposal_like(self, namespace: str, name: str,
                           content_sha256: str) -> ProposalRow | None:
        """The open proposal whose resulting content is exactly this (agreeing edits)."""
        row = self._conn().execute(
            f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE namespace = ? AND name = ? AND "
            "status = 'open' AND content_sha256 = ? ORDER BY created_at LIMIT 1",
            (namespace, name, content_sha256)).fetchone()
        return _proposal(row) if row else None

    def add_support(self, proposal_id: str, proposer: str, evidence: dict[str, Any]) -> bool:
        """Count another proposer for a proposal; False when this one already counted."""
        with self._tx() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO proposal_support (proposal_id, proposer, evidence_json, "
                "at) VALUES (?, ?, ?, ?)", (proposal_id, proposer, json.dumps(evidence),
                                            datetime.now(UTC).isoformat()))
            if cursor.rowcount != 1:
                return False
            conn.execute("UPDATE proposals SET support = support + 1 WHERE id = ?",
                         (proposal_id,))
        return True

    def proposals(self, namespace: str, name: str | None = None, status: str | None = None,
                  proposer: str | None = None, limit: int = 100) -> list[ProposalRow]:
        where, params = ["namespace = ?"], [namespace]
        for column, value in (("name", name), ("status", status), ("proposer", proposer)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self._conn().execute(
            f"SELECT {_PROPOSAL_COLUMNS} FROM proposals WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id LIMIT ?", (*params, limit)).fetchall()
        return [_proposal(r) for r in rows]

    def proposal_page(self, namespace: str, *, name: str | None, since: str | None,
                      until: str | None, after: tuple[str, str] | None,
                      limit: int) -> list[ProposalRow]:
        """A keyset page of a namespace's proposals (see `store.evidence`)."""
        sql, params = page_query("?", f"SELECT {_PROPOSAL_COLUMNS} FROM proposals",
                                 PROPOSAL_KEY, namespace, name=name, since=since, until=until,
                                 after=after, limit=limit)
        return [_proposal(r) for r in self._conn().execute(sql, params).fetchall()]

    def decide_proposal(self, proposal_id: str, status: str, by: str, comment: str,
                        version: str | None) -> bool:
        """Close an open proposal (compare-and-set on `open`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE proposals SET status = ?, decided_at = ?, decided_by = ?, comment = ?, "
                "version = ? WHERE id = ? AND status = 'open'",
                (status, datetime.now(UTC).isoformat(), by, comment, version, proposal_id))
        return cursor.rowcount == 1

    def start_canary(self, namespace: str, name: str, version: str, stable_version: str,
                     share: float) -> None:
        """A new active canary; any active one of the skill is superseded."""
        now = datetime.now(UTC).isoformat()
        with self._tx() as conn:
            conn.execute("UPDATE canaries SET state = 'superseded', decided_at = ? WHERE "
                         "namespace = ? AND name = ? AND state = 'active'",
                         (now, namespace, name))
            conn.execute("INSERT OR REPLACE INTO canaries (namespace, name, version, "
                         "stable_version, share, state, started_at) VALUES "
                         "(?, ?, ?, ?, ?, 'active', ?)",
                         (namespace, name, version, stable_version, share, now))

    def canaries(self, namespace: str, name: str) -> list[CanaryRow]:
        """Every canary of a skill, newest first."""
        rows = self._conn().execute(
            "SELECT namespace, name, version, stable_version, share, state, started_at, "
            "decided_at, decision_json FROM canaries WHERE namespace = ? AND name = ? "
            "ORDER BY started_at DESC", (namespace, name)).fetchall()
        out = []
        for row in rows:
            data = dict(row)
            raw = data.pop("decision_json")
            out.append(CanaryRow(**data, decision=json.loads(raw) if raw else None))
        return out

    def finish_canary(self, namespace: str, name: str, version: str, state: str,
                      decision: dict[str, Any]) -> bool:
        """Close an active canary (compare-and-set on `active`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE canaries SET state = ?, decided_at = ?, decision_json = ? WHERE "
                "namespace = ? AND name = ? AND version = ? AND state = 'active'",
                (state, datetime.now(UTC).isoformat(), json.dumps(decision), namespace, name,
                 version))
        return cursor.rowcount == 1



def _client_counts(conn: sqlite3.Connection, namespace: str, name: str,
                   keys: set[guards.ClientKey]) -> dict[guards.ClientKey, int]:
    """Counted reports per (version, client) so far (the client cap's counter)."""
    out = {}
    for version, client in keys:
        row = conn.execute("SELECT counted FROM version_clients WHERE namespace = ? AND "
                           "name = ? AND version = ? AND client = ?",
                           (namespace, name, version, client)).fetchone()
        if row is not None:
            out[(version, client)] = int(row[0])
    return out


def _write_guards(conn: sqlite3.Connection, namespace: str, name: str,
                  fresh: list[NewOutcome], after: dict[guards.ClientKey, int]) -> None:
    """The discounts `guards.guard` gave (an author's came with the report) and the new
    per-client counts."""
    conn.executemany("UPDATE outcome_reports SET discount = ? WHERE reporter = ? AND "
                     "report_id = ?", [(r.discount, r.reporter, r.report_id) for r in fresh
                                       if r.discount not in (None, guards.AUTHOR)])
    conn.executemany("INSERT INTO version_clients (namespace, name, version, client, counted) "
                     "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET counted = "
                     "excluded.counted", [(namespace, name, version, client, counted)
                                          for (version, client), counted in after.items()])


def _fold_version_stats(conn: sqlite3.Connection, namespace: str, name: str, version: str,
                        reports: list[NewOutcome],
                        ema: Callable[[float | None, bool], float]) -> None:
    row = conn.execute("SELECT successes, failures, infra_errors, score_sum, scored, ema, "
                       "last_at, discounted FROM version_stats WHERE namespace = ? AND "
                       "name = ? AND version = ?", (namespace, name, version)).fetchone()
    wins, losses, infra, score_sum, scored, level, last, discounted = (
        tuple(row) if row else (0, 0, 0, 0.0, 0, None, None, 0))
    for report in reports:
        if report.outcome == "infra_error":
            infra += 1
            continue
        if report.discount is not None:
            discounted += 1
            continue
        wins, losses = (wins + 1, losses) if report.outcome == "success" else (wins, losses + 1)
        level = ema(level, report.outcome == "success")
        if report.score is not None:
            score_sum, scored = score_sum + report.score, scored + 1
        last = max(last or "", report.at.isoformat())
    conn.execute(
        "INSERT OR REPLACE INTO version_stats (namespace, name, version, successes, failures, "
        "infra_errors, score_sum, scored, ema, last_at, discounted) VALUES (?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?, ?)",
        (namespace, name, version, wins, losses, infra, score_sum, scored, level, last,
         discounted))


def _fold_client(conn: sqlite3.Connection, namespace: str, name: str,
                 report: NewOutcome) -> None:
    """Count the report for its client; a client's first success counts the client."""
    won = 1 if report.outcome == "success" else 0
    successes = conn.execute(
        "INSERT INTO skill_clients (namespace, name, client, successes, failures) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
        "successes = successes + excluded.successes, failures = failures + excluded.failures "
        "RETURNING successes", (namespace, name, report.client, won, 1 - won)).fetchone()[0]
    if won and successes == 1:
        conn.execute("INSERT INTO skill_client_counts (namespace, name, clients) "
                     "VALUES (?, ?, 1) ON CONFLICT DO UPDATE SET clients = clients + 1",
                     (namespace, name))


def _fold_days(conn: sqlite3.Connection, namespace: str, name: str,
               reports: list[NewOutcome]) -> None:
    """Count the counted reports per UTC day and version (`outcome_days`)."""
    days: dict[tuple[str, str], list[int]] = {}
    for report in reports:
        if report.counted:
            day = report.at.astimezone(UTC).date().isoformat()
            cell = days.setdefault((day, report.version), [0, 0])
            cell[0 if report.outcome == "success" else 1] += 1
    conn.executemany(
        "INSERT INTO outcome_days (namespace, name, day, version, successes, failures) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
        "successes = successes + excluded.successes, failures = failures + excluded.failures",
        [(namespace, name, day, version, s, f) for (day, version), (s, f) in days.items()])


def _fold_totals(conn: sqlite3.Connection, namespace: str, name: str, version: str,
                 reports: list[NewOutcome], decay: Callable[[float], float]) -> None:
    """The decayed counts ranking reads: decay the stored ones to the newest report."""
    counted = [r for r in reports if r.counted]
    if not counted:
        return
    row = conn.execute("SELECT successes, failures, as_of FROM outcome_totals WHERE "
                       "namespace = ? AND name = ? AND version = ?",
                       (namespace, name, version)).fetchone()
    stamp = max(r.at for r in counted)
    s = f = 0.0
    if row is not None:
        as_of = datetime.fromisoformat(row["as_of"])
        stamp = max(stamp, as_of)
        factor = decay((stamp - as_of).total_seconds())
        s, f = float(row["successes"]) * factor, float(row["failures"]) * factor
    for report in counted:
        weight = decay((stamp - report.at).total_seconds())
        s, f = (s + weight, f) if report.outcome == "success" else (s, f + weight)
    conn.execute("INSERT OR REPLACE INTO outcome_totals (namespace, name, version, successes, "
                 "failures, as_of) VALUES (?, ?, ?, ?, ?, ?)",
                 (namespace, name, version, s, f, stamp.isoformat()))
