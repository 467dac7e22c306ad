"""Search storage in PostgreSQL: the tsvector keyword index and the stored embeddings.

Keyword queries are built from `KeywordQuery.words` only, each word a parameter of its own
tsquery (`phraseto_tsquery`, or `to_tsquery` of the quoted word with `:*` when it is the
prefix still being typed), combined with `&&` (every word) or `||` (any word) in SQL: no
user text ever reaches the tsquery parser unquoted. A word that yields no lexeme (only
punctuation to the parser, or longer than its 2047 characters) is an empty tsquery, which
`&&` and `||` leave out; a query of nothing else matches nothing.

Ranking, BM25's shape in ts_rank's terms (higher is better):

    score(d) = sum over the query's words w of  idf(w) * ts_rank(RANK_WEIGHTS, d, w)
    idf(w)   = ln((N - n(w) + 0.5) / (n(w) + 0.5) + 1)      (BM25's; N skills, n(w) with w)

ts_rank of one word saturates with its occurrences and weighs each by its field.
RANK_WEIGHTS are FTS5's bm25 weights (name 10, description 5, tags 3, body 1) put through
BM25's saturation w(k1 + 1) / (w + k1), as bm25 applies them to one match, and scaled to the
name's: body 0.51, tags 0.80, description 0.90, name 1.0 (not the raw 0.1-1.0, which
ranks a word in a name ten times a word in a body where bm25 ranks it twice). No length
normalisation: on BFCL it only lowered NDCG. Keyword-only NDCG@10 on BFCL (1,274 skills,
2,311 queries): 0.775 here, 0.772 for SQLite's bm25; 0.702 with raw weights and no idf.

`n(w)` comes from a snapshot of the index's vocabulary (`ts_stat`), recounted by a worker
thread when the catalogue changed (`start`); until the first count every idf is 1. Words in
COMMON_SHARE of the skills or more are left out of the any-word tier while a rarer word
that some skill has remains (as SQLite's `fts.build` does), from MIN_PRUNE_DOCS skills on.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from ...domain import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    EmbedJob,
    KeywordQuery,
    SearchFilters,
    SearchHit,
    SkillRow,
)
from ..columns import _REPORT_JOIN, _SKILL_SELECT
from ..recount import Recounted
from .db import Database, Table, nul_misses
from .migrations import PUNCTUATION, spaced
from .sql import _filtered, insert_vectors

if TYPE_CHECKING:
    from .catalogue import Catalogue


CONFIG = "skills_hub"  # the text search configuration of migration m001
BM25_WEIGHTS = (1.0, 3.0, 5.0, 10.0)  # FTS5's: body, tags, description, name (D, C, B, A)
BM25_K1 = 1.2
_SATURATED = [w * (BM25_K1 + 1) / (w + BM25_K1) for w in BM25_WEIGHTS]
RANK_WEIGHTS = "{" + ", ".join(f"{w / _SATURATED[-1]:.3f}" for w in _SATURATED) + "}"
COMMON_SHARE = 0.2    # a word in at least this share of the skills is very common
MIN_PRUNE_DOCS = 1_000  # below this many skills every any-word query is cheap
LEXEMES_KEPT = 65_536
HEADLINE = (f"StartSel={HIGHLIGHT_START}, StopSel={HIGHLIGHT_END}, MaxWords=16, MinWords=6")
ELLIPSIS = "…"

_WORD = re.compile(r"\w+")
_SPACED = str.maketrans(PUNCTUATION, " " * len(PUNCTUATION))  # `spaced`, in Python
_SPACED_FIELD = spaced("f.txt").replace("%", "%%")  # in a statement with parameters


def word_queries(query: KeywordQuery) -> tuple[list[str], list[str]]:
    """(SQL tsquery expressions, their parameters): one per word of `query`.

    Words are `\\w+` already (`search.query.parse`); anything else a caller passes is cut
    to its `\\w+` runs, so the quoted prefix form never holds a quote or a backslash."""
    words = [piece for word in query.words for piece in _WORD.findall(word)]
    exprs = [f"phraseto_tsquery('{CONFIG}', %s)"] * len(words)
    if words and query.prefix:
        exprs[-1] = f"to_tsquery('{CONFIG}', quote_literal(%s) || ':*')"
    return exprs, words


class TermStats:
    """How many skills each lexeme is in: a snapshot of the index's vocabulary."""

    def __init__(self, total: int, counts: Iterable[tuple[str, int]]) -> None:
        pairs = sorted(counts)
        self.total = total
        self._count = dict(pairs)
        self._terms = [term for term, _ in pairs]
        self._sums = [0, *accumulate(n for _, n in pairs)]

    def docs(self, lexemes: Sequence[str], prefix: bool) -> int:
        """How many skills have every lexeme of a word (at most: the rarest's count), the
        last one as a prefix when `prefix`; 0 for a word without lexemes."""
        if not lexemes:
            return 0
        counts = [self._count.get(t, 0) for t in lexemes[:-1]]
        last = lexemes[-1]
        if prefix:
            lo = bisect.bisect_left(self._terms, last)
            hi = bisect.bisect_left(self._terms, last + "\U0010ffff")
            counts.append(min(self.total, self._sums[hi] - self._sums[lo]))
        else:
            counts.append(self._count.get(last, 0))
        return min(counts)

    def idf(self, docs: int) -> float:
        return math.log((self.total - docs + 0.5) / (docs + 0.5) + 1)


