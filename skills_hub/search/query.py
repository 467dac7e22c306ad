"""User text to the words of a keyword search (`domain.KeywordQuery`).

The same for every backend: each turns the words into its own syntax (FTS5 strings in
`store.sqlite.fts`, tsquery lexemes in `store.postgres.search`), quoting every word, so no
operator or punctuation of the input ever reaches a query parser. Common English words
are dropped unless nothing else is left: they add nothing to the ranking and make
any-word queries scan the whole index. The last word may be a prefix (search-as-you-type).
"""

from __future__ import annotations

import re

from ..domain import KeywordQuery

MAX_TOKENS = 32
MIN_PREFIX = 2  # a one-letter prefix would match most of the index

_WORD = re.compile(r"\w+")

STOPWORDS = frozenset("""
a about an and any are as at be by can could do does for from get give have how i in into
is it its me my need of on or our please should show some that the their them then there
these this to use using want was we what when where which who why will with would you your
""".split())


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def parse(text: str, *, prefix: bool = True) -> KeywordQuery:
    """The words of `text`; `prefix` lets the last word match as a prefix.

    The prefix applies only when the text does not end in a space or punctuation (the
    user is still typing that word) and the word has at least MIN_PREFIX characters.
    """
    found = words(text)[:MAX_TOKENS * 4]
    kept = [w for w in found if w not in STOPWORDS] or found
    kept = list(dict.fromkeys(kept))[:MAX_TOKENS]  # unique, in order
    if not kept:
        return KeywordQuery(())
    last = kept[-1]
    typing = bool(text) and (text[-1].isalnum() or text[-1] == "_")
    return KeywordQuery(tuple(kept), prefix and typing and found[-1] == last
                        and len(last) >= MIN_PREFIX)
