"""User text to safe FTS5 MATCH expressions.

Every word becomes a double-quoted FTS5 string, so no operator, column filter, `NEAR(`,
`*` or parenthesis in the input reaches the parser. The last word may become a prefix
query (search-as-you-type). Common English words are dropped unless nothing else is left:
they add nothing to bm25 and make OR queries scan the whole index.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_TOKENS = 32
MIN_PREFIX = 2  # a one-letter prefix would match most of the index

_WORD = re.compile(r"\w+")

STOPWORDS = frozenset("""
a about an and any are as at be by can could do does for from get give have how i in into
is it its me my need of on or our please should show some that the their them then there
these this to use using want was we what when where which who why will with would you your
""".split())


@dataclass(frozen=True)
class MatchQuery:
    """The FTS5 expressions for one user query (empty when it has no words)."""

    all_words: str   # every word must match (AND)
    any_word: str    # any word may match (OR); equal to all_words for one word
    words: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.words)


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def build(text: str, *, prefix: bool = True) -> MatchQuery:
    """Expressions for `text`; `prefix` lets the last word match as a prefix.

    The prefix applies only when the text does not end in a space or punctuation (the
    user is still typing that word) and the word has at least MIN_PREFIX characters.
    """
    found = words(text)[:MAX_TOKENS * 4]
    kept = [w for w in found if w not in STOPWORDS] or found
    kept = list(dict.fromkeys(kept))[:MAX_TOKENS]  # unique, in order
    if not kept:
        return MatchQuery("", "", ())
    terms = [_quote(w) for w in kept]
    last = kept[-1]
    typing = bool(text) and (text[-1].isalnum() or text[-1] == "_")
    if prefix and typing and found and found[-1] == last and len(last) >= MIN_PREFIX:
        terms[-1] += " *"
    return MatchQuery(" AND ".join(terms), " OR ".join(terms), tuple(kept))


def _quote(word: str) -> str:
    return '"' + word.replace('"', '""') + '"'
