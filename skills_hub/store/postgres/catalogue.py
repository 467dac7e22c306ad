"""The catalogue in PostgreSQL: namespaces, skills and versions, checks reports."""

from __future__ import annotations

import json
from collections.abc import Iterable

from ...domain import (
    INSTALLS_CAP,
    ExceptionRow,
    HistoryRow,
    NamespaceInfo,
    NamespaceRow,
    NewReport,
    NewVersion,
    ReportRow,
    SearchFilters,
    SkillRow,
    VersionRow,
    now_iso,
)
from ..columns import _NAMESPACE, _SKILL_FROM, _SKILL_SELECT, _VERSION_COLUMNS, BROWSE_ORDERS
from .db import Table, nul_misses
from .sql import (
    _filtered,
    _namespace,
    _version,
    _visible,
    insert_report,
    insert_vectors,
    insert_version,
    lock_skill,
)

_FROM_VISIBLE = f"{_SKILL_FROM} JOIN namespaces n ON n.name = s.namespace"


class Namespaces(Table):
    """Namespaces: visibility, owner, release and review policies."""

    def ensure_namespace(self, name: str, visibility: str = "public") -> NamespaceRow:
        with self._tx() as conn:
            conn.execute("INSERT INTO namespaces (name, visibility, created_at) "
                         "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                         (name, visibility, now_iso()))
        row = self.get_namespace(name)
        assert row is not None
        return row

    def set_visibility(self, name: str, visibility: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET visibility = %s WHERE name = %s",
                         (visibility, name))
        self.generation.bump()

    @nul_misses(lambda: None)
    def get_namespace(self, name: str) -> NamespaceRow | None:
        with self._read() as conn:
            row = conn.execute("SELECT name, visibility, created_at FROM namespaces "
                               "WHERE name = %s", (name,)).fetchone()
        return NamespaceRow(*row) if row else None

    def list_namespaces(self) -> list[NamespaceRow]:
        with self._read() as conn:
            rows = conn.execute("SELECT name, visibility, created_at FROM namespaces "
                                "ORDER BY name").fetchall()
        return [NamespaceRow(*row) for row in rows]

    @nul_misses(lambda: "review")
    def review_policy(self, namespace: str) -> str:
        with self._read() as conn:
            row = conn.execute("SELECT review_policy FROM namespaces WHERE name = %s",
                               (namespace,)).fetchone()
        return str(row[0]) if row else "review"

    def set_review_policy(self, namespace: str, policy: str) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET review_policy = %s WHERE name = %s",
                         (policy, namespace))

    @nul_misses(lambda: None)
    def namespace(self, name: str) -> NamespaceInfo | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_NAMESPACE} FROM namespaces WHERE name = %s",
                               (name,)).fetchone()
        return _namespace(row) if row else None

    def namespaces(self) -> list[NamespaceInfo]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_NAMESPACE} FROM namespaces ORDER BY name").fetchall()
        return [_namespace(r) for r in rows]

    def hidden_namespaces(self) -> list[NamespaceInfo]:
        """The namespaces that are not public (what a principal's `readable` is made of)."""
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_NAMESPACE} FROM namespaces "
                                "WHERE visibility != 'public' ORDER BY name").fetchall()
        return [_namespace(r) for r in rows]

    def set_namespace_owner(self, name: str, *, org: str | None = None,
                            user_id: int | None = None) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET owner_org = %s, owner_user = %s "
                         "WHERE name = %s", (org, user_id, name))
        self.generation.bump()

    def set_release_policy(self, name: str, policy: str, two_person: bool) -> None:
        with self._tx() as conn:
            conn.execute("UPDATE namespaces SET release_policy = %s, two_person = %s "
                         "WHERE name = %s", (policy, int(two_person), name))


