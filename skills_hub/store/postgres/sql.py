"""SQL shared by the PostgreSQL stores: the skill row's columns, visibility and filters,
the writes a publish makes (the same as `store/sqlite/sql.py`, in PostgreSQL's dialect)."""

from __future__ import annotations

import json
from typing import Any

from ...domain import (
    NamespaceInfo,
    NewReport,
    NewVersion,
    ProposalRow,
    SearchFilters,
    VersionRow,
    now_iso,
)
from ..columns import (
    _PROPOSAL_COLUMNS,
)
from .db import LOCK_SKILL, LOCK_VECTORS, Conn, Database


def _namespace(row: tuple[Any, ...]) -> NamespaceInfo:
    (name, visibility, created_at, owner_user, owner_org, release_policy, two_person,
     review_policy) = row
    return NamespaceInfo(name, visibility, created_at, owner_user, owner_org, release_policy,
                         bool(two_person), review_policy)


def _visible(readable: frozenset[str]) -> tuple[str, list[Any]]:
    """A WHERE fragment admitting public namespaces and the `readable` private ones (a
    name with a NUL is no namespace's: PostgreSQL's text cannot even hold it)."""
    names = sorted(name for name in readable if "\0" not in name)
    if not names:
        return "n.visibility = 'public'", []
    return "(n.visibility = 'public' OR n.name = ANY(%s))", [names]


def _filtered(filters: SearchFilters, readable: frozenset[str]) -> tuple[str, list[Any]]:
    """Visibility plus the search filters, as one WHERE fragment over `s`, `n` and `r`."""
    where, params = _visible(readable)
    clauses = [where]
    if filters.namespace is not None:
        clauses.append("s.namespace = %s")
        params.append(filters.namespace)
    if filters.tag is not None:
        clauses.append("strpos(',' || replace(lower(s.tags), ', ', ',') || ',', %s) > 0")
        params.append("," + filters.tag.lower() + ",")
    if filters.trust is not None:
        clauses.append("s.trust = %s")
        params.append(filters.trust)
    else:
        clauses.append("s.trust != 'blocked'")
    if filters.verdict is not None:
        clauses.append("coalesce(r.verdict, 'unchecked') = %s")
        params.append(filters.verdict)
    if filters.updated_since is not None:
        clauses.append("s.updated_at >= %s")
        params.append(filters.updated_since)
    return " AND ".join(clauses), params


def _version(row: tuple[Any, ...]) -> VersionRow:
    (skill_id, version, commit_sha, tag_sha, tree_sha, content_sha256, description,
     frontmatter, files, published_at) = row
    return VersionRow(skill_id, version, commit_sha, tag_sha, tree_sha, content_sha256,
                      description, json.loads(frontmatter), json.loads(files), published_at)


def _proposal(row: tuple[Any, ...]) -> ProposalRow:
    data = dict(zip((c.strip() for c in _PROPOSAL_COLUMNS.split(",")), row, strict=True))
    data["edits"] = json.loads(data.pop("edits_json"))
    data["evidence"] = json.loads(data.pop("evidence_json"))
    data["report"] = json.loads(data.pop("report_json"))
    return ProposalRow(**data)


def lock_skill(db: Database, conn: Conn, namespace: str, name: str) -> None:
    """Serialise this transaction with the others that read-modify-write the skill's rows
    (version stats, trust, reports); taken first, before any row lock."""
    db.lock(conn, LOCK_SKILL, namespace, name)


