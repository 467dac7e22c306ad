"""Demands: gap queries (searches no readable skill answered) clustered by meaning.

Pure vector arithmetic over float32 bytes; the store calls it inside the transaction that
records an ask (`store.interfaces.Clustering`), and the publish path asks `similarity`
whether a new skill answers an open demand. docs/LEARNING.md ("Demands") explains the
method and these constants.

- A demand's centroid is the sum of its members' unit vectors; its direction is their
  mean meaning (cosines are taken against the normalised sum).
- A new gap joins the open demand of its scope whose centroid is nearest, when at least
  JOIN_SIMILARITY; else it opens a demand of its own. MiniLM puts paraphrases of one task
  at 0.62-0.88 of each other and unrelated tasks below 0.3 (measured on the paraphrase
  sets in tests/test_demands.py), and a member is closer to its cluster's mean than to
  any one other member, so 0.6 joins paraphrases and keeps neighbours apart.
- The representative phrasing is the member query nearest the centroid (the most typical
  wording), re-chosen as members join.
- A demand is answered when a published skill's text is at least CLOSE_SIMILARITY to the
  centroid: the gap threshold, the same bar under which search called it a gap.
"""

from __future__ import annotations

import numpy as np

from ..search.engine import GAP_SIMILARITY

JOIN_SIMILARITY = 0.6
CLOSE_SIMILARITY = GAP_SIMILARITY


def _vec(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _units(blobs: list[bytes]) -> np.ndarray:
    """The vectors as the rows of one matrix, each scaled to unit length (one pass)."""
    matrix = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def similarity(centroid: bytes, vector: bytes | np.ndarray) -> float:
    """Cosine of a vector with a demand's centroid."""
    other = vector if isinstance(vector, np.ndarray) else _vec(vector)
    return float(np.dot(_unit(_vec(centroid)), _unit(other.astype(np.float32))))


class Clustering:
    """`store.interfaces.Clustering` with a join threshold (a benchmark may vary it)."""

    def __init__(self, join: float = JOIN_SIMILARITY) -> None:
        self.join = join

    def nearest(self, vector: bytes, centroids: list[tuple[int, bytes]]) -> int | None:
        if not centroids:
            return None
        sims = _units([blob for _, blob in centroids]) @ _unit(_vec(vector))
        best = int(np.argmax(sims))
        return centroids[best][0] if float(sims[best]) >= self.join else None

    def fold(self, centroid: bytes, vector: bytes) -> bytes:
        return (_vec(centroid) + _vec(vector)).astype(np.float32).tobytes()

    def representative(self, centroid: bytes, members: list[tuple[str, bytes]]) -> str:
        sims = _units([blob for _, blob in members]) @ _unit(_vec(centroid))
        # The nearest; among equals (two members of one demand), the first in text order.
        best = min(range(len(members)), key=lambda i: (-round(float(sims[i]), 6),
                                                       members[i][0]))
        return members[best][0]
