"""The Embedder protocol: the one extension point for embeddings (a backend table in backends.py picks one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    """The one extension point for embeddings. `model_id` names the model so an index can refuse another."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """n texts -> (n, d) float32 matrix, each row of unit L2 norm."""
        ...


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as C-contiguous float32 (what FAISS's inner product needs for cosine)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)
