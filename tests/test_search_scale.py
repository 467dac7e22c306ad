"""Search's shortcuts for large catalogues, each against the plain way it replaces: very
common words left out of the OR query, snippets made from the shown rows only, browsing by
installs and rating through indexes. Real SQLite; the 1,200 skills of `big` are written
with `Index.record_versions` (no git), as bench/search_bench.py does."""

from __future__ import annotations

import inspect
import time
from datetime import UTC, datetime, timedelta

import pytest

from skills_hub.access.principal import ANONYMOUS
from skills_hub.domain import (
    HIGHLIGHT_END,
    HIGHLIGHT_START,
    INSTALLS_CAP,
    NewVersion,
    SearchFilters,
)
from skills_hub.ranking.quality import INSTALLS_SATURATE
from skills_hub.search.engine import SearchEngine, SearchRequest, _Candidate
from skills_hub.search.query import parse
from skills_hub.services import Registry
from skills_hub.store.sqlite import fts, migrations
from skills_hub.store.sqlite.sql import BM25_WEIGHTS

from .conftest import send_outcomes
from .test_search import publish
from .test_search_units import HOSTILE

# FTS5's own term counts, snippets and query plans: the SQLite backend's internals.
pytestmark = pytest.mark.sqlite_only

SIZE = 1_200


def _words(i: int) -> str:
    """`alpha` in every skill, `beta` in a third (very common), `delta` in a seventh and
    `gamma` in one in fifty (rarer)."""
    return " ".join(word for word, every in (("alpha", 1), ("beta", 3), ("delta", 7),
                                             ("gamma", 50)) if i % every == 0)


def _version(i: int, now: datetime) -> NewVersion:
    stamp = (now - timedelta(minutes=i)).isoformat(timespec="seconds")
    return NewVersion(
        namespace=f"ns{i % 4}", name=f"skill-{i:04d}", version="1.0.0", commit_sha="0" * 40,
        tag_sha="0" * 40, tree_sha="0" * 40, content_sha256="0" * 64,
        description=f"Handles {_words(i)} records, number {i}.", frontmatter={}, files=[],
        published_at=stamp, tags=f"t{i % 5}", is_latest=True,
        body=f"# Steps\n\nRead the {_words(i)} input.\nWrite it back as a report.")


@pytest.fixture
def big(registry: Registry) -> Registry:
    now = datetime.now(UTC)
    registry.store.catalogue.record_versions(_version(i, now) for i in range(SIZE))
    registry.store.keyword.refresh_terms()
    return registry


def _numbers(registry: Registry, query: str, **kwargs: object) -> list[int]:
    page = registry.search(query, principal=ANONYMOUS, mode="keyword", limit=100, **kwargs)
    return [int(r.skill.name.split("-")[1]) for r in page.results.results]


# -- very common words --------------------------------------------------------------------


def test_very_common_words_are_left_out_of_the_or_query(big: Registry) -> None:
    stats = big.store.keyword.terms
    assert stats is not None and stats.total == SIZE
    match = fts.build(parse("beta gamma "), stats=stats)  # finished: no prefix
    assert (match.all_words, match.any_word) == ('"beta" AND "gamma"', '"beta" OR "gamma"')
    assert match.rarer_words == '"gamma"'
    # Every word first (bm25 among them), then the rarer word alone; never `beta` alone.
    found = _numbers(big, "beta gamma")
    both = [i for i in range(SIZE) if i % 150 == 0]
    assert sorted(found[:len(both)]) == both
    assert sorted(found[len(both):]) == [i for i in range(SIZE) if i % 50 == 0 and i % 3]
    # The typed prefix counts like a word: `bet*` is as common as `beta`.
    assert fts.build(parse("gamma bet"), stats=stats).rarer_words == '"gamma"'
    assert fts.build(parse("beta gam"), stats=stats).rarer_words == '"gam" *'
    # A word in a seventh of the skills is not very common.
    assert fts.build(parse("beta delta "), stats=stats).rarer_words == '"delta"'
    assert fts.build(parse("gamma delta "), stats=stats).rarer_words == '"gamma" OR "delta"'