class Catalogue(Table):
    """Skills and versions: what `reindex` rebuilds from git."""

    def record_version(self, new: NewVersion, report: NewReport | None = None,
                       vector: tuple[str, bytes] | None = None) -> int:
        """Insert a version (and its skill on first publish); refresh the skill if latest.

        The version's checks report and the (model, float32 bytes) vector of its text, when
        given, are written in the same transaction. Returns the skill's id.
        """
        with self._tx() as conn:
            skill_id = insert_version(self.db, conn, new)
            if report is not None:
                insert_report(self.db, conn, report)
            if vector is not None and new.embed_sha256:
                insert_vectors(self.db, conn, [(new.embed_sha256, *vector)])
            self.db.notify(conn, "catalogue", "vectors")
        return skill_id

    def record_versions(self, versions: Iterable[NewVersion]) -> None:
        batch = list(versions)
        with self._tx() as conn:
            # Every skill's lock first, in one order: two rebuilds never wait on each other.
            for namespace, name in sorted({(v.namespace, v.name) for v in batch}):
                lock_skill(self.db, conn, namespace, name)
            for new in batch:
                insert_version(self.db, conn, new)
            self.db.notify(conn, "catalogue", "vectors")

    def delete_version(self, namespace: str, name: str, version: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "DELETE FROM versions WHERE version = %s AND skill_id = "
                "(SELECT id FROM skills WHERE namespace = %s AND name = %s)",
                (version, namespace, name))
            self.db.notify(conn, "catalogue")
        self.generation.bump()

    def delete_skill(self, namespace: str, name: str) -> None:
        with self._tx() as conn:
            row = conn.execute("SELECT id FROM skills WHERE namespace = %s AND name = %s",
                               (namespace, name)).fetchone()
            if row:
                conn.execute("UPDATE catalogue_epoch SET epoch = epoch + 1")
                conn.execute("DELETE FROM versions WHERE skill_id = %s", (row[0],))
                conn.execute("DELETE FROM skills WHERE id = %s", (row[0],))  # and its text
                self.db.notify(conn, "catalogue", "vectors")
        self.generation.bump()

    def clear_catalogue(self) -> None:
        """Forget skills and versions (not namespaces or tokens) before a full reindex."""
        with self._tx() as conn:
            conn.execute("UPDATE catalogue_epoch SET epoch = epoch + 1")
            conn.execute("DELETE FROM skill_text")
            conn.execute("DELETE FROM versions")
            conn.execute("DELETE FROM skills")
            self.db.notify(conn, "catalogue", "vectors")
        self.generation.bump()

    def count_download(self, skill_id: int) -> None:
        with self._read() as conn:
            conn.execute("UPDATE skills SET downloads = downloads + 1 WHERE id = %s",
                         (skill_id,))

    def add_downloads(self, counts: dict[tuple[str, str], int]) -> None:
        """Add (namespace, name) -> n to the skills' download counts, in one statement.

        The rows are locked in id order first, so two nodes flushing their counts of the
        same skills at once wait for each other instead of deadlocking."""
        if not counts:
            return
        keys = sorted(counts)
        with self._read() as conn:
            conn.execute(
                "WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[]) "
                "AS v(namespace, name, n)), "
                "t AS (SELECT s.id, v.n FROM skills s JOIN v ON s.namespace = v.namespace "
                "AND s.name = v.name ORDER BY s.id FOR UPDATE OF s) "
                "UPDATE skills SET downloads = skills.downloads + t.n FROM t "
                "WHERE skills.id = t.id",
                ([k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]))

    def catalogue_tags(self) -> dict[tuple[str, str, str], str]:
        """(namespace, name, version) -> tag sha, for reconciling with git."""
        with self._read() as conn:
            rows = conn.execute("SELECT s.namespace, s.name, v.version, v.tag_sha FROM versions v "
                                "JOIN skills s ON s.id = v.skill_id").fetchall()
        return {(r[0], r[1], r[2]): r[3] for r in rows}

    @nul_misses(lambda: None)
    def get_skill(self, namespace: str, name: str) -> SkillRow | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_SKILL_FROM} "
                               "WHERE s.namespace = %s AND s.name = %s",
                               (namespace, name)).fetchone()
        return SkillRow(*row) if row else None

    def versions(self, skill_id: int) -> list[VersionRow]:
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_VERSION_COLUMNS} FROM versions WHERE skill_id = %s "
                                "ORDER BY version", (skill_id,)).fetchall()
        return [_version(row) for row in rows]

    @nul_misses(lambda: None)
    def get_version(self, skill_id: int, version: str) -> VersionRow | None:
        with self._read() as conn:
            row = conn.execute(f"SELECT {_VERSION_COLUMNS} FROM versions "
                               "WHERE skill_id = %s AND version = %s",
                               (skill_id, version)).fetchone()
        return _version(row) if row else None

    @nul_misses(list)
    def list_skills(self, *, readable: frozenset[str], namespace: str | None,
                    after: tuple[str, str] | None, limit: int) -> list[SkillRow]:
        """Skills ordered by (namespace, name), after the cursor, in readable namespaces."""
        where, params = _visible(readable)
        if namespace is not None:
            where += " AND s.namespace = %s"
            params.append(namespace)
        if after is not None:
            where += " AND (s.namespace, s.name) > (%s, %s)"
            params.extend(after)
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} WHERE {where} "
                                "ORDER BY s.namespace, s.name LIMIT %s",
                                (*params, limit)).fetchall()
        return [SkillRow(*row) for row in rows]

    @nul_misses(int)
    def count_skills(self, *, readable: frozenset[str], namespace: str | None) -> int:
        where, params = _visible(readable)
        if namespace is not None:
            where += " AND s.namespace = %s"
            params.append(namespace)
        with self._read() as conn:
            row = conn.execute("SELECT count(*) FROM skills s JOIN namespaces n "
                               f"ON n.name = s.namespace WHERE {where}", params).fetchone()
        assert row is not None
        return int(row[0])

    @nul_misses(dict)
    def skills_by_id(self, ids: Iterable[int], *, filters: SearchFilters,
                     readable: frozenset[str]) -> dict[int, SkillRow]:
        """The skills among `ids` that pass the filters and the caller may read."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return {}
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} "
                                f"WHERE s.id = ANY(%s) AND {where}",
                                (wanted, *params)).fetchall()
        return {int(row[0]): SkillRow(*row) for row in rows}

    @nul_misses(list)
    def filtered_skills(self, *, filters: SearchFilters,
                        readable: frozenset[str]) -> list[SkillRow]:
        """Every skill that passes the filters and the caller may read, in one query."""
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} WHERE {where}",
                                params).fetchall()
        return [SkillRow(*row) for row in rows]

    @nul_misses(list)
    def filtered_ids(self, *, filters: SearchFilters, readable: frozenset[str]) -> list[int]:
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(f"SELECT s.id FROM {_FROM_VISIBLE} WHERE {where}",
                                params).fetchall()
        return [int(row[0]) for row in rows]

    @nul_misses(list)
    def browse(self, *, filters: SearchFilters, readable: frozenset[str], order: str,
               offset: int, limit: int) -> list[SkillRow]:
        """Skills passing the filters in one of BROWSE_ORDERS (no query)."""
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} WHERE {where} "
                                f"ORDER BY {BROWSE_ORDERS[order]} LIMIT %s OFFSET %s",
                                (*params, limit, offset)).fetchall()
        return [SkillRow(*row) for row in rows]

    @nul_misses(list)
    def rated_skills(self, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """The skills passing the filters that have outcome totals (any order)."""
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} WHERE {where} AND EXISTS "
                "(SELECT 1 FROM outcome_totals o WHERE o.namespace = s.namespace "
                "AND o.name = s.name)", params).fetchall()
        return [SkillRow(*row) for row in rows]

    @nul_misses(list)
    def unrated_skills(self, *, filters: SearchFilters, readable: frozenset[str],
                       limit: int) -> list[SkillRow]:
        """The first `limit` skills passing the filters without outcome totals, in the
        order their quality ranks them: installs up to INSTALLS_CAP, then namespace and
        name (the `skills_unrated` index)."""
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} WHERE {where} AND NOT EXISTS "
                "(SELECT 1 FROM outcome_totals o WHERE o.namespace = s.namespace "
                f"AND o.name = s.name) ORDER BY LEAST(s.downloads, {INSTALLS_CAP}) DESC, "
                "s.namespace, s.name LIMIT %s", (*params, limit)).fetchall()
        return [SkillRow(*row) for row in rows]

    @nul_misses(list)
    def find_by_name(self, name: str, *, filters: SearchFilters,
                     readable: frozenset[str]) -> list[SkillRow]:
        """Skills called exactly `name` (in any readable namespace passing the filters)."""
        where, params = _filtered(filters, readable)
        with self._read() as conn:
            rows = conn.execute(f"SELECT {_SKILL_SELECT} FROM {_FROM_VISIBLE} "
                                f"WHERE s.name = %s AND {where} "
                                "ORDER BY s.downloads DESC, s.namespace",
                                (name, *params)).fetchall()
        return [SkillRow(*row) for row in rows]

    def catalogue_mark(self) -> tuple[int, int, int]:
        """(catalogue epoch, skills, newest version row): changes whenever any node adds a
        version, removes a skill or rebuilds the catalogue. Read again only after a
        `catalogue` notification (`Database.mark`)."""
        return self.db.mark("catalogue", self._catalogue_mark)

    def _catalogue_mark(self) -> tuple[int, int, int]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT epoch FROM catalogue_epoch), (SELECT count(*) FROM skills), "
                "(SELECT coalesce(max(id), 0) FROM versions)").fetchone()
        assert row is not None
        return int(row[0]), int(row[1]), int(row[2])


class Reports(Table):
    """Checks reports per version, their history, reviewed exceptions."""

    def save_report(self, report: NewReport) -> str | None:
        """Record a report; return the verdict it replaced (None for a first report)."""
        with self._tx() as conn:
            return insert_report(self.db, conn, report)

    @nul_misses(lambda: None)
    def get_report(self, namespace: str, name: str, version: str) -> ReportRow | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT namespace, name, version, content_sha256, verdict, report_json, "
                "pipeline, checked_at FROM reports "
                "WHERE namespace = %s AND name = %s AND version = %s",
                (namespace, name, version)).fetchone()
        if row is None:
            return None
        namespace, name, version, content_sha256, verdict, report_json, pipeline, at = row
        return ReportRow(namespace, name, version, content_sha256, verdict,
                         json.loads(report_json), pipeline, at)

    @nul_misses(dict)
    def verdicts(self, namespace: str, name: str) -> dict[str, str]:
        """version -> verdict for every checked version of a skill."""
        with self._read() as conn:
            rows = conn.execute("SELECT version, verdict FROM reports "
                                "WHERE namespace = %s AND name = %s",
                                (namespace, name)).fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    @nul_misses(list)
    def report_history(self, namespace: str, name: str) -> list[HistoryRow]:
        with self._read() as conn:
            rows = conn.execute(
                "SELECT version, old_verdict, new_verdict, pipeline, reason, changed_at "
                "FROM report_history WHERE namespace = %s AND name = %s ORDER BY id",
                (namespace, name)).fetchall()
        return [HistoryRow(*row) for row in rows]

    def unchecked_versions(self) -> list[tuple[str, str, str]]:
        """(namespace, name, version) of versions with no report for their content."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.namespace, s.name, v.version FROM versions v "
                "JOIN skills s ON s.id = v.skill_id LEFT JOIN reports r "
                "ON r.namespace = s.namespace AND r.name = s.name AND r.version = v.version "
                "AND r.content_sha256 = v.content_sha256 "
                "WHERE r.verdict IS NULL ORDER BY s.namespace, s.name, v.id").fetchall()
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]

    def set_exception(self, namespace: str, name: str, rule: str, reason: str) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO rule_exceptions (namespace, name, rule, reason, created_at) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (namespace, name, rule) DO UPDATE "
                "SET reason = excluded.reason, created_at = excluded.created_at",
                (namespace, name, rule, reason, now_iso()))

    def delete_exception(self, namespace: str, name: str, rule: str) -> bool:
        with self._tx() as conn:
            cur = conn.execute("DELETE FROM rule_exceptions "
                               "WHERE namespace = %s AND name = %s AND rule = %s",
                               (namespace, name, rule))
        return cur.rowcount > 0

    @nul_misses(list)
    def exceptions(self, namespace: str, name: str) -> list[ExceptionRow]:
        with self._read() as conn:
            rows = conn.execute("SELECT rule, reason, created_at FROM rule_exceptions "
                                "WHERE namespace = %s AND name = %s ORDER BY rule",
                                (namespace, name)).fetchall()
        return [ExceptionRow(*row) for row in rows]
