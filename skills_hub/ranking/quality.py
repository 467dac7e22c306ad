"""The quality part of a search score: how well a skill has done, not what it is about.

    wilson   = Wilson lower bound of s successes in n = s + f outcomes, z = 1.645 (one-sided 95 %)
    s, f     = outcome counts decayed with a half-life: each outcome weighs 0.5 ** (age / 60 days)
    floor    = NEW_SKILL_FLOOR * max(0, 1 - n / MIN_EVIDENCE)    (fades as evidence arrives)
    evidence = max(wilson, floor)
    installs = log(1 + downloads) / log(1 + INSTALLS_SATURATE), capped at 1
    quality  = 0.8 * evidence + 0.2 * installs                                  (in [0, 1])

With a query vector and outcome reports that name their task, the evidence term blends in
the evidence of the tasks near the query (`learning.tasks`):

    evidence = (1 - lambda) * max(wilson, floor) + lambda * wilson_near

Relevance decides which skills match; quality only orders among them (see `search.fusion`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..learning.tasks import Near

Z = 1.645
HALF_LIFE_DAYS = 60.0
NEW_SKILL_FLOOR = 0.5
MIN_EVIDENCE = 10.0
INSTALLS_SATURATE = 10_000
EVIDENCE_WEIGHT = 0.8
INSTALLS_WEIGHT = 0.2


def wilson_lower_bound(successes: float, total: float, z: float = Z) -> float:
    """The lower end of the Wilson score interval; 0 with no evidence.

    Works on fractional (decayed) counts; successes is clamped into [0, total].
    """
    if total <= 0:
        return 0.0
    p = min(max(successes, 0.0), total) / total
    z2 = z * z
    centre = p + z2 / (2 * total)
    spread = z * math.sqrt(max(p * (1 - p) / total + z2 / (4 * total * total), 0.0))
    return max(0.0, (centre - spread) / (1 + z2 / total))


def decay_factor(age_seconds: float, half_life_days: float = HALF_LIFE_DAYS) -> float:
    """The weight left after `age_seconds`: 1 now, 0.5 after one half-life."""
    if age_seconds <= 0:
        return 1.0
    return 0.5 ** (age_seconds / (half_life_days * 86_400.0))


def decayed_totals(totals: Iterable[tuple[float, float, str]],
                   now: datetime) -> tuple[float, float]:
    """Sum per-version (successes, failures, as_of) counts, each decayed from as_of to now."""
    succ = fail = 0.0
    for s, f, as_of in totals:
        weight = decay_factor((now - datetime.fromisoformat(as_of)).total_seconds())
        succ, fail = succ + s * weight, fail + f * weight
    return succ, fail


def installs_factor(downloads: int) -> float:
    if downloads <= 0:
        return 0.0
    return min(1.0, math.log1p(downloads) / math.log1p(INSTALLS_SATURATE))


@dataclass(frozen=True)
class Quality:
    """Each term of the quality score, kept for `score_parts`."""

    successes: float  # decayed
    failures: float   # decayed
    wilson: float
    floored: bool     # the new-skill floor was used instead of the bound
    installs: float
    quality: float
    near: Near | None = None  # the evidence of the tasks near the query, when it counts

    @property
    def evidence(self) -> float:
        """The global evidence term: the Wilson bound, or the new-skill floor."""
        return max(self.wilson, floor_of(self.successes + self.failures))

    def parts(self) -> dict[str, object]:
        return {"successes": round(self.successes, 4), "failures": round(self.failures, 4),
                "wilson": round(self.wilson, 6), "new_skill_floor": self.floored,
                "installs": round(self.installs, 6), "quality": round(self.quality, 6),
                "task": None if self.near is None else self.near.parts()}

    def with_near(self, near: Near | None) -> Quality:
        """This quality with the evidence near a query blended in (`learning.tasks`)."""
        if near is None:
            return self
        return replace(self, near=near, quality=EVIDENCE_WEIGHT * blend(self.evidence, near)
                       + INSTALLS_WEIGHT * self.installs)


def floor_of(total: float) -> float:
    """The new-skill floor for `total` (decayed) outcomes: fades as evidence arrives."""
    return NEW_SKILL_FLOOR * max(0.0, 1.0 - total / MIN_EVIDENCE)


def blend(evidence: float, near: Near | None) -> float:
    """The evidence term with the near-query evidence's share (`near.weight`)."""
    if near is None:
        return evidence
    return (1.0 - near.weight) * evidence + near.weight * near.wilson


@functools.lru_cache(maxsize=8192)  # a catalogue's skills without reports share arguments
def quality(successes: float, failures: float, downloads: int) -> Quality:
    total = successes + failures
    wilson = wilson_lower_bound(successes, total)
    floor = floor_of(total)
    floored = floor > wilson
    evidence = max(wilson, floor)
    inst = installs_factor(downloads)
    return Quality(successes, failures, wilson, floored, inst,
                   EVIDENCE_WEIGHT * evidence + INSTALLS_WEIGHT * inst)