def test_nothing_is_left_out_unless_a_rarer_word_finds_something(big: Registry) -> None:
    stats = big.store.keyword.terms
    assert stats is not None
    for query in ("alpha beta ", "beta zzqx ", "beta ___", "alpha "):
        match = fts.build(parse(query), stats=stats)
        assert match.rarer_words == match.any_word, query
    # `beta zzqx` still finds the `beta` skills, as without the counts.
    assert len(_numbers(big, "beta zzqx")) == 100
    # A word newer than the counts is asked of the index, and found.
    publish(big, "late", "zzqx-tool", "Handles zzqx records.")
    assert fts.build(parse("beta zzqx "), stats=stats).rarer_words == '"zzqx"'
    assert [r.skill.name for r in big.search("beta zzqx", principal=ANONYMOUS,
                                             mode="keyword").results.results] == ["zzqx-tool"]


def test_small_catalogues_leave_nothing_out(big: Registry) -> None:
    stats = big.store.keyword.terms
    assert stats is not None
    small = fts.TermStats(fts.MIN_PRUNE_DOCS - 1, 1, [("beta", 900), ("gamma", 5)],
                          big.store.keyword.fts_terms, big.store.keyword.fts_matches)
    assert fts.build(parse("beta gamma "), stats=small).rarer_words == '"beta" OR "gamma"'
    assert fts.build(parse("beta gamma "), stats=stats).rarer_words == '"gamma"'


def test_term_counts_use_the_index_tokenizer(registry: Registry) -> None:
    assert registry.store.keyword.fts_terms("Charts") == ["chart"]
    assert registry.store.keyword.fts_terms("foo_bar") == ["foo", "bar"]
    assert registry.store.keyword.fts_terms("___") == []


def test_term_counts_are_kept_up_to_date_by_the_worker(big: Registry) -> None:
    engine: SearchEngine = big.search_engine
    keyword = big.store.keyword
    publish(big, "late", "one-more", "Handles beta records.")
    # A search notices the change (checking every recount.CHECK_S; here at once) and wakes
    # the worker, which counts again.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        keyword._terms.checked = float("-inf")
        engine.search(SearchRequest("beta gamma", mode="keyword"))
        stats = keyword.terms
        if stats is not None and stats.total == SIZE + 1:
            break
        time.sleep(0.1)
    assert keyword.terms is not None and keyword.terms.total == SIZE + 1


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_input_with_term_counts_never_errors(big: Registry, query: str) -> None:
    match = fts.build(parse(query), stats=big.store.keyword.terms)
    conn = big.store.db.connection()
    for expression in (match.all_words, match.any_word, match.rarer_words):
        if expression:
            conn.execute("SELECT rowid FROM skills_fts WHERE skills_fts MATCH ?",
                         (expression,)).fetchall()
    assert isinstance(big.search(query[:990] + " beta", principal=ANONYMOUS).results.results,
                      list)


# -- snippets -----------------------------------------------------------------------------


def _fts5_snippets(registry: Registry, match: str, ids: list[int]) -> dict[int, str]:
    """What snippets were before: snippet() over the whole index."""
    marks = ", ".join("?" for _ in ids)
    rows = registry.store.db.connection().execute(
        f"SELECT rowid, snippet(skills_fts, -1, '{HIGHLIGHT_START}', '{HIGHLIGHT_END}', "
        f"'…', 16) FROM skills_fts WHERE skills_fts MATCH ? AND rowid IN ({marks})",
        (match, *ids)).fetchall()
    return {int(r[0]): str(r[1]) for r in rows}


@pytest.mark.parametrize("query", ["beta gamma", "gamma bet", "handles records", "rep",
                                   "number 150", "alpha beta delta gamma report", *HOSTILE])
def test_snippets_are_fts5s_snippets_of_the_shown_rows(big: Registry, query: str) -> None:
    match = fts.build(parse(query))
    if not match:
        return
    weights = ", ".join(str(w) for w in BM25_WEIGHTS)
    ids = [int(r[0]) for r in big.store.db.connection().execute(
        f"SELECT rowid FROM skills_fts WHERE skills_fts MATCH ? ORDER BY "
        f"bm25(skills_fts, {weights}) LIMIT 10", (match.any_word,))]
    ids += [1, 2, 3]  # rows that may not match: no snippet, as before
    expected = _fts5_snippets(big, match.any_word, ids)
    assert big.store.keyword.fts_snippets(match.any_word, ids) == expected


