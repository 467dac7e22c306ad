"""The search engine: keyword, semantic and hybrid search over the index, duplicates, gaps.

Keyword search is FTS5 (bm25, field weights) and always available. Semantic search needs
the model: until it is loaded, `auto` and `hybrid` are served by keyword search and the
results say so (`mode`, `semantic`). Every mode applies the same filters and visibility.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..domain import EmbedJob, SearchFilters, SkillRow
from ..learning import tasks
from ..ranking import explore
from ..ranking.quality import Quality, decayed_totals, quality
from ..store.interfaces import Storage
from . import fusion
from .embedder import Embedder, SemanticUnavailable, skill_text
from .facets import Facets, count_facets
from .fusion import Ranking, final_score, fuse
from .query import parse, words
from .vectors import VectorIndex, to_bytes

log = logging.getLogger(__name__)

MODES = ("auto", "hybrid", "keyword", "semantic")
SORTS = ("relevance", "installs", "rating", "recent")
DUPLICATE_SIMILARITY = 0.9
GAP_SIMILARITY = 0.3
MAX_RESULTS = 500  # how deep paging reaches into one query's ranking
FACET_DEPTH = 200  # with `facets`: the results ranked, counted and reachable by paging
MIN_CANDIDATES = 100
TASK_CACHE = 50_000  # reported tasks' vectors kept in memory (1.5 KB each)
STATS_CACHE = 20_000  # skills whose reported tasks (vectors and counts) are kept in memory
TASKS_RECHECK_S = 30.0  # a skill's tasks without a vector yet are looked for again after
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
    # Rank FACET_DEPTH candidates, count the total and the facets over them, and cut
    # every page from that one ranking (stable paging, whatever the offset).
    facets: bool = False
    # With sort=relevance, a page seed (`ranking.explore.page_seed`): a share of pages rank
    # by posterior samples so under-tested skills get a fair chance. None: no exploration.
    explore_seed: int | None = None


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
    # The query's embedding, kept for the demand list (services.demands), never encoded
    # twice; not part of the answer.
    vector: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SearchResults:
    query: str
    requested: str         # the mode asked for
    mode: str              # the mode that served: keyword, semantic, hybrid or browse
    semantic: str          # the model's state: ready, indexing, loading, failed, off
    results: list[Result]
    more: bool             # another page exists
    gap: Gap | None = None  # None when the semantic side did not run
    # With `facets` asked for: how many results were ranked (paging reaches them all),
    # whether the search was cut there (more match), and their facets.
    total: int | None = None
    more_than_total: bool = False
    facets: Facets | None = None


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


@dataclass(frozen=True)
class _Scored:
    """A candidate with its score; made into a `Result` (with its parts) only when shown."""

    candidate: _Candidate
    relevance: float
    quality: Quality
    score: float
    exact: bool
    explore: dict[str, Any] | None = None  # on an explored page (score_parts)

    @property
    def skill(self) -> SkillRow:
        return self.candidate.skill


class SearchEngine:
    def __init__(self, store: Storage, embedder: Embedder,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
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
        self._restamped = False  # every stale vector was made again (reembed_stale)
        self._mark: tuple[int, str, int] | None = None
        self._slots = threading.BoundedSemaphore(max(2, os.cpu_count() or 1))
        self._task_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._stats_cache: OrderedDict[tuple[str, str], tuple[
            tuple[Any, ...], float, tasks.SkillTasks]] = OrderedDict()
        self._task_lock = threading.Lock()

    # -- lifecycle and indexing ---------------------------------------------------------

    def start(self) -> None:
        """Load stored vectors, count the terms, start the model loading, embed what has
        no vector yet."""
        self.load_vectors()
        self.store.keyword.start()
        if self.embedder.state == "off":
            return
        self.embedder.start()
        self._worker = threading.Thread(target=self._run, daemon=True, name="embed-pending")
        self._worker.start()
        self._wake.set()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self.store.keyword.close()
        if self._worker is not None:
            self._worker.join(timeout=30)

    def load_vectors(self) -> None:
        with self._sync_lock:
            mark = self.store.vectors.vectors_mark()
            self.vectors.replace_all(self.store.vectors.skill_vectors())
            self._mark = mark

    def sync(self) -> None:
        """Catch up with what other server processes wrote (one cheap query when nothing
        changed): new vectors are patched in, deletions and rebuilds reload the matrix."""
        mark = self.store.vectors.vectors_mark()
        if mark == self._mark:
            return
        with self._sync_lock:
            old = self._mark
            if old is None or mark[0] != old[0]:
                self.vectors.replace_all(self.store.vectors.skill_vectors())
            else:
                for skill_id, blob in self.store.vectors.vectors_since(old[1], old[2]):
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
        while (self.store.vectors.embed_jobs(1)
               or self.store.vectors.stale_vectors(self.embedder.skill_model_id, 1)):
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
        """Embed every skill whose text has no stored vector, then make again every vector
        an older recipe or model made (`reembed_stale`); returns how many."""
        done = 0
        while not self._stop.is_set():
            jobs = self.store.vectors.embed_jobs(batch)
            if not jobs:
                break
            vectors = self.embedder.embed_skills([_job_text(job) for job in jobs])
            model = self.embedder.skill_model_id
            self.store.vectors.save_vectors((job.embed_sha256, model, to_bytes(vec))
                                            for job, vec in zip(jobs, vectors, strict=True))
            for job, vec in zip(jobs, vectors, strict=True):
                self.vectors.upsert(job.skill_id, vec)
            done += len(jobs)
        return done + self.reembed_stale(batch)

    def reembed_stale(self, batch: int = 256) -> int:
        """Make again the vectors of skills whose vector another model or text recipe made
        (`embedder.skill_model_id` changed: an upgrade). Each batch stores the new vectors
        and points the skills at them in one transaction, so search keeps the old vector
        until the new one is there; returns how many."""
        done = 0
        model = self.embedder.skill_model_id
        while not self._stop.is_set() and not self._restamped:
            jobs = self.store.vectors.stale_vectors(model, batch)
            if not jobs:  # new vectors carry the current model: no need to look again
                self._restamped = True
                break
            texts = [_job_text(job) for job in jobs]
            vectors = self.embedder.embed_skills(texts)
            self.store.vectors.restamp_vectors(
                (job.skill_id, self.embedder.text_digest(text), model, to_bytes(vec))
                for job, text, vec in zip(jobs, texts, vectors, strict=True))
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
            return self.embedder.embed_skills([text])[0]
        except Exception:
            log.exception("embedding a skill's text at publish failed")
            return None

    def indexed(self, skill_id: int, digest: str | None, vector: np.ndarray | None) -> None:
        """Keep the matrix in step after a version was recorded for `skill_id`."""
        if vector is not None:
            self.vectors.upsert(skill_id, vector)
            return
        stored = self.store.vectors.get_vector(digest) if digest else None
        if stored is not None:
            self.vectors.upsert(skill_id, stored)
        else:
            self._wake.set()

    def removed(self, skill_id: int) -> None:
        self.vectors.remove(skill_id)

    # -- queries --------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResults:
        # As many searches at once as there are cores: more threads only fight over the GIL
        # (keyword with 8 clients on 2 cores: 180 req/s with 40 threads searching, 231 with
        # 2; bench/README.md). The others wait here, asleep, instead of thrashing. The query's
        # embedding is made first, outside the slots, so concurrent queries still share an
        # encode (QueryBatcher).
        query, qvec = request.query.strip(), None
        if query and request.mode != "keyword" and self.embedder.ready:
            try:
                qvec = self.embedder.embed_query(query)
            except SemanticUnavailable:
                pass  # the search serves keyword results and says why
        with self._slots:
            return self._search(request, qvec)

    def _search(self, request: SearchRequest, qvec: np.ndarray | None) -> SearchResults:
        query = request.query.strip()
        if self.embedder.ready:
            self.sync()
        semantic_state = self.embedder.state
        if (semantic_state == "ready" and len(self.vectors) == 0
                and self.store.vectors.embed_jobs(1)):
            semantic_state = "indexing"  # loaded, still embedding the catalogue
        if not query:
            return self._browse(request, semantic_state)
        match = parse(query)
        semantic_ok = (request.mode != "keyword" and self.embedder.ready
                       and len(self.vectors) > 0)
        if not semantic_ok:
            served = "keyword"
        else:
            served = "semantic" if request.mode == "semantic" else "hybrid"
        depth = FACET_DEPTH if request.facets else \
            min(MAX_RESULTS, max(MIN_CANDIDATES, request.offset + request.limit + 1))

        candidates: dict[int, _Candidate] = {}
        keyword_scores: dict[int, float] = {}  # in rank order
        cut = False  # a list stopped at `depth`: more results exist than were ranked
        if served in ("keyword", "hybrid") and match:
            hits = self.store.keyword.search(match, filters=request.filters,
                                             readable=request.readable, limit=depth)
            cut = len(hits) >= depth
            for hit in hits:
                keyword_scores[hit.skill.id] = hit.score
                candidates[hit.skill.id] = _Candidate(hit.skill, len(keyword_scores),
                                                      hit.score)
        semantic_scores: dict[int, float] = {}
        gap = None
        if served in ("semantic", "hybrid"):
            if qvec is None:  # the model became ready after `search` looked
                try:
                    qvec = self.embedder.embed_query(query)
                except SemanticUnavailable:
                    pass
            if qvec is not None:
                nearest = self._semantic(qvec, request, depth)
                gap = _gap(nearest, qvec)
                cut = cut or (len(nearest) >= depth and nearest[-1][1] >= self.min_similarity)
                for rank, (skill, sim) in enumerate(nearest, start=1):
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
        ranked = self._rank(candidates, relevance, exact, request.sort,
                            request.explore_seed, qvec)
        page = [_result(s) for s in ranked[request.offset:request.offset + request.limit]]
        if match and keyword_scores:
            found = self.store.keyword.snippets(match, (r.skill.id for r in page
                                                                 if r.skill.id in keyword_scores))
            page = [replace(r, snippet=found.get(r.skill.id, "")) for r in page]
        more = len(ranked) > request.offset + request.limit
        return SearchResults(request.query, request.mode, served, semantic_state, page, more,
                             gap, *_counted(request, [s.skill for s in ranked], cut))

    def _semantic(self, qvec: np.ndarray, request: SearchRequest,
                  depth: int) -> list[tuple[SkillRow, float]]:
        """The `depth` nearest readable skills that pass the filters, nearest first."""
        pool = depth * 3
        top = self.vectors.top(qvec, pool)
        rows = self.store.catalogue.skills_by_id((i for i, _ in top), filters=request.filters,
                                                 readable=request.readable)
        ranked = [(rows[i], sim) for i, sim in top if i in rows]
        if len(ranked) < depth and len(self.vectors) > pool:
            # The filters removed too many: rank only the skills that pass them.
            allowed = np.array(sorted(self.store.catalogue.filtered_ids(filters=request.filters,
                                                                        readable=request.readable)),
                               dtype=np.int64)
            top = self.vectors.top(qvec, depth, allowed)
            rows = self.store.catalogue.skills_by_id((i for i, _ in top), filters=request.filters,
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
        name = "-".join(words(text.replace("_", " ")))
        if not name or len(name) > 64:
            return set()
        exact = set()
        for skill in self.store.catalogue.find_by_name(name, filters=request.filters,
                                                       readable=request.readable):
            if namespace is not None and skill.namespace != namespace:
                continue
            exact.add(skill.id)
            candidates.setdefault(skill.id, _Candidate(skill))
        return exact

    def _rank(self, candidates: dict[int, _Candidate], relevance: dict[int, float],
              exact: set[int], sort: str, seed: int | None = None,
              qvec: np.ndarray | None = None) -> list[_Scored]:
        now = self.clock()
        qualities = self._qualities([c.skill for c in candidates.values()], now, qvec)
        scored = []
        for skill_id, cand in candidates.items():
            rel = 1.0 if skill_id in exact else relevance.get(skill_id, 0.0)
            q = qualities[skill_id]
            scored.append(_Scored(cand, rel, q, final_score(rel, q.quality), skill_id in exact))
        key = _SORT_KEYS[sort]
        scored.sort(key=lambda s: (not s.exact, *key(s), s.skill.namespace, s.skill.name))
        if sort == "relevance" and seed is not None and explore.explores(seed):
            return _explored(scored, explore.explored(seed, qualities))
        return scored

    def _qualities(self, skills: list[SkillRow], now: datetime,
                   qvec: np.ndarray | None = None) -> dict[int, Quality]:
        """Each skill's quality; with a query vector, blended with the evidence of the
        reported tasks near the query (`learning.tasks`)."""
        totals = self.store.outcomes.outcome_totals([(s.namespace, s.name) for s in skills])
        near = {} if qvec is None else self._near(skills, qvec, now, totals)
        out = {}
        for skill in skills:
            succ, fail = decayed_totals(totals.get((skill.namespace, skill.name), []), now)
            out[skill.id] = quality(succ, fail, skill.downloads).with_near(near.get(skill.id))
        return out

    def _near(self, skills: list[SkillRow], qvec: np.ndarray, now: datetime,
              totals: dict[tuple[str, str], list[tuple[float, float, str]]]
              ) -> dict[int, tasks.Near]:
        """skill id -> the evidence of its reported tasks near the query, where it counts."""
        found = self._task_stats([(s.namespace, s.name) for s in skills], totals)
        page = [(s.id, found[(s.namespace, s.name)]) for s in skills
                if (s.namespace, s.name) in found]
        if not page:
            return {}
        near = tasks.near_each(qvec, [t for _, t in page], now.timestamp())
        return {i: n for (i, _), n in zip(page, near, strict=True) if n is not None}

    def _task_stats(self, keys: list[tuple[str, str]],
                    totals: dict[tuple[str, str], list[tuple[float, float, str]]]
                    ) -> dict[tuple[str, str], tasks.SkillTasks]:
        """The skills' reported tasks with their vectors and counts, from a cache checked
        against their outcome totals (read for the search anyway): a counted report changes
        a version's counts and its time, so a skill whose totals are as cached has the same
        per-task counts, whether this node or another wrote them. A skill without counted
        reports has nothing to read; one whose tasks were not all embedded yet (a post's
        tasks are embedded just after its reports are stored) is read again after
        TASKS_RECHECK_S."""
        out: dict[tuple[str, str], tasks.SkillTasks] = {}
        stale: list[tuple[str, str]] = []
        clock = time.monotonic()
        with self._task_lock:
            for key in keys:
                mark = tuple(totals.get(key, ()))
                if not mark:
                    continue
                hit = self._stats_cache.get(key)
                if hit is not None and hit[0] == mark and (
                        hit[2].complete or clock - hit[1] < TASKS_RECHECK_S):
                    self._stats_cache.move_to_end(key)
                    if len(hit[2]):
                        out[key] = hit[2]
                else:
                    stale.append(key)
        if not stale:
            return out
        found = self.store.outcomes.task_stats(stale)
        vectors = self._task_vectors({t.task_key for rows in found.values() for t in rows})
        with self._task_lock:
            for key in stale:
                skill = tasks.SkillTasks.of(found.get(key, []), vectors)
                self._stats_cache[key] = (tuple(totals[key]), clock, skill)
                if len(skill):
                    out[key] = skill
            while len(self._stats_cache) > STATS_CACHE:
                self._stats_cache.popitem(last=False)
        return out

    def _task_vectors(self, keys: set[str]) -> dict[str, np.ndarray]:
        """Reported tasks' vectors, from a bounded cache (a task's vector never changes)."""
        out: dict[str, np.ndarray] = {}
        with self._task_lock:
            for key in keys:
                hit = self._task_cache.get(key)
                if hit is not None:
                    self._task_cache.move_to_end(key)
                    out[key] = hit
        missing = keys - out.keys()
        if missing:
            found = self.store.outcomes.task_vectors(self.embedder.model_id, missing)
            with self._task_lock:
                for key, row in found.items():
                    out[key] = self._task_cache[key] = np.frombuffer(row.vector,
                                                                     dtype=np.float32)
                while len(self._task_cache) > TASK_CACHE:
                    self._task_cache.popitem(last=False)
        return out

    def _browse(self, request: SearchRequest, semantic_state: str) -> SearchResults:
        """No query: the filtered catalogue in the requested order (relevance: newest).

        With `facets`, the catalogue is cut at FACET_DEPTH rows in that order (one more is
        read to tell whether it was cut): paging reaches them, the facets count them."""
        readable, filters = request.readable, request.filters
        end = request.offset + request.limit
        if request.sort == "rating":  # computed from outcome totals, so ranked here
            ranked = self._by_rating(filters, readable,
                                     FACET_DEPTH + 1 if request.facets else end + 1)
            cut = request.facets and len(ranked) > FACET_DEPTH
            ranked = ranked[:FACET_DEPTH] if request.facets else ranked
            rows = [s.skill for s in ranked] if request.facets else []
            shown, more = ranked[request.offset:end], len(ranked) > end
        else:  # the database's order; only the rows shown are scored
            order = "installs" if request.sort == "installs" else "recent"
            if request.facets:
                rows = self.store.catalogue.browse(filters=filters, readable=readable, order=order,
                                                   offset=0, limit=FACET_DEPTH + 1)
                cut, rows = len(rows) > FACET_DEPTH, rows[:FACET_DEPTH]
                window = rows[request.offset:end + 1]
            else:
                cut, rows = False, []
                window = self.store.catalogue.browse(filters=filters, readable=readable,
                                                     order=order,
                                           offset=request.offset, limit=request.limit + 1)
            more = len(window) > request.limit
            window = window[:request.limit]
            position = {row.id: i for i, row in enumerate(window)}
            scored = self._rank({r.id: _Candidate(r) for r in window},
                                dict.fromkeys(position, 1.0), set(), "rating")
            shown = sorted(scored, key=lambda s: position[s.skill.id])
        return SearchResults(request.query, request.mode, "browse", semantic_state,
                             [_result(s) for s in shown], more, None,
                             *_counted(request, rows, cut))

    def _by_rating(self, filters: SearchFilters, readable: frozenset[str],
                   count: int) -> list[_Scored]:
        """The first `count` readable skills passing the filters in the rating order,
        without ranking the whole catalogue.

        A skill without outcomes has the new-skill floor for evidence, so its quality, and
        so its place, depend on its installs alone (capped at INSTALLS_SATURATE), then its
        namespace and name: the index reads them in that order (`unrated_skills`), and
        only the first `count` can be shown. The skills with outcomes are ranked in full
        (decayed to now), and both are sorted together: the same order as ranking every
        skill (`tests/test_search.py` compares the two)."""
        rows = self.store.catalogue.rated_skills(filters=filters, readable=readable)
        rows += self.store.catalogue.unrated_skills(filters=filters, readable=readable, limit=count)
        ranked = self._rank({r.id: _Candidate(r) for r in rows},
                            {r.id: 1.0 for r in rows}, set(), "rating")
        return ranked[:count]

    # -- duplicates and gaps ----------------------------------------------------------------

    def duplicates(self, vector: np.ndarray, *, readable: frozenset[str],
                   exclude: tuple[str, str] | None = None,
                   threshold: float = DUPLICATE_SIMILARITY) -> list[Duplicate]:
        """Readable skills at least `threshold` similar to `vector` (not `exclude` itself)."""
        self.sync()
        near = self.vectors.above(vector, threshold)
        rows = self.store.catalogue.skills_by_id((i for i, _ in near), filters=SearchFilters(),
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
        qvec = self.embedder.embed_query(query.strip())
        return _gap(self._semantic(qvec, request, 1), qvec)


_SORT_KEYS: dict[str, Callable[[_Scored], tuple[Any, ...]]] = {
    "relevance": lambda s: (-s.score,),
    "installs": lambda s: (-s.skill.downloads, -s.score),
    "rating": lambda s: (-round(s.quality.wilson, 6), -round(s.quality.quality, 6), -s.score),
    "recent": lambda s: (_neg_time(s.skill.updated_at), -s.score),
}


def _explored(ranked: list[_Scored], samples: dict[int, tuple[float, float]]
              ) -> list[_Scored]:
    """`ranked` (the plain order) re-ordered with each quality's evidence a posterior
    sample (`ranking.explore`); each result's `explore` holds its sample, the quality
    scored with it and its place in the plain order (`plain_rank`: moved when it differs)."""
    out = []
    for plain_rank, s in enumerate(ranked, start=1):
        draw, explored_quality = samples[s.skill.id]
        out.append(replace(s, score=final_score(s.relevance, explored_quality), explore={
            "sample": round(draw, 6), "quality": round(explored_quality, 6),
            "plain_rank": plain_rank}))
    out.sort(key=lambda s: (not s.exact, -s.score, s.skill.namespace, s.skill.name))
    return out


def _result(scored: _Scored) -> Result:
    """A shown result, with the terms of its score (`score_parts`)."""
    cand = scored.candidate
    parts: dict[str, Any] = {
        "keyword": None if cand.keyword_rank is None else
        {"rank": cand.keyword_rank, "bm25": round(cand.bm25 or 0.0, 6)},
        "semantic": None if cand.semantic_rank is None else
        {"rank": cand.semantic_rank, "similarity": round(cand.similarity or 0.0, 6)},
        "exact_name": scored.exact,
        "relevance": round(scored.relevance, 6),
        **scored.quality.parts(),
        "score": round(scored.score, 6),
    }
    if scored.explore is not None:
        parts["explore"] = scored.explore
    return Result(cand.skill, scored.score, parts, "")


def _counted(request: SearchRequest, skills: list[SkillRow], cut: bool
             ) -> tuple[int | None, bool, Facets | None]:
    """The total and the facets of every ranked result, when the request asks for them."""
    if not request.facets:
        return None, False, None
    return len(skills), cut, count_facets(skills)


def _neg_time(stamp: str) -> float:
    try:
        return -datetime.fromisoformat(stamp).timestamp()
    except ValueError:
        return math.inf


def _gap(ranked: list[tuple[SkillRow, float]], qvec: np.ndarray) -> Gap:
    if not ranked:
        return Gap(True, 0.0, GAP_SIMILARITY, None, qvec)
    skill, best = ranked[0]
    return Gap(best < GAP_SIMILARITY, round(best, 6), GAP_SIMILARITY,
               (skill.namespace, skill.name), qvec)


def _job_text(job: EmbedJob) -> str:
    return skill_text(job.name, job.description, job.tags, job.body)
