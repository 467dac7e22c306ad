"""The search engine: keyword, semantic and hybrid search over the index, duplicates, gaps.

Keyword search is FTS5 (bm25, field weights) and always available. Semantic search needs
the model: until it is loaded, `auto` and `hybrid` are served by keyword search and the
results say so (`mode`, `semantic`). Every mode applies the same filters and visibility.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..ranking.quality import Quality, decayed_totals, quality
from ..store.index import EmbedJob, Index, SearchFilters, SearchHit, SkillRow
from . import fts, fusion
from .embedder import Embedder, SemanticUnavailable, skill_text
from .fusion import Ranking, final_score, fuse
from .vectors import VectorIndex, to_bytes

log = logging.getLogger(__name__)

MODES = ("auto", "hybrid", "keyword", "semantic")
SORTS = ("relevance", "installs", "rating", "recent")
DUPLICATE_SIMILARITY = 0.9
GAP_SIMILARITY = 0.3
MAX_RESULTS = 500  # how deep paging reaches into one query's ranking
MIN_CANDIDATES = 100
NO_FILTERS = SearchFilters()


@dataclass(frozen=True)
class SearchRequest:
    query: str
    readable: frozenset[str] = frozenset()
    mode: str = "auto"
    filters: SearchFilters = SearchFilters()
    sort: str = "relevance"
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class Result:
    skill: SkillRow
    score: float
    parts: dict[str, Any]
    snippet: str  # with the index's highlight markers; empty for semantic-only results


@dataclass(frozen=True)
class Gap:
    """Whether the registry lacks a skill for a query (best similarity below the bar)."""

    detected: bool
    best_similarity: float
    threshold: float
    best: tuple[str, str] | None  # (namespace, name) of the closest skill


@dataclass(frozen=True)
class SearchResults:
    query: str
    requested: str         # the mode asked for
    mode: str              # the mode that served: keyword, semantic, hybrid or browse
    semantic: str          # the model's state: ready, indexing, loading, failed, off
    results: list[Result]
    more: bool             # another page exists
    gap: Gap | None = None  # None when the semantic side did not run


@dataclass(frozen=True)
class Duplicate:
    skill: SkillRow
    similarity: float


@dataclass
class _Candidate:
    skill: SkillRow
    keyword_rank: int | None = None
    bm25: float | None = None
    semantic_rank: int | None = None
    similarity: float | None = None


class SearchEngine:
    def __init__(self, index: Index, embedder: Embedder,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.index = index
        self.embedder = embedder
        self.vectors = VectorIndex()
        self.clock = clock
        # Fusion settings (see `fusion`); attributes so a benchmark can vary them.
        self.keyword_weight = fusion.KEYWORD_WEIGHT
        self.semantic_weight = fusion.SEMANTIC_WEIGHT
        self.min_similarity = fusion.MIN_SIMILARITY
        self.rrf_k = fusion.RRF_K
        self.fusion = fusion.FUSION
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._sync_lock = threading.Lock()
        self._mark: tuple[int, str, int] | None = None

    # -- lifecycle and indexing ---------------------------------------------------------

    def start(self) -> None:
        """Load stored vectors, start the model loading, embed what has no vector yet."""
        self.load_vectors()
        if self.embedder.state == "off":
            return
        self.embedder.start()
        self._worker = threading.Thread(target=self._run, daemon=True, name="embed-pending")
        self._worker.start()
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def load_vectors(self) -> None:
        with self._sync_lock:
            mark = self.index.vectors_mark()
            self.vectors.replace_all(self.index.skill_vectors())
            self._mark = mark

    def sync(self) -> None:
        """Catch up with what other server processes wrote (one cheap query when nothing
        changed): new vectors are patched in, deletions and rebuilds reload the matrix."""
        mark = self.index.vectors_mark()
        if mark == self._mark:
            return
        with self._sync_lock:
            old = self._mark
            if old is None or mark[0] != old[0]:
                self.vectors.replace_all(self.index.skill_vectors())
            else:
                for skill_id, blob in self.index.vectors_since(old[1], old[2]):
                    self.vectors.upsert(skill_id, blob)
            self._mark = mark

    def reload(self) -> None:
        """After the catalogue was rebuilt (skill ids change): reload, embed what is new."""
        self.load_vectors()
        self._wake.set()

    def wait_indexed(self, timeout: float | None = None) -> bool:
        """Wait for the model and for every skill to have its vector (tests, benchmarks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.embedder.wait(timeout):
            return False
        while self.index.embed_jobs(1):
            if self._worker is None:
                self.embed_pending()
                continue
            if deadline is not None and time.monotonic() > deadline:
                return False
            self._wake.set()
            time.sleep(0.05)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                if self.embedder.wait():
                    self.embed_pending()
            except Exception:  # keep the worker alive; the next publish wakes it again
                log.exception("embedding pending skills failed")

    def embed_pending(self, batch: int = 256) -> int:
        """Embed every skill whose text has no stored vector; returns how many."""
        done = 0
        while not self._stop.is_set():
            jobs = self.index.embed_jobs(batch)
            if not jobs:
                break
            texts = [_job_text(job) for job in jobs]
            vectors = self.embedder.embed(texts)
            model = self.embedder.model_id
            self.index.save_vectors((job.embed_sha256, model, to_bytes(vec))
                                    for job, vec in zip(jobs, vectors, strict=True))
            for job, vec in zip(jobs, vectors, strict=True):
                self.vectors.upsert(job.skill_id, vec)
            done += len(jobs)
        return done

    def embed_now(self, text: str) -> np.ndarray | None:
        """The vector of a skill's text (`skill_text`) now, or None while the model is not
        ready or fails (a publish never fails on the search side; the worker retries)."""
        if not self.embedder.ready:
            return None
        try:
            return self.embedder.embed([text])[0]
        except Exception:
            log.exception("embedding a skill's text at publish failed")
            return None

    def indexed(self, skill_id: int, digest: str | None, vector: np.ndarray | None) -> None:
        """Keep the matrix in step after a version was recorded for `skill_id`."""
        if vector is not None:
            self.vectors.upsert(skill_id, vector)
            return
        stored = self.index.get_vector(digest) if digest else None
        if stored is not None:
            self.vectors.upsert(skill_id, stored)
        else:
            self._wake.set()

    def removed(self, skill_id: int) -> None:
        self.vectors.remove(skill_id)

    # -- queries --------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResults:
        query = request.query.strip()
        if self.embedder.ready:
            self.sync()
        semantic_state = self.embedder.state
        if semantic_state == "ready" and len(self.vectors) == 0 and self.index.embed_jobs(1):
            semantic_state = "indexing"  # loaded, still embedding the catalogue
        if not query:
            return self._browse(request, semantic_state)
        match = fts.build(query)
        semantic_ok = (request.mode != "keyword" and self.embedder.ready
                       and len(self.vectors) > 0)
        if not semantic_ok:
            served = "keyword"
        else:
            served = "semantic" if request.mode == "semantic" else "hybrid"
        depth = min(MAX_RESULTS, max(MIN_CANDIDATES, request.offset + request.limit + 1))

        candidates: dict[int, _Candidate] = {}
        keyword_scores: dict[int, float] = {}  # in rank order
        if served in ("keyword", "hybrid") and match:
            for hit in self._keyword(match, request, depth):
                keyword_scores[hit.skill.id] = hit.score
                candidates[hit.skill.id] = _Candidate(hit.skill, len(keyword_scores),
                                                      hit.score)
        semantic_scores: dict[int, float] = {}
        gap = None
        if served in ("semantic", "hybrid"):
            try:
                qvec = self.embedder.embed_query(query)
            except SemanticUnavailable:
                qvec = None
            if qvec is not None:
                ranked = self._semantic(qvec, request, depth)
                gap = _gap(ranked)
                for rank, (skill, sim) in enumerate(ranked, start=1):
                    cand = candidates.get(skill.id)
                    if cand is None:
                        if sim < self.min_similarity:
                            continue
                        cand = candidates[skill.id] = _Candidate(skill)
                    cand.semantic_rank, cand.similarity = rank, sim
                    semantic_scores[skill.id] = sim
        relevance = fuse([Ranking(self.keyword_weight, keyword_scores),
                          Ranking(self.semantic_weight, semantic_scores, self.min_similarity)],
                         self.fusion, self.rrf_k)
        exact = self._exact(query, request, candidates)
        results = self._rank(candidates, relevance, exact, request.sort)
        page = results[request.offset:request.offset + request.limit]
        if match and keyword_scores:
            found = self.index.snippets(match.any_word, (r.skill.id for r in page
                                                         if r.skill.id in keyword_scores))
            page = [replace(r, snippet=found.get(r.skill.id, "")) for r in page]
        more = len(results) > request.offset + request.limit
        return SearchResults(request.query, request.mode, served, semantic_state, page, more,
                             gap)

    def _keyword(self, match: fts.MatchQuery, request: SearchRequest,
                 depth: int) -> list[SearchHit]:
        """Skills matching every word first, then those matching any (bm25 within each)."""
        def run(expression: str) -> list[SearchHit]:
            return self.index.keyword_search(expression, filters=request.filters,
                                             readable=request.readable, limit=depth)

        hits = run(match.all_words)
        if len(hits) < depth and match.any_word != match.all_words:
            seen = {h.skill.id for h in hits}
            hits += [h for h in run(match.any_word) if h.skill.id not in seen][:depth - len(hits)]
        return hits

    def _semantic(self, qvec: np.ndarray, request: SearchRequest,
                  depth: int) -> list[tuple[SkillRow, float]]:
        """The `depth` nearest readable skills that pass the filters, nearest first."""
        pool = depth * 3
        top = self.vectors.top(qvec, pool)
        rows = self.index.skills_by_id((i for i, _ in top), filters=request.filters,
                                       readable=request.readable)
        ranked = [(rows[i], sim) for i, sim in top if i in rows]
        if len(ranked) < depth and len(self.vectors) > pool:
            # The filters removed too many: rank only the skills that pass them.
            allowed = np.array(sorted(self.index.filtered_ids(filters=request.filters,
                                                              readable=request.readable)),
                               dtype=np.int64)
            top = self.vectors.top(qvec, depth, allowed)
            rows = self.index.skills_by_id((i for i, _ in top), filters=request.filters,
                                           readable=request.readable)
            ranked = [(rows[i], sim) for i, sim in top if i in rows]
        return ranked[:depth]

    def _exact(self, query: str, request: SearchRequest,
               candidates: dict[int, _Candidate]) -> set[int]:
        """Ids of skills whose name (or namespace/name) is the query itself."""
        text = query.strip().lower()
        namespace = None
        if text.count("/") == 1:
            namespace, text = text.split("/")
        name = "-".join(fts.words(text.replace("_", " ")))
        if not name or len(name) > 64:
            return set()
        exact = set()
        for skill in self.index.find_by_name(name, filters=request.filters,
                                             readable=request.readable):
            if namespace is not None and skill.namespace != namespace:
                continue
            exact.add(skill.id)
            candidates.setdefault(skill.id, _Candidate(skill))
        return exact

    def _rank(self, candidates: dict[int, _Candidate], relevance: dict[int, float],
              exact: set[int], sort: str) -> list[Result]:
        now = self.clock()
        qualities = self._qualities([c.skill for c in candidates.values()], now)
        results = []
        for skill_id, cand in candidates.items():
            rel = 1.0 if skill_id in exact else relevance.get(skill_id, 0.0)
            q = qualities[skill_id]
            score = final_score(rel, q.quality)
            parts: dict[str, Any] = {
                "keyword": None if cand.keyword_rank is None else
                {"rank": cand.keyword_rank, "bm25": round(cand.bm25 or 0.0, 6)},
                "semantic": None if cand.semantic_rank is None else
                {"rank": cand.semantic_rank, "similarity": round(cand.similarity or 0.0, 6)},
                "exact_name": skill_id in exact,
                "relevance": round(rel, 6),
                **q.parts(),
                "score": round(score, 6),
            }
            results.append(Result(cand.skill, score, parts, ""))
        key = _SORT_KEYS[sort]
        results.sort(key=lambda r: (not r.parts["exact_name"], *key(r), r.skill.namespace,
                                    r.skill.name))
        return results

    def _qualities(self, skills: list[SkillRow], now: datetime) -> dict[int, Quality]:
        totals = self.index.outcome_totals([(s.namespace, s.name) for s in skills])
        out = {}
        for skill in skills:
            succ, fail = decayed_totals(totals.get((skill.namespace, skill.name), []), now)
            out[skill.id] = quality(succ, fail, skill.downloads)
        return out

    def _browse(self, request: SearchRequest, semantic_state: str) -> SearchResults:
        """No query: the filtered catalogue in the requested order (relevance: newest)."""
        readable, filters = request.readable, request.filters
        if request.sort == "rating":  # computed from outcome totals, so ranked here
            rows = self.index.skills_by_id(
                self.index.filtered_ids(filters=filters, readable=readable),
                filters=filters, readable=readable)
        else:
            order = "installs" if request.sort == "installs" else "recent"
            listed = self.index.browse(filters=filters, readable=readable, order=order,
                                       offset=request.offset, limit=request.limit + 1)
            rows = {row.id: row for row in listed}
        candidates = {i: _Candidate(row) for i, row in rows.items()}
        ranked = self._rank(candidates, dict.fromkeys(rows, 1.0), set(), "rating")
        if request.sort == "rating":
            page = ranked[request.offset:request.offset + request.limit]
            more = len(ranked) > request.offset + request.limit
        else:  # keep the database's order
            position = {skill_id: i for i, skill_id in enumerate(rows)}
            ranked.sort(key=lambda r: position[r.skill.id])
            page, more = ranked[:request.limit], len(ranked) > request.limit
        return SearchResults(request.query, request.mode, "browse", semantic_state, page, more)

    # -- duplicates and gaps ----------------------------------------------------------------

    def duplicates(self, vector: np.ndarray, *, readable: frozenset[str],
                   exclude: tuple[str, str] | None = None,
                   threshold: float = DUPLICATE_SIMILARITY) -> list[Duplicate]:
        """Readable skills at least `threshold` similar to `vector` (not `exclude` itself)."""
        self.sync()
        near = self.vectors.above(vector, threshold)
        rows = self.index.skills_by_id((i for i, _ in near), filters=SearchFilters(),
                                       readable=readable)
        return [Duplicate(rows[i], sim) for i, sim in near
                if i in rows and (rows[i].namespace, rows[i].name) != exclude]

    def similar_to(self, skill_id: int, *, readable: frozenset[str],
                   threshold: float = DUPLICATE_SIMILARITY) -> list[Duplicate]:
        vector = self.vectors.get(skill_id)
        if vector is None:
            return []
        return [d for d in self.duplicates(vector, readable=readable, threshold=threshold)
                if d.skill.id != skill_id]

    def gap(self, query: str, *, readable: frozenset[str],
            filters: SearchFilters = NO_FILTERS) -> Gap | None:
        """None while the model is not ready (the answer would be a guess)."""
        if not query.strip() or not self.embedder.ready:
            return None
        request = SearchRequest(query, readable, "semantic", filters)
        return _gap(self._semantic(self.embedder.embed_query(query.strip()), request, 1))


_SORT_KEYS: dict[str, Callable[[Result], tuple[Any, ...]]] = {
    "relevance": lambda r: (-r.score,),
    "installs": lambda r: (-r.skill.downloads, -r.score),
    "rating": lambda r: (-r.parts["wilson"], -r.parts["quality"], -r.score),
    "recent": lambda r: (_neg_time(r.skill.updated_at), -r.score),
}


def _neg_time(stamp: str) -> float:
    try:
        return -datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return math.inf


def _gap(ranked: list[tuple[SkillRow, float]]) -> Gap:
    if not ranked:
        return Gap(True, 0.0, GAP_SIMILARITY, None)
    skill, best = ranked[0]
    return Gap(best < GAP_SIMILARITY, round(best, 6), GAP_SIMILARITY,
               (skill.namespace, skill.name))


def _job_text(job: EmbedJob) -> str:
    return skill_text(job.name, job.description, job.tags, job.body)
