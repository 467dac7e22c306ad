"""Hybrid fusion: one relevance in [0, 1] from a keyword ranking and a semantic ranking.

The default, `calibrated`, puts each list's scores on one scale before mixing them:

    norm_L(d)    = max(0, (score_L(d) - zero_L) / (max_L - zero_L))
                   keyword: bm25, zero 0; semantic: cosine, zero MIN_SIMILARITY;
                   max_L is the query's best score in L; 0 when d is not in L
    relevance(d) = sum_L w_L * norm_L(d) / sum_L w_L        over the lists that ran

The zero points are fixed rather than each list's minimum, so two near-equal scores stay
near-equal however few candidates a query has.

The default, `adaptive`, is `calibrated` with each list's weight set for the query by how
well that list separates its candidates (issue 16):

    separation_L = 1 - mean(norm_L of its candidates ranked 2..SEPARATION_DEPTH; 0 if absent)
    weight_L     = base weight_L * (SEPARATION_FLOOR + separation_L)

A list whose candidates all score about alike (a common word, a vague query) gives way to a
list with a clear answer; two lists that both separate keep their base weights' ratio.

`rrf` (reciprocal rank fusion) is kept for comparison:

    relevance(d) = sum_L w_L / (RRF_K + rank_L(d)) / sum_L w_L / (RRF_K + 1)

On BFCL (bench/retrieval.py) the calibrated mix beats both of its parts and RRF at any
weight tried; an equal-weight RRF can land below its best part when one part is much
stronger (DESIGN.md). Semantic-only candidates below MIN_SIMILARITY are left out: they
match neither the words nor, really, the meaning. The final score multiplies relevance by
a quality factor within [1 - QUALITY_WEIGHT, 1], so quality only reorders results of
near-equal relevance:

    score(d) = relevance(d) * (1 - QUALITY_WEIGHT + QUALITY_WEIGHT * quality(d))

An exact name match is placed above everything else.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

FUSIONS = ("adaptive", "calibrated", "rrf")
FUSION = "adaptive"
# `adaptive`: a list's weight for one query is its base weight times
# (SEPARATION_FLOOR + its separation), the separation being 1 - the mean normalised score
# of its candidates ranked 2..SEPARATION_DEPTH (a missing one counts 0). See docs/SEARCH.md.
SEPARATION_DEPTH = 10
SEPARATION_FLOOR = 0.5
KEYWORD_WEIGHT = 1.0
SEMANTIC_WEIGHT = 1.0
RRF_K = 60.0
MIN_SIMILARITY = 0.2
QUALITY_WEIGHT = 0.1

@dataclass(frozen=True)
class Ranking:
    """One list: {id: score} in rank order (best first), its weight and its zero point."""

    weight: float
    scores: Mapping[int, float]
    zero: float = 0.0


def calibrated(lists: Sequence[Ranking]) -> dict[int, float]:
    """Relevance in [0, 1]: scores scaled between each list's zero and best, by weight."""
    used = [r for r in lists if r.scores]
    total = sum(r.weight for r in used) or 1.0
    fused: dict[int, float] = {}
    for ranking in used:
        span = max(ranking.scores.values()) - ranking.zero
        for doc, score in ranking.scores.items():
            norm = max(0.0, (score - ranking.zero) / span) if span > 0 else 0.0
            fused[doc] = fused.get(doc, 0.0) + ranking.weight * norm / total
    return fused


def separation(ranking: Ranking, depth: int = SEPARATION_DEPTH) -> float:
    """How clearly a list's best candidate stands out, in [0, 1]: 1 - the mean normalised
    score of its candidates ranked 2..depth (0 for those it lacks). A flat list (every
    candidate near its best) is near 0, a list with one clear answer near 1."""
    if not ranking.scores or depth < 2:
        return 0.0
    best, *rest = heapq.nlargest(depth, ranking.scores.values())
    span = best - ranking.zero
    if span <= 0:
        return 0.0
    return 1.0 - sum(max(0.0, (s - ranking.zero) / span) for s in rest) / (depth - 1)


def adaptive(lists: Sequence[Ranking], depth: int = SEPARATION_DEPTH,
             floor: float = SEPARATION_FLOOR) -> dict[int, float]:
    """`calibrated`, each list weighted for this query by how well it separates its
    candidates: weight * (floor + separation). A list that cannot tell its candidates
    apart gives way to one that can; two confident lists keep their base weights' ratio."""
    return calibrated([Ranking(r.weight * (floor + separation(r, depth)), r.scores, r.zero)
                       for r in lists])


def rrf(lists: Sequence[Ranking], k: float = RRF_K) -> dict[int, float]:
    """Relevance in (0, 1]: weighted reciprocal ranks; first in every list is 1."""
    used = [r for r in lists if r.scores]
    best = sum(r.weight / (k + 1.0) for r in used) or 1.0
    fused: dict[int, float] = {}
    for weight, scores in ((r.weight, r.scores) for r in used):
        for rank, doc in enumerate(scores, start=1):
            fused[doc] = fused.get(doc, 0.0) + weight / (k + rank)
    return {doc: value / best for doc, value in fused.items()}


def fuse(lists: Sequence[Ranking], method: str = FUSION, k: float = RRF_K) -> dict[int, float]:
    if method == "rrf":
        return rrf(lists, k)
    return calibrated(lists) if method == "calibrated" else adaptive(lists)


def final_score(relevance: float, quality: float) -> float:
    return relevance * (1.0 - QUALITY_WEIGHT + QUALITY_WEIGHT * quality)