# -- browsing by installs and rating ------------------------------------------------------


def _rated_catalogue(registry: Registry) -> Registry:
    """40 skills: installs from 0 to past the cap (ties included), outcomes on some
    (strong, weak, failures only: a zero Wilson bound), in two namespaces and two tags."""
    now = datetime.now(UTC)
    registry.store.catalogue.record_versions(_version(i, now) for i in range(40))
    conn = registry.store.db.connection()
    for i in range(40):
        installs = (0, 3, 3, 250, INSTALLS_CAP - 1, INSTALLS_CAP, INSTALLS_CAP * 3)[i % 7]
        conn.execute("UPDATE skills SET downloads = ? WHERE name = ?",
                     (installs, f"skill-{i:04d}"))
    for i, outcomes in ((2, ["success"] * 30), (9, ["success"] * 3 + ["failure"]),
                        (13, ["failure"] * 4), (20, ["failure"]),
                        (27, ["success"] * 12 + ["failure"] * 5)):
        send_outcomes(registry, f"ns{i % 4}", f"skill-{i:04d}", outcomes,
                      version="1.0.0", at=now - timedelta(days=i))
    return registry


def _every_skill_ranked(registry: Registry, filters: SearchFilters) -> list[str]:
    """The rating order as it was computed before: rank every readable skill."""
    engine = registry.search_engine
    rows = registry.store.catalogue.filtered_skills(filters=filters, readable=frozenset())
    ranked = engine._rank({r.id: _Candidate(r) for r in rows}, {r.id: 1.0 for r in rows},
                          set(), "rating")
    return [s.skill.name for s in ranked]


@pytest.mark.parametrize("filters", [{}, {"namespace": "ns1"}, {"tag": "t2"}])
def test_browse_by_rating_is_the_order_of_ranking_every_skill(registry: Registry,
                                                               filters: dict[str, str]) -> None:
    _rated_catalogue(registry)
    expected = _every_skill_ranked(registry, SearchFilters(**filters))
    assert filters or expected[0] == "skill-0002"  # 30 successes
    for limit in (1, 7, 40):
        shown: list[str] = []
        cursor = None
        while True:
            page = registry.search("", principal=ANONYMOUS, sort="rating", limit=limit,
                                   cursor=cursor, **filters)
            shown += [r.skill.name for r in page.results.results]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert shown == expected, limit
    faceted = registry.search("", principal=ANONYMOUS, sort="rating", limit=5, facets=True,
                              **filters).results
    assert [r.skill.name for r in faceted.results] == expected[:5]
    assert faceted.total == len(expected) and not faceted.more_than_total


def test_browse_orders_read_their_index_not_the_catalogue(registry: Registry) -> None:
    registry.store.catalogue.record_versions(_version(i, datetime.now(UTC)) for i in range(50))
    conn = registry.store.db.connection()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)  # with the parameters filled in
    try:
        for method, kwargs in (("browse", {"order": "recent", "offset": 0, "limit": 10}),
                               ("browse", {"order": "installs", "offset": 0, "limit": 10}),
                               ("unrated_skills", {"limit": 10})):
            statements.clear()
            getattr(registry.store.catalogue, method)(filters=SearchFilters(),
                                                      readable=frozenset(), **kwargs)
            sql = next(s for s in statements if "ORDER BY" in s)
            plan = [str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql)]
            assert plan[0].startswith("SCAN s USING INDEX"), (method, plan)
            assert not any("TEMP B-TREE" in p for p in plan), (method, plan)
    finally:
        conn.set_trace_callback(None)


def test_the_installs_cap_is_the_quality_saturation() -> None:
    assert INSTALLS_CAP == INSTALLS_SATURATE
    assert f"min(downloads, {INSTALLS_CAP})" in inspect.getsource(migrations.m009_browse_orders)