def insert_version(db: Database, conn: Conn, new: NewVersion) -> int:
    """Record a version (replacing one of the same number, with a new row id as SQLite's
    INSERT OR REPLACE gives it); refresh the skill and its text when it is the latest.
    The caller notifies `catalogue` and `vectors` once per transaction."""
    lock_skill(db, conn, new.namespace, new.name)
    conn.execute(
        "INSERT INTO namespaces (name, visibility, created_at) VALUES (%s, 'public', %s) "
        "ON CONFLICT DO NOTHING", (new.namespace, new.published_at))
    row = conn.execute(
        "WITH made AS (INSERT INTO skills (namespace, name, latest_version, description, tags, "
        "created_at, updated_at, trust) VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce((SELECT "
        "trust FROM skill_trust WHERE namespace = %s AND name = %s), 'community')) "
        "ON CONFLICT (namespace, name) DO NOTHING RETURNING id) "
        "SELECT id FROM made UNION ALL "
        "SELECT id FROM skills WHERE namespace = %s AND name = %s",
        (new.namespace, new.name, new.version, new.description, new.tags, new.published_at,
         new.published_at, new.namespace, new.name, new.namespace, new.name)).fetchone()
    assert row is not None
    skill_id = int(row[0])
    conn.execute("DELETE FROM versions WHERE skill_id = %s AND version = %s",
                 (skill_id, new.version))
    conn.execute(
        "INSERT INTO versions (skill_id, version, commit_sha, tag_sha, tree_sha, "
        "content_sha256, description, frontmatter_json, files_json, published_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (skill_id, new.version, new.commit_sha, new.tag_sha, new.tree_sha,
         new.content_sha256, new.description, json.dumps(new.frontmatter, default=str),
         json.dumps(new.files), new.published_at))
    if new.is_latest:
        conn.execute(
            "UPDATE skills SET latest_version = %s, description = %s, tags = %s, "
            "updated_at = %s, embed_sha256 = %s WHERE id = %s",
            (new.version, new.description, new.tags, new.published_at, new.embed_sha256,
             skill_id))
        conn.execute(
            "INSERT INTO skill_text (skill_id, name, description, tags, body) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (skill_id) DO UPDATE SET "
            "name = excluded.name, description = excluded.description, tags = excluded.tags, "
            "body = excluded.body", (skill_id, new.name, new.description, new.tags, new.body))
    return skill_id


def insert_report(db: Database, conn: Conn, new: NewReport) -> str | None:
    lock_skill(db, conn, new.namespace, new.name)
    old = conn.execute(
        "SELECT verdict FROM reports WHERE namespace = %s AND name = %s AND version = %s",
        (new.namespace, new.name, new.version)).fetchone()
    old_verdict = str(old[0]) if old else None
    stamp = now_iso()
    conn.execute(
        "INSERT INTO reports (namespace, name, version, content_sha256, verdict, report_json, "
        "pipeline, checked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (namespace, name, version) DO UPDATE SET "
        "content_sha256 = excluded.content_sha256, verdict = excluded.verdict, "
        "report_json = excluded.report_json, pipeline = excluded.pipeline, "
        "checked_at = excluded.checked_at",
        (new.namespace, new.name, new.version, new.content_sha256, new.verdict,
         json.dumps(new.report), new.pipeline, stamp))
    if old_verdict != new.verdict:
        conn.execute(
            "INSERT INTO report_history (namespace, name, version, old_verdict, new_verdict, "
            "pipeline, reason, changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (new.namespace, new.name, new.version, old_verdict, new.verdict, new.pipeline,
             new.reason, stamp))
    return old_verdict


def insert_vectors(db: Database, conn: Conn, vectors: list[tuple[str, str, bytes]]) -> None:
    """Store (digest, model, float32 bytes); existing digests are kept. Vector writers take
    turns, so that `embeddings.id` grows in commit order: a node that read the newest id
    then misses none stored before it (`Vectors.vectors_since`)."""
    if not vectors:
        return
    db.lock(conn, LOCK_VECTORS)
    digests, models, blobs = (list(column) for column in zip(*vectors, strict=True))
    conn.execute(
        "INSERT INTO embeddings (text_sha256, model, vector, created_at) "
        "SELECT d, m, v, %s FROM unnest(%s::text[], %s::text[], %s::bytea[]) AS x(d, m, v) "
        "ON CONFLICT (text_sha256) DO NOTHING", (now_iso(), digests, models, blobs))
    db.notify(conn, "vectors")
