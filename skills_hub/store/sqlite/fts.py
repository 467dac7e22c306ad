"""A keyword query (`search.query.parse`) as FTS5 MATCH expressions.

Every word becomes a double-quoted FTS5 string, so no operator, column filter, `NEAR(`,
`*` or parenthesis reaches the parser; the last word may be a prefix query.

Words of the catalogue's own that are very common (in COMMON_SHARE of the skills or more,
counted by `TermStats` from FTS5's vocabulary) are left out of the OR expression that
finds candidates when a rarer word remains: ranking every skill that shares one such word
with the query costs most of a keyword search (bm25 over thousands of rows) and adds
skills that match little else. The AND expression keeps every word.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

from ...domain import KeywordQuery

COMMON_SHARE = 0.2  # a term in at least this share of the skills is very common
MIN_PRUNE_DOCS = 1_000  # below this many skills every OR is cheap: nothing is left out


@dataclass(frozen=True)
class MatchQuery:
    """The FTS5 expressions for one keyword query (empty when it has no words)."""

    all_words: str   # every word must match (AND)
    any_word: str    # any word may match (OR); equal to all_words for one word
    words: tuple[str, ...]
    # The OR expression that finds candidates: any_word without the very common words
    # when a rarer one that matches some skill remains (see `build`), else any_word.
    rarer_words: str = ""

    def __bool__(self) -> bool:
        return bool(self.words)


def build(query: KeywordQuery, *, stats: TermStats | None = None) -> MatchQuery:
    """FTS5 expressions for `query`: every word a double-quoted string, the last one
    with ` *` when it is a prefix.

    With `stats`, `rarer_words` leaves out the words in COMMON_SHARE of the skills or more
    while a rarer word that some skill contains remains.
    """
    kept = list(query.words)
    if not kept:
        return MatchQuery("", "", ())
    terms = [_quote(w) for w in kept]
    prefixed = [False] * len(kept)
    if query.prefix:
        terms[-1] += " *"
        prefixed[-1] = True
    any_word = " OR ".join(terms)
    rarer = any_word
    if stats is not None and len(kept) > 1 and stats.total >= MIN_PRUNE_DOCS:
        rarer = _rarer(stats, kept, prefixed, terms) or any_word
    return MatchQuery(" AND ".join(terms), any_word, query.words, rarer)


def _rarer(stats: TermStats, kept: list[str], prefixed: list[bool],
           terms: list[str]) -> str | None:
    """The OR of the terms that are not very common, if one of them matches some skill."""
    counts = [stats.docs(w, p) for w, p in zip(kept, prefixed, strict=True)]
    bar = COMMON_SHARE * stats.total
    rest = [(t, n) for t, n in zip(terms, counts, strict=True) if n is None or n < bar]
    if len(rest) == len(terms):
        return None
    # A term below the snapshot's floor (or newer than it) is uncounted: ask the index
    # whether anything matches it, so that a misspelt word never leaves an empty search.
    if not any(n or (n is None and stats.present(t)) for t, n in rest):
        return None
    return " OR ".join(t for t, _ in rest)


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'


class TermStats:
    """How many skills each indexed term is in: a snapshot of FTS5's vocabulary.

    `counts` holds the terms in at least `floor` of the `total` skills (rarer ones are
    not needed to tell what is common; a prefix's count sums the counted terms, so it is
    a slight underestimate). `tokens` turns a word into the terms the index stores for it
    (the FTS5 tokenizer: unicode61 splitting, porter stems); `present` tells whether any
    skill matches an FTS5 expression.
    """

    def __init__(self, total: int, floor: int, counts: Iterable[tuple[str, int]],
                 tokens: Callable[[str], Sequence[str]],
                 present: Callable[[str], bool]) -> None:
        pairs = sorted(counts)
        self.total = total
        self.floor = floor
        self.present = present
        self._tokens = tokens
        self._count = dict(pairs)
        self._terms = [term for term, _ in pairs]
        self._sums = [0, *accumulate(n for _, n in pairs)]

    def docs(self, word: str, prefix: bool) -> int | None:
        """How many skills the quoted `word` matches at most (a phrase when it is several
        terms; the last one a prefix when `prefix`); None when a term is not counted
        (in fewer than `floor` skills, or newer than the snapshot)."""
        terms = list(self._tokens(word))
        if not terms:
            return 0
        counts = [self._count.get(t) for t in terms[:-1]]
        counts.append(self._prefixed(terms[-1]) if prefix else self._count.get(terms[-1]))
        known = [n for n in counts if n is not None]
        return min(known) if len(known) == len(counts) else None

    def _prefixed(self, start: str) -> int | None:
        """Skills with a term starting with `start`, summed over the counted terms."""
        lo = bisect.bisect_left(self._terms, start)
        hi = bisect.bisect_left(self._terms, start + "\U0010ffff")
        return min(self.total, self._sums[hi] - self._sums[lo]) if hi > lo else None
