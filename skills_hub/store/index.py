"""index.db: the SQLite catalogue beside git. The only module that writes SQL.

Git is the source of truth for skills and versions; this holds what git does not (tokens,
namespace settings, counters) and a queryable copy of the catalogue with an FTS5 index,
which `reindex` can rebuild from git at any time.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import migrations

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
    score: float
    snippet: str


class Index:
    """Per-thread connections to one index.db in WAL mode."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()

    def migrate(self) -> list[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return migrations.apply(self._conn())

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

    def record_version(self, new: NewVersion, report: NewReport | None = None) -> None:
        """Insert a version (and its skill on first publish); refresh the skill if latest.

        The version's checks report, when given, is written in the same transaction.
        """
        with self._tx() as conn:
            self._record_version(conn, new)
            if report is not None:
                self._save_report(conn, report)

    def record_versions(self, versions: Iterable[NewVersion]) -> None:
        with self._tx() as conn:
            for new in versions:
                self._record_version(conn, new)

    def _record_version(self, conn: sqlite3.Connection, new: NewVersion) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO namespaces (name, visibility, created_at) "
            "VALUES (?, 'public', ?)", (new.namespace, new.published_at))
        conn.execute(
            "INSERT OR IGNORE INTO skills (namespace, name, latest_version, description, tags, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (new.namespace, new.name, new.version, new.description, new.tags,
             new.published_at, new.published_at))
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
                "UPDATE skills SET latest_version = ?, description = ?, tags = ?, updated_at = ? "
                "WHERE id = ?",
                (new.version, new.description, new.tags, new.published_at, skill_id))
            conn.execute("DELETE FROM skills_fts WHERE rowid = ?", (skill_id,))
            conn.execute(
                "INSERT INTO skills_fts (rowid, name, description, tags, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (skill_id, new.name, new.description, new.tags, new.body))

    def delete_version(self, namespace: str, name: str, version: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM versions WHERE version = ? AND skill_id = "
                "(SELECT id FROM skills WHERE namespace = ? AND name = ?)",
                (version, namespace, name))

    def delete_skill(self, namespace: str, name: str) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM skills WHERE namespace = ? AND name = ?",
                               (namespace, name)).fetchone()
            if row:
                conn.execute("DELETE FROM skills_fts WHERE rowid = ?", (row[0],))
                conn.execute("DELETE FROM versions WHERE skill_id = ?", (row[0],))
                conn.execute("DELETE FROM skills WHERE id = ?", (row[0],))

    def clear_catalogue(self) -> None:
        """Forget skills and versions (not namespaces or tokens) before a full reindex."""
        with self._tx() as conn:
            conn.execute("DELETE FROM skills_fts")
            conn.execute("DELETE FROM versions")
            conn.execute("DELETE FROM skills")

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

    def search(self, match: str, *, readable: frozenset[str], namespace: str | None,
               limit: int) -> list[SearchHit]:
        """FTS5 bm25 search; `match` must already be a safe FTS5 expression."""
        where, params = _visible(readable)
        if namespace is not None:
            where += " AND s.namespace = ?"
            params.append(namespace)
        weights = ", ".join(str(w) for w in BM25_WEIGHTS)
        rows = self._conn().execute(
            f"SELECT {_SKILL_SELECT}, bm25(skills_fts, {weights}) AS score, "
            "snippet(skills_fts, 3, '[', ']', '…', 12) AS snippet "
            "FROM skills_fts JOIN skills s ON s.id = skills_fts.rowid "
            "LEFT JOIN reports r ON r.namespace = s.namespace AND r.name = s.name "
            "AND r.version = s.latest_version "
            f"JOIN namespaces n ON n.name = s.namespace "
            f"WHERE skills_fts MATCH ? AND {where} ORDER BY score LIMIT ?",
            (match, *params, limit)).fetchall()
        hits = []
        for row in rows:
            data = dict(row)
            score, snippet = data.pop("score"), data.pop("snippet")
            hits.append(SearchHit(SkillRow(**data), -float(score), snippet))
        return hits


_SKILL_COLUMNS = ("id, namespace, name, latest_version, description, tags, created_at, "
                  "updated_at, downloads")
# The latest version's verdict comes from its report ("unchecked" until one exists).
_SKILL_FROM = ("skills s LEFT JOIN reports r ON r.namespace = s.namespace "
               "AND r.name = s.name AND r.version = s.latest_version")
_VERSION_COLUMNS = ("skill_id, version, commit_sha, tag_sha, tree_sha, content_sha256, "
                    "description, frontmatter_json, files_json, published_at")


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


_SKILL_SELECT = (_prefixed("s", _SKILL_COLUMNS)
                 + ", coalesce(r.verdict, 'unchecked') AS verdict")


def _visible(readable: frozenset[str]) -> tuple[str, list[Any]]:
    """A WHERE fragment admitting public namespaces and the `readable` private ones."""
    if not readable:
        return "n.visibility = 'public'", []
    marks = ", ".join("?" for _ in readable)
    return f"(n.visibility = 'public' OR n.name IN ({marks}))", sorted(readable)


def _version(row: sqlite3.Row) -> VersionRow:
    data = dict(row)
    data["frontmatter"] = json.loads(data.pop("frontmatter_json"))
    data["files"] = json.loads(data.pop("files_json"))
    return VersionRow(**data)
