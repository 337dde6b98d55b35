"""The evidence every estimate shows, whatever its read-out: the k nearest neighbours, their softmax weights and
a confidence from their closeness and agreement."""

from __future__ import annotations

import numpy as np


def neighbor_weights(sims: np.ndarray, tau: float) -> np.ndarray:
    """Softmax of similarity / tau over each row of neighbours (tau <= 0 means equal weights)."""
    sims = np.asarray(sims, dtype=np.float64)
    if tau <= 0:
        return np.full_like(sims, 1.0 / sims.shape[-1])
    z = (sims - sims.max(axis=-1, keepdims=True)) / tau
    w = np.exp(z)
    return w / w.sum(axis=-1, keepdims=True)


def combine(sims: np.ndarray, idx: np.ndarray, values: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, k) neighbour similarities and rows -> (n, 10) vectors, (n, k) weights and (n,) confidences."""
    w = neighbor_weights(sims, tau)
    nv = values[idx]  # (n, k, 10)
    mean = np.einsum("nk,nkv->nv", w, nv)
    spread = np.sqrt(np.einsum("nk,nkv->nv", w, (nv - mean[:, None, :]) ** 2)).mean(axis=1)
    closeness = np.clip((w * sims).sum(axis=1), 0.0, 1.0)
    confidence = closeness * np.clip(1.0 - spread, 0.0, 1.0)
    return np.clip(mean, -1.0, 1.0), w, confidence
