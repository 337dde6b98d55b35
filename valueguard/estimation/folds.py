"""Grouped folds and exact neighbour search: what fitting a read-out and cross-validating it share.

Cross-validation groups rows by prompt: the scored files answer the same prompts with three models, so a split
by row would put a test row's twin in the index.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np


def group_folds(groups: Sequence[Hashable], folds: int, seed: int = 0) -> np.ndarray:
    """Fold number of each row such that rows of one group (e.g. one prompt) share a fold."""
    uniq = sorted(set(groups), key=str)
    rng = np.random.default_rng(seed)
    fold_of = {g: int(f) for g, f in zip(uniq, rng.permutation(len(uniq)) % folds)}
    return np.array([fold_of[g] for g in groups])


def exact_top_k(queries: np.ndarray, base: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k, as FAISS's flat index computes it: (n, k) similarities and rows, best first."""
    k = min(k, len(base))
    sims = queries @ base.T
    idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    part = np.take_along_axis(sims, idx, axis=1)
    order = np.argsort(-part, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(idx, order, axis=1)
