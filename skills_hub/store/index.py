"""index.db: the SQLite catalogue beside git. The only module that writes SQL.

Git is the source of truth for skills and versions; this holds what git does not (tokens,
namespace settings, counters) and a queryable copy of the catalogue with an FTS5 index,
which `reindex` can rebuild from git at any time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import migrations
from .cache import Generation

# bm25 weights per FTS column: name, description, tags, body.
BM25_WEIGHTS = (10.0, 5.0, 3.0, 1.0)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class NamespaceRow:
    name: str
    visibility: str
    created_at: str


@dataclass(frozen=True)
class SkillRow:
    id: int
    namespace: str
    name: str
    latest_version: str
    description: str
    tags: str
    created_at: str
    updated_at: str
    downloads: int
    trust: str = "community"    # community, verified, trusted, quarantined, blocked
    verdict: str = "unchecked"  # the latest version's checks verdict


@dataclass(frozen=True)
class VersionRow:
    skill_id: int
    version: str
    commit_sha: str
    tag_sha: str
    tree_sha: str
    content_sha256: str
    description: str
    frontmatter: dict[str, Any]
    files: list[dict[str, Any]]
    published_at: str


@dataclass(frozen=True)
class NewVersion:
    """What the service records for a version it has just written to git."""

    namespace: str
    name: str
    version: str
    commit_sha: str
    tag_sha: str
    tree_sha: str
    content_sha256: str
    description: str
    frontmatter: dict[str, Any]
    files: list[dict[str, Any]]
    published_at: str
    tags: str
    body: str
    is_latest: bool
    embed_sha256: str | None = None  # digest of the text the search embeds (latest only)


@dataclass(frozen=True)
class ReportRow:
    namespace: str
    name: str
    version: str
    content_sha256: str
    verdict: str
    report: dict[str, Any]
    pipeline: str
    checked_at: str


@dataclass(frozen=True)
class NewReport:
    """A checks report to record for a version; `reason` goes into the history."""

    namespace: str
    name: str
    version: str
    content_sha256: str
    verdict: str
    report: dict[str, Any]
    pipeline: str
    reason: str  # "publish", "health", "backfill", "exception"


@dataclass(frozen=True)
class HistoryRow:
    version: str
    old_verdict: str | None
    new_verdict: str
    pipeline: str
    reason: str
    changed_at: str


@dataclass(frozen=True)
class ExceptionRow:
    rule: str
    reason: str
    created_at: str


@dataclass(frozen=True)
class SearchHit:
    skill: SkillRow
    score: float    # bm25, higher is better
    snippet: str    # with HIGHLIGHT_START / HIGHLIGHT_END around matched words, or ""


# Snippet highlight markers: control characters no skill text can contain after escaping.
HIGHLIGHT_START, HIGHLIGHT_END = "\x02", "\x03"
TRUST_LEVELS = ("community", "verified", "trusted", "quarantined", "blocked")
# Installs past this count rank alike (ranking.quality.INSTALLS_SATURATE, which a test
# holds equal); the literal is in m009's `skills_unrated` index, which SQL must match.
INSTALLS_CAP = 10_000
BROWSE_ORDERS = {
    "recent": "s.updated_at DESC, s.id DESC",
    "installs": "s.downloads DESC, s.updated_at DESC, s.id DESC",
    "name": "s.namespace, s.name",
}


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions every search mode applies in SQL (None: no restriction)."""

    namespace: str | None = None
    tag: str | None = None
    trust: str | None = None       # one of TRUST_LEVELS; `blocked` skills never show otherwise
    verdict: str | None = None     # safe, caution, dangerous, unchecked
    updated_since: str | None = None  # ISO 8601, compared with updated_at


@dataclass(frozen=True)
class NewOutcome:
    """One outcome report as stored (see learning.outcomes)."""

    reporter: str   # sha256 of the reporting token
    report_id: str
    version: str
    outcome: str    # success, failure, infra_error
    failure_kind: str | None
    score: float | None
    signals_json: str
    agent: str | None
    model: str | None
    client: str     # the distinct-client key
    at: datetime

    @property
    def counted(self) -> bool:
        return self.outcome != "infra_error"


@dataclass(frozen=True)
class VersionStats:
    version: str
    successes: int
    failures: int
    infra_errors: int
    score_mean: float | None
    ema: float | None
    last_at: str | None


@dataclass(frozen=True)
class TrustEvent:
    old: str
    new: str
    reason: str
    actor: str
    at: str


