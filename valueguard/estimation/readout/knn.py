"""The kNN read-out: the k evidence neighbours' softmax-weighted share of labels against (and for) each value.

The baseline the value model is measured against (README, "Estimation quality"); it has no files and needs no
fitting. Its values are the neighbours' weighted mean label, as before the value model existed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from valueguard.estimation.evidence import combine
from valueguard.estimation.readout.base import ReadOutFit, ReadOutInput, ReadOutPrediction

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.index.manifest import Manifest


class KnnReadOut:
    """Plain kNN over the evidence neighbours (ReadOut protocol, valueguard/estimation/readout/base.py)."""

    name: ClassVar[str] = "knn"
    neighbours: ClassVar[int] = 0  # the evidence's k is all it reads
    reads_prompt: ClassVar[bool] = False
    files: ClassVar[tuple[str, ...]] = ()
    learns_from_anchors: ClassVar[bool] = False

    @classmethod
    def fit(cls, data: ReadOutFit) -> KnnReadOut:
        return cls()

    def predict(self, data: ReadOutInput) -> ReadOutPrediction:
        sims, idx = data.sims[:, :data.k], data.idx[:, :data.k]
        values, weights, _ = combine(sims, idx, data.reference.values, data.tau)
        against = np.einsum("nk,nkv->nv", weights, data.reference.against[idx].astype(np.float64))
        upholds = np.einsum("nk,nkv->nv", weights, data.reference.upholds[idx].astype(np.float64))
        return ReadOutPrediction(against, upholds, values)

    def save(self, directory: Path) -> list[str]:
        return []

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> KnnReadOut:
        return cls()

    def is_current(self, anchors_sha256: str) -> bool:
        return True