class KeywordIndex(Table):
    """Each skill's latest name, description, tags and body as a weighted tsvector
    (`skill_text.document`, GIN-indexed), ranked as the module's docstring says."""

    def __init__(self, db: Database, catalogue: Catalogue) -> None:
        super().__init__(db)
        self.catalogue = catalogue
        # Term counts (idf), counted again by a worker when the catalogue changed.
        self._terms = Recounted(self._count_terms, catalogue.catalogue_mark,
                                name="tsvector-terms")
        self._lexemes: dict[str, tuple[str, ...]] = {}

    @nul_misses(list)
    def search(self, query: KeywordQuery, *, filters: SearchFilters, readable: frozenset[str],
               limit: int) -> list[SearchHit]:
        """Skills matching every word first, then those matching any word but the very
        common ones, best first within each."""
        exprs, words = word_queries(query)
        if not exprs or limit <= 0:
            return []
        weights, rarer = self._weights(words, query.prefix)
        every = list(range(len(words)))
        hits = self._ranked(exprs, words, weights, every, None, filters=filters,
                            readable=readable, limit=limit)
        if len(hits) < limit and len(words) > 1:
            hits += self._ranked(exprs, words, weights, rarer, every, filters=filters,
                                 readable=readable, limit=limit - len(hits))
        return hits

    def snippets(self, query: KeywordQuery, ids: Iterable[int]) -> dict[int, str]:
        """skill id -> an excerpt of the field matching the most words (name, description,
        tags, body: the first on a tie) with the matches between the HIGHLIGHT markers,
        for the ids among `ids` that match any word."""
        exprs, words = word_queries(query)
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not exprs or not wanted:
            return {}
        any_word = " || ".join(exprs)
        rows = f"ARRAY[{', '.join(exprs)}]"
        with self._read() as conn:
            found = conn.execute(
                f"WITH w AS (SELECT unnest({rows}) AS q), a AS (SELECT {any_word} AS q) "
                f"SELECT t.skill_id, f.txt, ts_headline('{CONFIG}', {_SPACED_FIELD}, a.q, "
                "%s) FROM a, skill_text t CROSS JOIN LATERAL (SELECT x.txt FROM (VALUES "
                "(1, 'a', t.name), (2, 'b', t.description), (3, 'c', t.tags), "
                "(4, 'd', t.body)) AS x(ord, weight, txt) ORDER BY (SELECT count(*) FROM w "
                "WHERE ts_filter(t.document, ARRAY[x.weight]::\"char\"[]) @@ w.q) DESC, "
                "x.ord LIMIT 1) AS f WHERE t.skill_id = ANY(%s) AND t.document @@ a.q",
                (*words, *words, HEADLINE, wanted), prepare=False).fetchall()
        return {int(r[0]): _restored(str(r[1]), str(r[2])) for r in found}

    def start(self) -> None:
        """Count the terms in a worker thread (searches rank without idf meanwhile)."""
        self._terms.start()

    def close(self) -> None:
        self._terms.close()

    # -- ranking ----------------------------------------------------------------------------

    def _weights(self, words: list[str], prefix: bool) -> tuple[list[float], list[int]]:
        """(idf per word, the words of the any-word tier): every idf 1 and every word until
        the terms are counted."""
        stats = self._terms.current()
        every = list(range(len(words)))
        if stats is None:
            return [1.0] * len(words), every
        lexemes = self._word_lexemes(words)
        docs = [stats.docs(lexemes[w], prefix and i == len(words) - 1)
                for i, w in enumerate(words)]
        weights = [stats.idf(n) for n in docs]
        if len(words) < 2 or stats.total < MIN_PRUNE_DOCS:
            return weights, every
        rarer = [i for i in every if docs[i] < COMMON_SHARE * stats.total]
        if len(rarer) == len(words) or not any(docs[i] for i in rarer):
            return weights, every  # nothing common, or nothing rarer that any skill has
        return weights, rarer

    def _ranked(self, exprs: list[str], words: list[str], weights: list[float],
                use: list[int], but: list[int] | None, *, filters: SearchFilters,
                readable: frozenset[str], limit: int) -> list[SearchHit]:
        """The readable skills passing `filters` that match every word of `use` (`but` is
        None) or any of them but not every word of `but`, best first."""
        where, params = _filtered(filters, readable)
        columns = ", ".join(f"{e} AS q{i}" for i, e in enumerate(exprs))
        score = " + ".join(f"ts_rank('{RANK_WEIGHTS}', t.document, q.q{i}) * %s" for i in use)
        match = (" && " if but is None else " || ").join(f"q.q{i}" for i in use)
        unless = "" if but is None else (
            " AND NOT (t.document @@ (" + " && ".join(f"q.q{i}" for i in but) + "))")
        with self._read() as conn:
            rows = conn.execute(
                f"WITH q AS (SELECT {columns}) "
                f"SELECT {_SKILL_SELECT}, {score} AS score "
                "FROM q, skill_text t JOIN skills s ON s.id = t.skill_id "
                f"{_REPORT_JOIN} JOIN namespaces n ON n.name = s.namespace "
                f"WHERE t.document @@ ({match}){unless} AND {where} "
                "ORDER BY score DESC, s.id LIMIT %s",
                (*words, *(weights[i] for i in use), *params, limit),
                prepare=False).fetchall()  # a generic plan, not folding the words, is slower
        return [SearchHit(SkillRow(*row[:-1]), float(row[-1]), "") for row in rows]

    def _word_lexemes(self, words: list[str]) -> dict[str, tuple[str, ...]]:
        """word -> its lexemes in the index's configuration, in order (kept per word)."""
        missing = [w for w in words if w not in self._lexemes]
        if missing:
            with self._read() as conn:
                rows = conn.execute(
                    "SELECT w, array(SELECT u.lexeme FROM unnest(to_tsvector("
                    f"'{CONFIG}', w)) AS u ORDER BY u.positions[1]) "
                    "FROM unnest(%s::text[]) AS w", (missing,)).fetchall()
            if len(self._lexemes) > LEXEMES_KEPT:
                self._lexemes = {}
            self._lexemes.update((str(r[0]), tuple(r[1])) for r in rows)
        return {w: self._lexemes.get(w, ()) for w in words}

    # -- term counts ----------------------------------------------------------------------

    @property
    def terms(self) -> TermStats | None:
        return self._terms.value

    def refresh_terms(self) -> None:
        """Count how many skills each lexeme is in (`ts_stat` over every document: run it
        off the request path)."""
        self._terms.refresh()

    def _count_terms(self) -> TermStats:
        with self.db.transaction() as conn:  # one snapshot for the total and the counts
            row = conn.execute("SELECT count(*) FROM skill_text").fetchone()
            counts = conn.execute(
                "SELECT word, ndoc FROM ts_stat('SELECT document FROM skill_text')"
            ).fetchall()
        return TermStats(int(row[0]) if row else 0, ((str(w), int(n)) for w, n in counts))