@dataclass(frozen=True)
class ProposalRow:
    id: str
    namespace: str
    name: str
    base_version: str    # the version the edits were written against
    applies_to: str      # the version the proposal's content was rebased onto
    status: str          # open, accepted, rejected
    proposer: str        # sha256 of the proposing token
    proposer_namespace: str | None
    edits: list[Any]
    evidence: dict[str, Any]
    reasoning: str
    content_sha256: str
    commit_sha: str
    tree_sha: str
    verdict: str
    report: dict[str, Any]
    support: int
    created_at: str
    decided_at: str | None = None
    decided_by: str | None = None
    comment: str | None = None
    version: str | None = None   # the version an accepted proposal became


@dataclass(frozen=True)
class CanaryRow:
    namespace: str
    name: str
    version: str
    stable_version: str
    share: float
    state: str           # active, promoted, rolled_back, superseded
    started_at: str
    decided_at: str | None
    decision: dict[str, Any] | None


_PROPOSAL_COLUMNS = ("id, namespace, name, base_version, applies_to, status, proposer, "
                     "proposer_namespace, edits_json, evidence_json, reasoning, content_sha256, "
                     "commit_sha, tree_sha, verdict, report_json, support, created_at, "
                     "decided_at, decided_by, comment, version")


def _proposal(row: sqlite3.Row) -> ProposalRow:
    data = dict(row)
    data["edits"] = json.loads(data.pop("edits_json"))
    data["evidence"] = json.loads(data.pop("evidence_json"))
    data["report"] = json.loads(data.pop("report_json"))
    return ProposalRow(**data)


@dataclass(frozen=True)
class EmbedJob:
    """A skill whose current text has no stored vector yet."""

    skill_id: int
    name: str
    description: str
    tags: str
    body: str
    embed_sha256: str


