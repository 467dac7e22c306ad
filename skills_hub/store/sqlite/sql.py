"""SQL shared by the SQLite stores: the skill row's columns, visibility and filters."""

from __future__ import annotations

import json
import sqlite3
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

# bm25 weights per FTS column: name, description, tags, body.
BM25_WEIGHTS = (10.0, 5.0, 3.0, 1.0)


def _namespace(row: sqlite3.Row) -> NamespaceInfo:
    data = dict(row)
    data["two_person"] = bool(data["two_person"])
    return NamespaceInfo(**data)


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


def _proposal(row: sqlite3.Row) -> ProposalRow:
    data = dict(row)
    data["edits"] = json.loads(data.pop("edits_json"))
    data["evidence"] = json.loads(data.pop("evidence_json"))
    data["report"] = json.loads(data.pop("report_json"))
    return ProposalRow(**data)


def insert_version(conn: sqlite3.Connection, new: NewVersion) -> int:
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


def insert_report(conn: sqlite3.Connection, new: NewReport) -> str | None:
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


def insert_vector(conn: sqlite3.Connection, digest: str, model: str,
                 blob: bytes) -> None:
    conn.execute("INSERT OR IGNORE INTO embeddings (text_sha256, model, vector, created_at) "
                 "VALUES (?, ?, ?, ?)", (digest, model, blob, now_iso()))