def _restored(text: str, headline: str) -> str:
    """The excerpt of `text` that `headline` (made from the text with its punctuation as
    spaces, as the index reads it) shows, with its markers, and an ellipsis where it cuts
    `text` short (as FTS5's snippet has)."""
    plain = headline.replace(HIGHLIGHT_START, "").replace(HIGHLIGHT_END, "")
    start = text.translate(_SPACED).find(plain)
    if start < 0 or not plain.strip():
        return headline.strip()
    out, at = [], start
    for char in headline:  # the same offsets: the punctuation was replaced one for one
        if char in (HIGHLIGHT_START, HIGHLIGHT_END):
            out.append(char)
        else:
            out.append(text[at])
            at += 1
    head = ELLIPSIS if text[:start].strip() else ""
    tail = ELLIPSIS if text[at:].strip() else ""
    return head + "".join(out).strip() + tail


class Vectors(Table):
    """Embeddings by the digest of the text embedded; what has none yet."""

    def get_vector(self, text_sha256: str) -> bytes | None:
        with self._read() as conn:
            row = conn.execute("SELECT vector FROM embeddings WHERE text_sha256 = %s",
                               (text_sha256,)).fetchone()
        return bytes(row[0]) if row else None

    def save_vectors(self, vectors: Iterable[tuple[str, str, bytes]]) -> None:
        """Store (text digest, model, float32 bytes) triples; existing digests are kept."""
        batch = list(vectors)
        if not batch:
            return
        with self._tx() as conn:
            insert_vectors(self.db, conn, batch)

    def skill_vectors(self) -> Iterator[tuple[int, bytes]]:
        """(skill id, vector bytes) of every skill whose current text has been embedded."""
        with self._read() as conn:
            rows = conn.execute("SELECT s.id, e.vector FROM skills s "
                                "JOIN embeddings e ON e.text_sha256 = s.embed_sha256").fetchall()
        for skill_id, blob in rows:
            yield int(skill_id), bytes(blob)

    def vectors_mark(self) -> tuple[int, str, int]:
        """(catalogue epoch, newest skill update, newest vector): changes when any node
        changes what the vector matrix should hold. Read again only after a `vectors`
        notification (`Database.mark`)."""
        return self.db.mark("vectors", self._vectors_mark)

    def _vectors_mark(self) -> tuple[int, str, int]:
        with self._read() as conn:
            row = conn.execute(
                "SELECT (SELECT epoch FROM catalogue_epoch), "
                "(SELECT coalesce(max(updated_at), '') FROM skills), "
                "(SELECT coalesce(max(id), 0) FROM embeddings)").fetchone()
        assert row is not None
        return int(row[0]), str(row[1]), int(row[2])

    def vectors_since(self, updated_at: str, vector_rowid: int) -> list[tuple[int, bytes]]:
        """(skill id, vector) of skills updated at or after `updated_at`, or whose vector
        was stored after `vector_rowid` (an `embeddings.id`)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.id, e.vector FROM skills s "
                "JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
                "WHERE s.updated_at >= %s OR e.id > %s", (updated_at, vector_rowid)).fetchall()
        return [(int(r[0]), bytes(r[1])) for r in rows]

    def embed_jobs(self, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current text has no stored vector (new, or indexed before a model)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.id, s.name, s.description, s.tags, t.body, s.embed_sha256 "
                "FROM skills s JOIN skill_text t ON t.skill_id = s.id "
                "LEFT JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
                "WHERE s.embed_sha256 IS NOT NULL AND e.text_sha256 IS NULL "
                "ORDER BY s.id LIMIT %s", (limit,)).fetchall()
        return [_job(row) for row in rows]

    def stale_vectors(self, model: str, limit: int = 256) -> list[EmbedJob]:
        """Skills whose current vector was made by another `model`, by id."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT s.id, s.name, s.description, s.tags, t.body, s.embed_sha256 "
                "FROM skills s JOIN skill_text t ON t.skill_id = s.id "
                "JOIN embeddings e ON e.text_sha256 = s.embed_sha256 "
                "WHERE e.model <> %s ORDER BY s.id LIMIT %s", (model, limit)).fetchall()
        return [_job(row) for row in rows]

    def restamp_vectors(self, vectors: Iterable[tuple[int, str, str, bytes]]) -> None:
        """Store each (skill id, digest, model, vector) and point the skill at it."""
        batch = list(vectors)
        if not batch:
            return
        with self._tx() as conn:
            insert_vectors(self.db, conn, [(digest, model, blob)
                                           for _, digest, model, blob in batch])
            for skill_id, digest, _, _ in batch:
                conn.execute("UPDATE skills SET embed_sha256 = %s WHERE id = %s",
                             (digest, skill_id))

    def skill_text(self, skill_id: int) -> EmbedJob | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT s.id, s.name, s.description, s.tags, t.body, "
                "coalesce(s.embed_sha256, '') FROM skills s "
                "JOIN skill_text t ON t.skill_id = s.id WHERE s.id = %s", (skill_id,)).fetchone()
        return _job(row) if row else None


def _job(row: tuple[Any, ...]) -> EmbedJob:
    skill_id, name, description, tags, body, digest = row
    return EmbedJob(int(skill_id), name, description, tags, body, digest)