class Index:
    """Per-thread connections to one index.db in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        # Moved after each write to what per-process caches hold of the catalogue
        # (namespaces' access facts, versions): every process then drops its copies.
        self.generation = Generation(path.with_name(path.name + "-generation"))

    def migrate(self) -> list[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return migrations.apply(self._conn())

    def readiness(self) -> dict[str, str]:
        """`ok` per check, or what is wrong: the database answers, every migration is in."""
        try:
            waiting = migrations.pending(self._conn())
        except sqlite3.Error as exc:
            return {"database": f"unreachable: {exc}"}
        return {"database": "ok",
                "migrations": f"not applied: {', '.join(waiting)}" if waiting else "ok"}

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL in WAL mode survives a process crash; git holds the fsynced truth.
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def connection(self) -> sqlite3.Connection:
        """This thread's connection, for the other SQL modules of `store/`."""
        return self._conn()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE), for the other SQL modules of `store/`."""
        return self._tx()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- namespaces ---------------------------------------------------------------------

    def ensure_namespace(self, name: str, visibility: str = "public") -> NamespaceRow:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO namespaces (name, visibility, created_at) VALUES (?, ?, ?)",
                (name, visibility, now_iso()))
        row = self.get_namespace(name)
        assert row is not None
        return row

    def set_visibility(self, name: str, visibility: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET visibility = ? WHERE name = ?", (visibility, name))
        self.generation.bump()

    def get_namespace(self, name: str) -> NamespaceRow | None:
        row = self._conn().execute(
            "SELECT name, visibility, created_at FROM namespaces WHERE name = ?", (name,)
        ).fetchone()
        return NamespaceRow(**row) if row else None

    def list_namespaces(self) -> list[NamespaceRow]:
        rows = self._conn().execute(
            "SELECT name, visibility, created_at FROM namespaces ORDER BY name").fetchall()
        return [NamespaceRow(**row) for row in rows]

    # -- tokens -------------------------------------------------------------------------

    def add_token(self, namespace: str, token_sha256: str, label: str) -> int:
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO tokens (namespace, token_sha256, label, created_at) "
                "VALUES (?, ?, ?, ?)", (namespace, token_sha256, label, now_iso()))
        return int(cur.lastrowid or 0)

    def token_namespace(self, token_sha256: str) -> str | None:
        row = self._conn().execute(
            "SELECT namespace FROM tokens WHERE token_sha256 = ?", (token_sha256,)).fetchone()
        return str(row[0]) if row else None

    # -- catalogue writes ---------------------------------------------------------------

    def record_version(self, new: NewVersion, report: NewReport | None = None,
                       vector: tuple[str, bytes] | None = None) -> int:
        """Insert a version (and its skill on first publish); refresh the skill if latest.

        The version's checks report and the (model, float32 bytes) vector of its text, when
        given, are written in the same transaction. Returns the skill's id.
        """
        with self._tx() as conn:
            skill_id = self._record_version(conn, new)
            if report is not None:
                self._save_report(conn, report)
            if vector is not None and new.embed_sha256:
                self._save_vector(conn, new.embed_sha256, *vector)
        return skill_id

    def record_versions(self, versions: Iterable[NewVersion]) -> None:
        with self._tx() as conn:
            for new in versions:
                self._record_version(conn, new)

    def _record_version(self, conn: sqlite3.Connection, new: NewVersion) -> int:
        conn.execute(
            "INSERT OR IGNORE INTO namespaces (name, visibility, created_at) "
            "VALUES (?, 'public', ?)", (new.namespace, new.published_at))
        conn.execute(
            "INSERT OR IGNORE INTO skills (namespace, name, latest_version, description, tags, "
            "created_at, updated_at, trust) VALUES (?, ?, ?, ?, ?, ?, ?, coalesce((SELECT "
            "trust FROM skill_trust WHERE namespace = ? AND name = ?), 'community'))",
            (new.namespace, new.name, new.version, new.description, new.tags,
             new.published_at, new.published_at, new.namespace, new.name))
        skill_id = conn.execute("SELECT id FROM skills WHERE namespace = ? AND name = ?",
                                (new.namespace, new.name)).fetchone()[0]
        conn.execute(
            "INSERT OR REPLACE INTO versions (skill_id, version, commit_sha, tag_sha, tree_sha, "
            "content_sha256, description, frontmatter_json, files_json, published_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (skill_id, new.version, new.commit_sha, new.tag_sha, new.tree_sha,
             new.content_sha256, new.description, json.dumps(new.frontmatter, default=str),
             json.dumps(new.files), new.published_at))
        if new.is_latest:
            conn.execute(
                "UPDATE skills SET latest_version = ?, description = ?, tags = ?, updated_at = ?, "
                "embed_sha256 = ? WHERE id = ?",
                (new.version, new.description, new.tags, new.published_at, new.embed_sha256,
                 skill_id))
            conn.execute("DELETE FROM skills_fts WHERE rowid = ?", (skill_id,))
            conn.execute(
                "INSERT INTO skills_fts (rowid, name, description, tags, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (skill_id, new.name, new.description, new.tags, new.body))
        return int(skill_id)

    def delete_version(self, namespace: str, name: str, version: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM versions WHERE version = ? AND skill_id = "
                "(SELECT id FROM skills WHERE namespace = ? AND name = ?)",
                (version, namespace, name))
        self.generation.bump()

    def delete_skill(self, namespace: str, name: str) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM skills WHERE namespace = ? AND name = ?",
                               (namespace, name)).fetchone()
            if row:
                conn.execute("UPDATE catalogue_epoch SET epoch = epoch + 1")
                conn.execute("DELETE FROM skills_fts WHERE rowid = ?", (row[0],))
                conn.execute("DELETE FROM versions WHERE skill_id = ?", (row[0],))
                conn.execute("DELETE FROM skills WHERE id = ?", (row[0],))
        self.generation.bump()

    def clear_catalogue(self) -> None:
        """Forget skills and versions (not namespaces or tokens) before a full reindex."""
        with self._tx() as conn:
            conn.execute("UPDATE catalogue_epoch SET epoch = epoch + 1")
            conn.execute("DELETE FROM skills_fts")
            conn.execute("DELETE FROM versions")
            conn.execute("DELETE FROM skills")
        self.generation.bump()

    # -- checks reports and reviewed exceptions ------------------------------------------

    def save_report(self, report: NewReport) -> str | None:
        """Record a report; return the verdict it replaced (None for a first report)."""
        with self._tx() as conn:
            return self._save_report(conn, report)

    def _save_report(self, conn: sqlite3.Connection, new: NewReport) -> str | None:
        old = conn.execute(
            "SELECT verdict FROM reports WHERE namespace = ? AND name = ? AND version = ?",
            (new.namespace, new.name, new.version)).fetchone()
        old_verdict = str(old[0]) if old else None
        stamp = now_iso()
        conn.execute(
            "INSERT OR REPLACE INTO reports (namespace, name, version, content_sha256, verdict, "
            "report_json, pipeline, checked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (new.namespace, new.name, new.version, new.content_sha256, new.verdict,
             json.dumps(new.report), new.pipeline, stamp))
        if old_verdict != new.verdict:
            conn.execute(
                "INSERT INTO report_history (namespace, name, version, old_verdict, new_verdict, "
                "pipeline, reason, changed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (new.namespace, new.name, new.version, old_verdict, new.verdict, new.pipeline,
                 new.reason, stamp))
        return old_verdict

    def get_report(self, namespace: str, name: str, version: str) -> ReportRow | None:
        row = self._conn().execute(
            "SELECT namespace, name, version, content_sha256, verdict, report_json, pipeline, "
            "checked_at FROM reports WHERE namespace = ? AND name = ? AND version = ?",
            (namespace, name, version)).fetchone()
        if row is None:
            return None
        data = dict(row)
        data["report"] = json.loads(data.pop("report_json"))
        return ReportRow(**data)

    def verdicts(self, namespace: str, name: str) -> dict[str, str]:
        """version -> verdict for every checked version of a skill."""
        rows = self._conn().execute(
            "SELECT version, verdict FROM reports WHERE namespace = ? AND name = ?",
            (namespace, name)).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    def report_history(self, namespace: str, name: str) -> list[HistoryRow]:
        rows = self._conn().execute(
            "SELECT version, old_verdict, new_verdict, pipeline, reason, changed_at "
            "FROM report_history WHERE namespace = ? AND name = ? ORDER BY id",
            (namespace, name)).fetchall()
        return [HistoryRow(**row) for row in rows]

    def unchecked_versions(self) -> list[tuple[str, str, str]]:
        """(namespace, name, version) of versions with no report for their content."""
        rows = self._conn().execute(
            "SELECT s.namespace, s.name, v.version FROM versions v "
            "JOIN skills s ON s.id = v.skill_id LEFT JOIN reports r ON r.namespace = s.namespace "
            "AND r.name = s.name AND r.version = v.version "
            "AND r.content_sha256 = v.content_sha256 "
            "WHERE r.verdict IS NULL ORDER BY s.namespace, s.name, v.id").fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def set_exception(self, namespace: str, name: str, rule: str, reason: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO rule_exceptions (namespace, name, rule, reason, "
                "created_at) VALUES (?, ?, ?, ?, ?)", (namespace, name, rule, reason, now_iso()))

    def delete_exception(self, namespace: str, name: str, rule: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute(
                "DELETE FROM rule_exceptions WHERE namespace = ? AND name = ? AND rule = ?",
                (namespace, name, rule))
        return cur.rowcount > 0

    def exceptions(self, namespace: str, name: str) -> list[ExceptionRow]:
        rows = self._conn().execute(
            "SELECT rule, reason, created_at FROM rule_exceptions "
            "WHERE namespace = ? AND name = ? ORDER BY rule", (namespace, name)).fetchall()
        return [ExceptionRow(**row) for row in rows]

    def count_download(self, skill_id: int) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE skills SET downloads = downloads + 1 WHERE id = ?", (skill_id,))

    def add_downloads(self, counts: dict[tuple[str, str], int]) -> None:
        """Add (namespace, name) -> n to the skills' download counts, in one transaction."""
        with self._tx() as conn:
            conn.executemany(
                "UPDATE skills SET downloads = downloads + ? WHERE namespace = ? AND name = ?",
                [(n, namespace, name) for (namespace, name), n in counts.items()])

    # -- catalogue reads ----------------------------------------------------------------

    def catalogue_tags(self) -> dict[tuple[str, str, str], str]:
        """(namespace, name, version) -> tag sha, for reconciling with git."""
        rows = self._conn().execute(
            "SELECT s.namespace, s.name, v.version, v.tag_sha FROM versions v "
            "JOIN skills s ON s.id = v.skill_id").fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    def get_skill(self, namespace: str, name: str) -> SkillRow | None:
        row = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} WHERE s.namespace = ? AND s.name = ?",
            (namespace, name)).fetchone()
        return SkillRow(**row) if row else None

    def versions(self, skill_id: int) -> list[VersionRow]:
        rows = self._conn().execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE skill_id = ?", (skill_id,)).fetchall()
        return [_version(row) for row in rows]

    def get_version(self, skill_id: int, version: str) -> VersionRow | None:
        row = self._conn().execute(
            f"SELECT {_VERSION_COLUMNS} FROM versions WHERE skill_id = ? AND version = ?",
            (skill_id, version)).fetchone()
        return _version(row) if row else None

    def list_skills(self, *, readable: frozenset[str], namespace: str | None,
                    after: tuple[str, str] | None, limit: int) -> list[SkillRow]:
        """Skills ordered by (namespace, name), after the cursor, in readable namespaces."""
        where, params = _visible(readable)
        if namespace is not None:
            where += " AND s.namespace = ?"
            params.append(namespace)
        if after is not None:
            where += " AND (s.namespace, s.name) > (?, ?)"
            params.extend(after)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"JOIN namespaces n ON n.name = s.namespace WHERE {where} "
            "ORDER BY s.namespace, s.name LIMIT ?", (*params, limit)).fetchall()
        return [SkillRow(**row) for row in rows]

    def count_skills(self, *, readable: frozenset[str], namespace: str | None) -> int:
        where, params = _visible(readable)
        if namespace is not None:
            where += " AND s.namespace = ?"
            params.append(namespace)
        row = self._conn().execute(
            f"SELECT count(*) FROM skills s JOIN namespaces n ON n.name = s.namespace "
            f"WHERE {where}", params).fetchone()
        return int(row[0])

    # -- search -----------------------------------------------------------------------

    def keyword_search(self, match: str, *, filters: SearchFilters, readable: frozenset[str],
                       limit: int) -> list[SearchHit]:
        """FTS5 bm25 search, best first; `match` must already be a safe FTS5 expression.

        bm25 is ranked on the FTS table alone (joining every match to its skill row costs
        more than the ranking), over twice `limit`; the rows are then filtered. Only when
        the filters removed too many does the joined query rank just the rows that pass.
        Hits carry no snippet: `snippets` makes them for the page that is shown.
        """
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        pool = limit * 2 + 20
        ranked = self._conn().execute(
            f"SELECT rowid, bm25(skills_fts, {weights}) AS score FROM skills_fts "
            "WHERE skills_fts MATCH ? ORDER BY score LIMIT ?", (match, pool)).fetchall()
        # Rows for the first `limit` ranked ids, then for the rest only if the filters
        # removed some (usually none: half the rows fetched).
        rows = self.skills_by_id((r[0] for r in ranked[:limit]), filters=filters,
                                 readable=readable)
        if len(rows) < limit:
            rows.update(self.skills_by_id((r[0] for r in ranked[limit:]), filters=filters,
                                          readable=readable))
        hits = [SearchHit(rows[r[0]], -float(r[1]), "") for r in ranked if r[0] in rows]
        if len(hits) >= limit or len(ranked) < pool:
            return hits[:limit]
        where, params = _filtered(filters, readable)
        joined = self._conn().execute(
            f"SELECT s.id, bm25(skills_fts, {weights}) AS score FROM skills_fts "
            f"JOIN skills s ON s.id = skills_fts.rowid {_REPORT_JOIN} "
            f"JOIN namespaces n ON n.name = s.namespace "
            f"WHERE skills_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
            (match, *params, limit)).fetchall()
        rows = self.skills_by_id((r[0] for r in joined), filters=filters, readable=readable)
        return [SearchHit(rows[r[0]], -float(r[1]), "") for r in joined if r[0] in rows]

    def snippets(self, match: str, ids: Iterable[int]) -> dict[int, str]:
        """skill id -> a snippet of its best-matching column, matches between the
        HIGHLIGHT markers, for the ids that match `match`.

        FTS5's snippet() over `match` on the whole index walks every term's list of
        matching rows again (all of them, for a common word). The shown rows' text is
        copied into this thread's scratch table instead, with the same tokenizer, and
        snippet() runs there: the same function over the same text, so the same snippet
        (tests/test_search_scale.py), for 0.6 ms of CPU per page against 0.9 at 10,000
        skills.
        """
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        rows = self._conn().execute(
            f"SELECT rowid, name, description, tags, body FROM skills_fts "
            f"WHERE rowid IN ({marks})", wanted).fetchall()
        scratch = self._scratch()
        scratch.execute("DELETE FROM shown_rows")
        scratch.executemany("INSERT INTO shown_rows (id, name, description, tags, body) "
                            "VALUES (?, ?, ?, ?, ?)", [tuple(r) for r in rows])
        scratch.execute("INSERT INTO shown (shown) VALUES ('delete-all')")
        scratch.execute("INSERT INTO shown (rowid, name, description, tags, body) "
                        "SELECT id, name, description, tags, body FROM shown_rows")
        found = scratch.execute(
            f"SELECT rowid, snippet(shown, -1, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', "
            "'…', 16) FROM shown WHERE shown MATCH ?", (match,)).fetchall()
        return {int(r[0]): str(r[1]) for r in found}

    def fts_terms(self, text: str) -> list[str]:
        """The terms the FTS index stores for `text` (unicode61 tokens, porter stems)."""
        scratch = self._scratch()
        scratch.execute("INSERT INTO shown (shown) VALUES ('delete-all')")
        scratch.execute("INSERT INTO shown (rowid, name) VALUES (-1, ?)", (text,))
        return [str(r[0]) for r in scratch.execute(
            "SELECT term FROM shown_terms ORDER BY offset").fetchall()]

    def fts_matches(self, match: str) -> bool:
        """Whether any skill matches the FTS5 expression (stops at the first)."""
        return self._conn().execute("SELECT 1 FROM skills_fts WHERE skills_fts MATCH ? "
                                    "LIMIT 1", (match,)).fetchone() is not None

    def fts_term_counts(self, share: float) -> tuple[int, int, list[tuple[str, int]]]:
        """(skills, floor, [(term, skills with it)]) for the terms in at least `share` of
        the skills (at least one): FTS5's vocabulary, read in one transaction. Reads every
        term's list of rows: run it off the request path (~0.13 s at 10,000 skills)."""
        conn = self._conn()
        conn.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.skills_fts_terms "
                     "USING fts5vocab(main, skills_fts, row)")
        conn.execute("BEGIN")
        try:
            total = int(conn.execute("SELECT count(*) FROM skills").fetchone()[0])
            floor = max(1, int(total * share))
            counts = [(str(r[0]), int(r[1])) for r in conn.execute(
                "SELECT term, doc FROM temp.skills_fts_terms WHERE doc >= ?", (floor,))]
        finally:
            conn.execute("COMMIT")
        return total, floor, counts

    def _scratch(self) -> sqlite3.Connection:
        """This thread's in-memory FTS5 table with the index's tokenizer (`snippets`,
        `fts_terms`); never holds more than one page of rows. Its text is in `shown_rows`
        (external content), so emptying the index is one command, not a re-tokenizing."""
        conn: sqlite3.Connection | None = getattr(self._local, "scratch", None)
        if conn is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute("CREATE TABLE shown_rows (id INTEGER PRIMARY KEY, name, description, "
                         "tags, body)")
            conn.execute("CREATE VIRTUAL TABLE shown USING fts5(name, description, tags, "
                         "body, content = 'shown_rows', content_rowid = 'id', "
                         "tokenize = 'porter unicode61')")
            conn.execute("CREATE VIRTUAL TABLE shown_terms USING fts5vocab(shown, instance)")
            self._local.scratch = conn
            with self._guard:
                self._all.append(conn)
        return conn

    def skills_by_id(self, ids: Iterable[int], *, filters: SearchFilters,
                     readable: frozenset[str]) -> dict[int, SkillRow]:
        """The skills among `ids` that pass the filters and the caller may read."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, SkillRow] = {}
        where, params = _filtered(filters, readable)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            rows = self._conn().execute(
                f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
                f"JOIN namespaces n ON n.name = s.namespace "
                f"WHERE s.id IN ({marks}) AND {where}", (*chunk, *params)).fetchall()
            out.update((int(row[0]), SkillRow(*row)) for row in rows)  # _SKILL_SELECT order
        return out

    def filtered_skills(self, *, filters: SearchFilters,
                        readable: frozenset[str]) -> list[SkillRow]:
        """Every skill that passes the filters and the caller may read, in one query."""
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"JOIN namespaces n ON n.name = s.namespace WHERE {where}", params).fetchall()
        return [SkillRow(*row) for row in rows]

    def filtered_ids(self, *, filters: SearchFilters, readable: frozenset[str]) -> list[int]:
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT s.id FROM {_SKILL_FROM} JOIN namespaces n ON n.name = s.namespace "
            f"WHERE {where}", params).fetchall()
        return [int(row[0]) for row in rows]

    def browse(self, *, filters: SearchFilters, readable: frozenset[str], order: str,
               offset: int, limit: int) -> list[SkillRow]:
        """Skills passing the filters in one of BROWSE_ORDERS (no query).

        CROSS JOIN keeps `skills` the outer loop, read in the order's index (m009) and
        stopped at the page; left to itself the planner starts from the namespaces'
        visibility index and sorts every skill (0.02 against 45-80 ms at 10,000)."""
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"CROSS JOIN namespaces n ON n.name = s.namespace WHERE {where} "
            f"ORDER BY {BROWSE_ORDERS[order]} LIMIT ? OFFSET ?",
            (*params, limit, offset)).fetchall()
        return [SkillRow(**row) for row in rows]

    def rated_skills(self, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """The skills passing the filters that have outcome totals (any order)."""
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"JOIN namespaces n ON n.name = s.namespace WHERE {where} AND "
            "(s.namespace, s.name) IN (SELECT namespace, name FROM outcome_totals)",
            params).fetchall()
        return [SkillRow(**row) for row in rows]

    def unrated_skills(self, *, filters: SearchFilters, readable: frozenset[str],
                       limit: int) -> list[SkillRow]:
        """The first `limit` skills passing the filters without outcome totals, in the
        order their quality ranks them: installs up to INSTALLS_CAP, then namespace and
        name (the `skills_unrated` index of m009)."""
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"CROSS JOIN namespaces n ON n.name = s.namespace WHERE {where} AND NOT EXISTS "
            "(SELECT 1 FROM outcome_totals o WHERE o.namespace = s.namespace "
            f"AND o.name = s.name) ORDER BY min(s.downloads, {INSTALLS_CAP}) DESC, "
            "s.namespace, s.name LIMIT ?", (*params, limit)).fetchall()
        return [SkillRow(**row) for row in rows]

    def find_by_name(self, name: str, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """Skills called exactly `name` (in any readable namespace passing the filters)."""
        where, params = _filtered(filters, readable)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
            f"JOIN namespaces n ON n.name = s.namespace WHERE s.name = ? AND {where} "
            "ORDER BY s.downloads DESC, s.namespace", (name, *params)).fetchall()
        return [SkillRow(**row) for row in rows]

    # -- embeddings ---------------------------------------------------------------------

    def get_vector(self, text_sha256: str) -> bytes | None:
        row = self._conn().execute("SELECT vector FROM embeddings WHERE text_sha256 = ?",
                                   (text_sha256,)).fetchone()
        return bytes(row[0]) if row else None

    def save_vectors(self, vectors: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (text digest, model, float32 bytes) triples; existing digests are kept."""
        with self._tx() as conn:
            for digest, model, blob in vectors:
                self._save_vector(conn, digest, model, blob)

    def _save_vector(self, conn: sqlite3.Connection, digest: str, model: str,
                     blob: bytes) -> None:
        conn.execute("INSERT OR IGNORE INTO embeddings (text_sha256, model, vector, created_at) "
                     "VALUES (?, ?, ?, ?)", (digest, model, blob, now_iso()))

    def skill_vectors(self) -> Iterator[tuple[int, bytes]]:
        """(skill id, vector bytes) of every skill whose current text has been embedded."""
        cur = self._conn().execute(
            "SELECT s.id, e.vector FROM skills s "
            "JOIN embeddings e ON e.text_sha256 = s.embed_sha256")
        for skill_id, blob in cur:
            yield int(skill_id), bytes(blob)

    def vectors_mark(self) -> tuple[int, str, int]:
        """(catalogue epoch, newest skill update, newest vector): changes when any process
        changes what the vector matrix should hold."""
        row = self._conn().execute(
            "SELECT (SELECT epoch FROM catalogue_epoch), "
            "(SELECT coalesce(max(updated_at), '') FROM skills), "
            "(SELECT coalesce(max(rowid), 0) FROM embeddings)").fetchone()
        return int(row[0]), str(row[1]), int(row[2])

    def catalogue_mark(self) -> tuple[int, int, int]:
        """(catalogue epoch, skills, newest version row): changes whenever any process adds a
        version, removes a skill or rebuilds the catalogue, even within one second (which a
        newest `updated_at` would miss)."""
        row = self._conn().execute(
            "SELECT (SELECT epoch FROM catalogue_epoch), (SELECT count(*) FROM skills), "
            "(SELECT coalesce(max(rowid), 0) FROM versions)").fetchone()
        return int(row[0]), int(row[1]), int(row[2])

    def vectors_since(self, updated_at: str, vector_rowid: int) -> list[tuple[int, bytes]]:
        """(skill id, vector) of skills updated at or after `updated_at`, or whose vector
        was stored after `vector_rowid`."""
        rows = self._conn().execute(
            "SELECT s.id, e.vector FROM skills s "
            "JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
            "WHERE s.updated_at >= ? OR e.rowid > ?", (updated_at, vector_rowid)).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def embed_jobs(self, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current text has no stored vector (new, or indexed before a model)."""
        rows = self._conn().execute(
            "SELECT s.id AS skill_id, s.name, s.description, s.tags, f.body, s.embed_sha256 "
            "FROM skills s JOIN skills_fts f ON f.rowid = s.id "
            "LEFT JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
            "WHERE s.embed_sha256 IS NOT NULL AND e.text_sha256 IS NULL "
            "ORDER BY s.id LIMIT ?", (limit,)).fetchall()
        return [EmbedJob(**row) for row in rows]

    def skill_text(self, skill_id: int) -> EmbedJob | None:
        row = self._conn().execute(
            "SELECT s.id AS skill_id, s.name, s.description, s.tags, f.body, "
            "coalesce(s.embed_sha256, '') AS embed_sha256 "
            "FROM skills s JOIN skills_fts f ON f.rowid = s.id WHERE s.id = ?",
            (skill_id,)).fetchone()
        return EmbedJob(**row) if row else None

    # -- outcome totals (ranking) ---------------------------------------------------------

    def record_outcomes(self, namespace: str, name: str, reports: list[NewOutcome], *,
                        decay: Callable[[float], float],
                        ema: Callable[[float | None, bool], float]) -> list[NewOutcome]:
        """Store the reports not seen before (by reporter and id) and fold them into the
        per-version stats, the decayed totals and the client counts, all in one
        transaction. Returns the reports that were new."""
        fresh: list[NewOutcome] = []
        with self._tx() as conn:
            for report in reports:
                cursor = conn.execute(
                    "INSERT OR IGNORE INTO outcome_reports (reporter, report_id, namespace, "
                    "name, version, outcome, failure_kind, score, signals_json, agent, model, "
                    "client, at, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (report.reporter, report.report_id, namespace, name, report.version,
                     report.outcome, report.failure_kind, report.score, report.signals_json,
                     report.agent, report.model, report.client, report.at.isoformat(),
                     datetime.now(UTC).isoformat()))
                if cursor.rowcount == 1:
                    fresh.append(report)
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
            "SELECT version, successes, failures, infra_errors, score_sum, scored, ema, last_at "
            "FROM version_stats WHERE namespace = ? AND name = ?", (namespace, name)).fetchall()
        return {row["version"]: VersionStats(
            row["version"], row["successes"], row["failures"], row["infra_errors"],
            row["score_sum"] / row["scored"] if row["scored"] else None, row["ema"],
            row["last_at"]) for row in rows}

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

    # -- proposals ----------------------------------------------------------------------

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

    def decide_proposal(self, proposal_id: str, status: str, by: str, comment: str,
                        version: str | None) -> bool:
        """Close an open proposal (compare-and-set on `open`)."""
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE proposals SET status = ?, decided_at = ?, decided_by = ?, comment = ?, "
                "version = ? WHERE id = ? AND status = 'open'",
                (status, datetime.now(UTC).isoformat(), by, comment, version, proposal_id))
        return cursor.rowcount == 1

    # -- canaries and version health ------------------------------------------------------

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

    def review_policy(self, namespace: str) -> str:
        row = self._conn().execute("SELECT review_policy FROM namespaces WHERE name = ?",
                                   (namespace,)).fetchone()
        return str(row[0]) if row else "review"

    def set_review_policy(self, namespace: str, policy: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET review_policy = ? WHERE name = ?",
                         (policy, namespace))

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


def _fold_version_stats(conn: sqlite3.Connection, namespace: str, name: str, version: str,
                        reports: list[NewOutcome],
                        ema: Callable[[float | None, bool], float]) -> None:
    row = conn.execute("SELECT successes, failures, infra_errors, score_sum, scored, ema, "
                       "last_at FROM version_stats WHERE namespace = ? AND name = ? AND "
                       "version = ?", (namespace, name, version)).fetchone()
    wins, losses, infra, score_sum, scored, level, last = (
        tuple(row) if row else (0, 0, 0, 0.0, 0, None, None))
    for report in reports:
        if not report.counted:
            infra += 1
            continue
        wins, losses = (wins + 1, losses) if report.outcome == "success" else (wins, losses + 1)
        level = ema(level, report.outcome == "success")
        if report.score is not None:
            score_sum, scored = score_sum + report.score, scored + 1
        last = max(last or "", report.at.isoformat())
    conn.execute(
        "INSERT OR REPLACE INTO version_stats (namespace, name, version, successes, failures, "
        "infra_errors, score_sum, scored, ema, last_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (namespace, name, version, wins, losses, infra, score_sum, scored, level, last))


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


_SKILL_COLUMNS = ("id, namespace, name, latest_version, description, tags, created_at, "
                  "updated_at, downloads, trust")
# The latest version's verdict comes from its report ("unchecked" until one exists).
_REPORT_JOIN = ("LEFT JOIN reports r ON r.namespace = s.namespace "
                "AND r.name = s.name AND r.version = s.latest_version")
_SKILL_FROM = "skills s " + _REPORT_JOIN
_VERSION_COLUMNS = ("skill_id, version, commit_sha, tag_sha, tree_sha, content_sha256, "
                    "description, frontmatter_json, files_json, published_at")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_SKILL_SELECT = (_prefixed("s", _SKILL_COLUMNS)
                 + ", coalesce(r.verdict, 'unchecked') AS verdict")


def _visible(readable: frozenset[str]) -> tuple[str, list[Any]]:
    """A WHERE fragment admitting public namespaces and the `readable` private ones."""
    # `+n.visibility`: never start a query from the visibility index (most skills are
    # public, so it selects nearly everything); a lookup by id or name starts from those.
    if not readable:
        return "+n.visibility = 'public'", []
    marks = ", ".join("?" for _ in readable)
    return f"(+n.visibility = 'public' OR n.name IN ({marks}))", sorted(readable)


def _filtered(filters: SearchFilters, readable: frozenset[str]) -> tuple[str, list[Any]]:
    """Visibility plus the search filters, as one WHERE fragment over `s`, `n` and `r`."""
    where, params = _visible(readable)
    clauses = [where]
    if filters.namespace is not None:
        clauses.append("s.namespace = ?")
        params.append(filters.namespace)
    if filters.tag is not None:
        clauses.append("instr(',' || replace(lower(s.tags), ', ', ',') || ',', ?) > 0")
        params.append("," + filters.tag.lower() + ",")
    if filters.trust is not None:
        clauses.append("s.trust = ?")
        params.append(filters.trust)
    else:
        clauses.append("s.trust != 'blocked'")
    if filters.verdict is not None:
        clauses.append("coalesce(r.verdict, 'unchecked') = ?")
        params.append(filters.verdict)
    if filters.updated_since is not None:
        clauses.append("s.updated_at >= ?")
        params.append(filters.updated_since)
    return " AND ".join(clauses), params


def _version(row: sqlite3.Row) -> VersionRow:
    data = dict(row)
    data["frontmatter"] = json.loads(data.pop("frontmatter_json"))
    data["files"] = json.loads(data.pop("files_json"))
    return VersionRow(**data)
