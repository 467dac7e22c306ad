"""Search storage in SQLite: the FTS5 keyword index and the stored embeddings."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable, Iterator

from ...domain import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    EmbedJob,
    KeywordQuery,
    SearchFilters,
    SearchHit,
)
from ..columns import _REPORT_JOIN
from ..recount import Recounted
from . import fts
from .catalogue import Catalogue
from .db import Database, Table
from .sql import BM25_WEIGHTS, _filtered, insert_vector

TERMS_FLOOR = 0.001   # term counts are kept for the terms in this share of skills or more


class KeywordIndex(Table):
    """FTS5 over each skill's latest name, description, tags and body (bm25 with
    BM25_WEIGHTS). A worker thread keeps a snapshot of how many skills each term is in
    (`fts.TermStats`) so any-word queries can leave the very common words out."""

    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        super().__init__(db)
        self.catalogue = catalogue
        # Term counts, counted again by a worker when the catalogue changed.
        self._terms = Recounted(self._count_terms, catalogue.catalogue_mark, name="fts-terms")
        self._fts_terms = functools.lru_cache(maxsize=65_536)(
            lambda word: tuple(self.fts_terms(word)))

    # -- the protocol -------------------------------------------------------------------

    def search(self, query: KeywordQuery, *, filters: SearchFilters, readable: frozenset[str],
               limit: int) -> list[SearchHit]:
        """Skills matching every word first, then those matching any word but the very
        common ones (`fts.build`), bm25 within each."""
        match = fts.build(query, stats=self._terms.current())
        if not match:
            return []
        hits = self.bm25(match.all_words, filters=filters, readable=readable, limit=limit)
        if len(hits) < limit and match.rarer_words != match.all_words:
            seen = {h.skill.id for h in hits}
            hits += [h for h in self.bm25(match.rarer_words, filters=filters,
                                          readable=readable, limit=limit)
                     if h.skill.id not in seen][:limit - len(hits)]
        return hits

    def snippets(self, query: KeywordQuery, ids: Iterable[int]) -> dict[int, str]:
        match = fts.build(query)
        return self.fts_snippets(match.any_word, ids) if match else {}

    def start(self) -> None:
        """Count the terms in a worker thread (searches run the full OR meanwhile)."""
        self._terms.start()

    def close(self) -> None:
        self._terms.close()

    # -- term counts ----------------------------------------------------------------------

    @property
    def terms(self) -> fts.TermStats | None:
        return self._terms.value

    def refresh_terms(self) -> None:
        """Count how many skills each term is in (FTS5's vocabulary), for `fts.build`."""
        self._terms.refresh()

    def _count_terms(self) -> fts.TermStats:
        total, floor, counts = self.fts_term_counts(TERMS_FLOOR)
        return fts.TermStats(total, floor, counts, self._fts_terms, self.fts_matches)

    # -- FTS5 -------------------------------------------------------------------------------

    def bm25(self, match: str, *, filters: SearchFilters, readable: frozenset[str],
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
        rows = self.catalogue.skills_by_id((r[0] for r in ranked[:limit]), filters=filters,
                                 readable=readable)
        if len(rows) < limit:
            rows.update(self.catalogue.skills_by_id((r[0] for r in ranked[limit:]), filters=filters,
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
        rows = self.catalogue.skills_by_id((r[0] for r in joined), filters=filters,
                                           readable=readable)
        return [SearchHit(rows[r[0]], -float(r[1]), "") for r in joined if r[0] in rows]

    def fts_snippets(self, match: str, ids: Iterable[int]) -> dict[int, str]:
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
        conn: sqlite3.Connection | None = getattr(self.db.local(), "scratch", None)
        if conn is None:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            conn.execute("CREATE TABLE shown_rows (id INTEGER PRIMARY KEY, name, description, "
                         "tags, body)")
            conn.execute("CREATE VIRTUAL TABLE shown USING fts5(name, description, tags, "
                         "body, content = 'shown_rows', content_rowid = 'id', "
                         "tokenize = 'porter unicode61')")
            conn.execute("CREATE VIRTUAL TABLE shown_terms USING fts5vocab(shown, instance)")
            self.db.local().scratch = conn
            self.db.keep(conn)
        return conn



class Vectors(Table):
    """Embeddings by the digest of the text embedded; what has none yet."""

    def get_vector(self, text_sha256: str) -> bytes | None:
        row = self._conn().execute("SELECT vector FROM embeddings WHERE text_sha256 = ?",
                                   (text_sha256,)).fetchone()
        return bytes(row[0]) if row else None

    def save_vectors(self, vectors: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (text digest, model, float32 bytes) triples; existing digests are kept."""
        with self._tx() as conn:
            for digest, model, blob in vectors:
                insert_vector(conn, digest, model, blob)

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

    def stale_vectors(self, model: str, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current vector was made by another `model`, by id."""
        rows = self._conn().execute(
            "SELECT s.id AS skill_id, s.name, s.description, s.tags, f.body, s.embed_sha256 "
            "FROM skills s JOIN skills_fts f ON f.rowid = s.id "
            "JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
            "WHERE e.model != ? ORDER BY s.id LIMIT ?", (model, limit)).fetchall()
        return [EmbedJob(**row) for row in rows]

    def restamp_vectors(self, vectors: Iterable[tuple[int, str, str, bytes]]) -> None:
        """Store each (skill id, digest, model, vector) and point the skill at it."""
        with self._tx() as conn:
            for skill_id, digest, model, blob in vectors:
                insert_vector(conn, digest, model, blob)
                conn.execute("UPDATE skills SET embed_sha256 = ? WHERE id = ?",
                             (digest, skill_id))

    def skill_text(self, skill_id: int) -> EmbedJob | None:
        row = self._conn().execute(
            "SELECT s.id AS skill_id, s.name, s.description, s.tags, f.body, "
            "coalesce(s.embed_sha256, '') AS embed_sha256 "
            "FROM skills s JOIN skills_fts f ON f.rowid = s.id WHERE s.id = ?",
            (skill_id,)).fetchone()
        return EmbedJob(**row) if row else None
