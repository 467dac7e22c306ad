"""Facet counts: how many of a search's results fall in each namespace, tag, verdict and
trust level.

Counted over the engine's whole ranked candidate list (every result paging can reach, up
to `engine.MAX_RESULTS`), which the index has already filtered and restricted to what the
caller may read, so a count never includes a skill the search would not show. The counts
are drill-down counts: each one is what the search returns with that value added to the
current filters (a facet whose filter is set counts only its selected value).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from ..domain import TRUST_LEVELS, SkillRow

VERDICT_ORDER = ("safe", "caution", "dangerous", "unchecked")
TAG_LIMIT = 12       # the tag facet shows the most frequent tags only
MAX_TAG_CHARS = 64   # as the service's tag filter allows


@dataclass(frozen=True)
class FacetValue:
    value: str
    count: int


@dataclass(frozen=True)
class Facets:
    namespace: tuple[FacetValue, ...]
    tag: tuple[FacetValue, ...]        # the TAG_LIMIT most frequent
    verdict: tuple[FacetValue, ...]
    trust: tuple[FacetValue, ...]
    more_tags: int = 0                 # distinct tags left out of `tag`


@lru_cache(maxsize=20_000)  # counted on every keystroke; a skill's tags rarely change
def skill_tags(tags: str) -> tuple[str, ...]:
    """The tags of a skill's `tags` column as the index's tag filter matches them (SQLite's
    lower() folds ASCII only; ", " and "," separate), leaving out any the filter cannot
    select: too long, or with a capital the filter's Unicode lower() would fold and
    SQLite's would not."""
    folded = tags.lower() if tags.isascii() else \
        "".join(c.lower() if c.isascii() else c for c in tags)
    return tuple(t for t in dict.fromkeys(folded.replace(", ", ",").split(","))
                 if t and t == t.strip() and t == t.lower() and len(t) <= MAX_TAG_CHARS)


def count_facets(skills: Iterable[SkillRow], tag_limit: int = TAG_LIMIT) -> Facets:
    """The facets of `skills` (each counted once); values with no skill are left out."""
    namespaces: Counter[str] = Counter()
    tags: Counter[str] = Counter()
    verdicts: Counter[str] = Counter()
    trusts: Counter[str] = Counter()
    for skill in skills:
        namespaces[skill.namespace] += 1
        tags.update(skill_tags(skill.tags))
        verdicts[skill.verdict] += 1
        trusts[skill.trust] += 1
    top_tags = sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:tag_limit]
    return Facets(
        namespace=_values(sorted(namespaces.items(), key=lambda kv: (-kv[1], kv[0]))),
        tag=_values(top_tags),
        verdict=_values((v, verdicts[v]) for v in VERDICT_ORDER if verdicts[v]),
        trust=_values((t, trusts[t]) for t in TRUST_LEVELS if trusts[t]),
        more_tags=max(0, len(tags) - len(top_tags)))


def _values(pairs: Iterable[tuple[str, int]]) -> tuple[FacetValue, ...]:
    return tuple(FacetValue(value, count) for value, count in pairs)
