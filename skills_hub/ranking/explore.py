"""Exploration: under-tested skills get a fair chance among results of near-equal relevance.

Ranking by the Wilson lower bound alone is greedy: the skill on top gets most of the uses,
so its bound rises to its true rate, while a better skill that few agents tried keeps a
wide interval and a low bound, and agents that take the first result never try it
(bench/loop_sim.py measured a worse skill holding first place for up to 3,750 outcomes).
On a share of result pages the evidence term of the quality score is instead a Thompson
sample, a draw from each skill's posterior of its success rate:

    page      = sha256("<query>\\n<client>\\n<hour>")   query trimmed and lower-cased;
                client the search's `client_id`, else its bearer token (a search
                with neither, a person browsing, is not explored: nothing it picks is
                reported back to learn from);
                hour the UTC hour (YYYY-MM-DDTHH)
    explores  = the page's first 8 bytes / 2**64 < EXPLORE_SHARE
    sample    ~ Beta(1 + s, 1 + f)                    s, f the decayed counts of `quality`
    evidence  = max(sample, floor)                     (the new-skill floor as in `quality`)
    with evidence near the query (`learning.tasks`), blended as `quality` blends it:
    evidence  = (1 - lambda) * max(sample, floor) + lambda * Beta(1 + s_near, 1 + f_near)
    quality'  = 0.8 * evidence + 0.2 * installs        scored as usual: quality moves a
                                                      score by at most 10 %, so only results
                                                      of near-equal relevance change places

The draws come from a generator seeded with the page hash, in skill id order, so a page is
the same for one query, client and hour: reloading or paging shows the same order. The
evidence term is all that changes: relevance is never sampled. As a skill's evidence grows
its posterior narrows to its rate, so once the evidence separates the skills an explored
page almost always shows the plain order (bench/loop_sim.py: the first result differs on
about 1 % of explored pages late in a run). The rest of the pages, and every sort but
`relevance`, rank by the Wilson bound as before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime

import numpy as np

from .quality import EVIDENCE_WEIGHT, INSTALLS_WEIGHT, Quality, floor_of

EXPLORE_SHARE = 0.9


def page_seed(query: str, client: str, now: datetime) -> int:
    """The page's 64-bit seed: the same for one query, client and UTC hour."""
    hour = now.strftime("%Y-%m-%dT%H")
    digest = hashlib.sha256(f"{query.strip().lower()}\n{client}\n{hour}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def explores(seed: int, share: float = EXPLORE_SHARE) -> bool:
    """Whether this page ranks by posterior samples (a share of pages does)."""
    return seed / 2**64 < share


def explored(seed: int, qualities: Mapping[int, Quality]) -> dict[int, tuple[float, float]]:
    """skill id -> (its Thompson sample, the quality with the sample as evidence)."""
    ids = sorted(qualities)
    if not ids:
        return {}
    rng = np.random.default_rng(seed)
    alpha = np.array([1.0 + max(qualities[i].successes, 0.0) for i in ids])
    beta = np.array([1.0 + max(qualities[i].failures, 0.0) for i in ids])
    draws = rng.beta(alpha, beta)
    out = {}
    for skill_id, draw in zip(ids, draws.tolist(), strict=True):
        q = qualities[skill_id]
        evidence = max(draw, floor_of(q.successes + q.failures))
        if q.near is not None:  # drawn after the global ones, so pages without it are as before
            near = float(rng.beta(1.0 + q.near.successes, 1.0 + q.near.failures))
            draw = evidence = (1.0 - q.near.weight) * evidence + q.near.weight * near
        out[skill_id] = (draw, EVIDENCE_WEIGHT * evidence + INSTALLS_WEIGHT * q.installs)
    return out
