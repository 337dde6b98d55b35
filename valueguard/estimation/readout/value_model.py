"""ValueModel: how the nearest neighbours (and the embeddings themselves) become a value vector.

Plain kNN averages the neighbours' labels, which dilutes the rare negative labels. The value model reads
the same FAISS neighbours as features and adds two linear probes on the embeddings; a small logistic model
over those features gives, for each basic value, the probability that the response works against it
(`against`) and upholds it (`upholds`). The estimated score is the expected label, upholds - against,
which stays in [-1, 1] and keeps FULCRA's meaning (+1 upholds, -1 works against, 0 no connection).

Everything is fitted with numpy at index build time (Newton's method for the logistic parts, closed-form
ridge), on out-of-fold features: each row's features come from neighbours and probes that never saw its
prompt, so the model learns how much to trust neighbours it has not memorised. Two variants are fitted:
one that also reads the prompt's embedding, for calls that pass a prompt, and one for the response alone.
Stored pickle-free as `value_model.npz` beside the index; ValueModelReadOut (below) is its ReadOut. README, "Estimation quality", has the ablation.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from valueguard.estimation.folds import exact_top_k, group_folds
from valueguard.estimation.readout.base import ReadOutFit, ReadOutInput, ReadOutPrediction
from valueguard.index.manifest import Manifest, file_error
from valueguard.values import N_VALUES
from valueguard.values.polarity import polarity

MODEL_VERSION = 1
# Neighbours read as features; the evidence a verdict shows is the first EVIDENCE of them.
NEIGHBOURS = 30
FOLDS = 5
MODEL_FILE = "value_model.npz"
# L2 strengths, chosen on held-out data (README, "Estimation quality"): probes on unit-norm embeddings need
# little regularisation; the meta models have few features and many rows.
PROBE_L2 = 0.3
RIDGE_L2 = 1.0
META_L2 = 1.0
VARIANTS = ("response", "response+prompt")


def _softmax(s: np.ndarray, tau: float) -> np.ndarray:
    z = np.exp((s - s.max(axis=1, keepdims=True)) / tau)
    return z / z.sum(axis=1, keepdims=True)


def neighbour_features(sims: np.ndarray, nvalues: np.ndarray, nneg: np.ndarray, npos: np.ndarray) -> np.ndarray:
    """(n, K) similarities, (n, K, 10) neighbour labels and masks -> (n, 10, F) features per value."""
    n, k = sims.shape
    top = min(10, k)
    w = _softmax(sims[:, :top], 0.05)[:, :, None]
    wall = _softmax(sims, 0.05)[:, :, None]
    neg, pos = nneg.astype(np.float64), npos.astype(np.float64)
    any_neg = neg.max(axis=2)
    # How close the nearest neighbour against this value is, relative to the nearest neighbour of all.
    neg_sim = np.where(nneg, sims[:, :, None], -np.inf).max(axis=1)
    has_neg = np.isfinite(neg_sim)
    gap = np.where(has_neg, neg_sim - sims[:, :1], -0.5)
    per_value = [
        (w * nvalues[:, :top]).sum(axis=1),
        neg[:, :top].mean(axis=1),
        (wall * neg).sum(axis=1),
        pos[:, :top].mean(axis=1),
        (wall * pos).sum(axis=1),
        gap,
        has_neg.astype(np.float64),
        nvalues[:, : min(5, k)].min(axis=1),
    ]
    shared = [any_neg[:, :top].mean(axis=1), sims[:, 0], sims[:, :top].mean(axis=1)]
    f = np.stack(per_value, axis=-1)
    g = np.broadcast_to(np.stack(shared, axis=-1)[:, None, :], (n, N_VALUES, len(shared)))
    return np.concatenate([f, g], axis=-1)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, iters: int = 30) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method; returns weights with the bias last."""
    x = np.hstack([x, np.ones((len(x), 1))])
    w = np.zeros(x.shape[1])
    reg = np.full(x.shape[1], l2)
    reg[-1] = 1e-6  # the bias is not shrunk
    y = y.astype(np.float64)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + reg * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-6:
            break
    return w


def _logit(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x @ w[:-1] + w[-1]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def fit_ridge(x: np.ndarray, y: np.ndarray, l2: float) -> np.ndarray:
    x = np.hstack([x, np.ones((len(x), 1))])
    reg = np.full(x.shape[1], l2)
    reg[-1] = 0.0
    return np.linalg.solve(x.T @ x + np.diag(reg), x.T @ y)


@dataclass
class _Probes:
    """Linear read-outs of the embedding itself: P(against any value) and the 10 scores."""

    violation: np.ndarray  # (d + 1,)
    scores: np.ndarray  # (d + 1, 10)

    @classmethod
    def fit(cls, x: np.ndarray, values: np.ndarray, against: np.ndarray) -> _Probes:
        return cls(fit_logistic(x, np.asarray(against.any(axis=1)), PROBE_L2, iters=15), fit_ridge(x, values, RIDGE_L2))

    def features(self, x: np.ndarray) -> np.ndarray:
        """(n, d) -> (n, 10, 2): the violation logit (shared) and each value's ridge score."""
        violation = np.broadcast_to(_logit(x, self.violation)[:, None], (len(x), N_VALUES))
        scores = x @ self.scores[:-1] + self.scores[-1]
        return np.stack([violation, scores], axis=-1)


@dataclass
class _Meta:
    """Pooled logistic model over (row, value) pairs: standardised features plus a one-hot of the value."""

    mean: np.ndarray
    scale: np.ndarray
    against: np.ndarray
    upholds: np.ndarray

    @staticmethod
    def _design(f: np.ndarray, mean: np.ndarray, scale: np.ndarray) -> np.ndarray:
        n = f.shape[0]
        z = (f - mean) / scale
        onehot = np.broadcast_to(np.eye(N_VALUES), (n, N_VALUES, N_VALUES))
        return np.concatenate([z, onehot], axis=-1).reshape(n * N_VALUES, -1)

    @classmethod
    def fit(cls, f: np.ndarray, against: np.ndarray, upholds: np.ndarray) -> _Meta:
        flat = f.reshape(-1, f.shape[-1])
        mean, scale = flat.mean(axis=0), flat.std(axis=0) + 1e-6
        x = cls._design(f, mean, scale)
        return cls(mean, scale, fit_logistic(x, against.reshape(-1), META_L2),
                   fit_logistic(x, upholds.reshape(-1), META_L2))

    def predict(self, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = self._design(f, self.mean, self.scale)
        shape = f.shape[:2]
        return _sigmoid(_logit(x, self.against)).reshape(shape), _sigmoid(_logit(x, self.upholds)).reshape(shape)


class ValueModel:
    """Fitted read-out for one index. `predict` takes the index's neighbours of each query and its embeddings."""

    def __init__(self, probes: dict[str, _Probes], meta: dict[str, _Meta], info: dict | None = None) -> None:
        self.probes, self.meta, self.info = probes, meta, info or {}

    @property
    def dimension(self) -> int:
        """The embedding dimension the probes read (their weights, less the bias); -1 when they disagree."""
        d = len(self.probes["response"].violation) - 1
        both = self.probes["response+prompt"].violation
        return d if len(both) == 2 * d + 1 and self.probes["response"].scores.shape == (d + 1, N_VALUES) else -1

    @staticmethod
    def _inputs(response_emb: np.ndarray, prompt_emb: np.ndarray | None) -> tuple[str, np.ndarray]:
        if prompt_emb is None:
            return "response", response_emb
        return "response+prompt", np.hstack([response_emb, prompt_emb])

    def predict(self, sims: np.ndarray, nvalues: np.ndarray, nneg: np.ndarray, npos: np.ndarray,
                response_emb: np.ndarray, prompt_emb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """-> (n, 10) P(works against), (n, 10) P(upholds)."""
        variant, x = self._inputs(response_emb, prompt_emb)
        f = np.concatenate([neighbour_features(sims, nvalues, nneg, npos), self.probes[variant].features(x)], -1)
        return self.meta[variant].predict(f)

    @classmethod
    def fit(cls, response_emb: np.ndarray, prompt_emb: np.ndarray, values: np.ndarray, label_kinds: Sequence[str],
            groups: Sequence[Hashable], *, folds: int = FOLDS, seed: int = 0) -> ValueModel:
        """Fit on a labelled reference set. Rows sharing a group (prompt) are never each other's features."""
        against, upholds = polarity(values, label_kinds)
        fold = group_folds(groups, folds, seed)
        probes, meta = {}, {}
        for variant in VARIANTS:
            x = response_emb if variant == "response" else np.hstack([response_emb, prompt_emb])
            parts = []
            for f in np.unique(fold):
                rows, base = np.where(fold == f)[0], np.where(fold != f)[0]
                sims, idx = exact_top_k(response_emb[rows], response_emb[base], NEIGHBOURS)
                g = base[idx]
                nf = neighbour_features(sims, values[g], against[g], upholds[g])
                pf = _Probes.fit(x[base], values[base], against[base]).features(x[rows])
                parts.append((rows, np.concatenate([nf, pf], -1)))
            feats = np.zeros((len(values), N_VALUES, parts[0][1].shape[-1]))
            for rows, f in parts:
                feats[rows] = f
            probes[variant] = _Probes.fit(x, values, against)
            meta[variant] = _Meta.fit(feats, against, upholds)
        return cls(probes, meta, {"rows": len(values), "folds": int(len(np.unique(fold)))})

    def save(self, path: str | Path) -> None:
        """Write the fitted arrays to one .npz (no pickle)."""
        arrays: dict[str, Any] = {"version": np.array(MODEL_VERSION)}  # Any: savez types its **kwds loosely
        for v in VARIANTS:
            p, m = self.probes[v], self.meta[v]
            for name, a in (("violation", p.violation), ("scores", p.scores), ("mean", m.mean),
                            ("scale", m.scale), ("against", m.against), ("upholds", m.upholds)):
                arrays[f"{v}/{name}"] = a
        with open(path, "wb") as f:
            np.savez(f, **arrays)

    @classmethod
    def load(cls, path: str | Path) -> ValueModel:
        """Read a model written by `save` (allow_pickle=False); a ValueError for another version."""
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != MODEL_VERSION:
                raise ValueError(f"{path}: value model version {int(z['version'])}, this valueguard reads "
                                 f"{MODEL_VERSION}")
            probes = {v: _Probes(z[f"{v}/violation"], z[f"{v}/scores"]) for v in VARIANTS}
            meta = {v: _Meta(z[f"{v}/mean"], z[f"{v}/scale"], z[f"{v}/against"], z[f"{v}/upholds"])
                    for v in VARIANTS}
        return cls(probes, meta)


class ValueModelReadOut:
    """The default read-out: a fitted ValueModel over the neighbours and the embeddings (ReadOut protocol)."""

    name: ClassVar[str] = "model"
    neighbours: ClassVar[int] = NEIGHBOURS
    reads_prompt: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (MODEL_FILE,)
    learns_from_anchors: ClassVar[bool] = False

    def __init__(self, model: ValueModel) -> None:
        self.model = model

    @classmethod
    def fit(cls, data: ReadOutFit) -> ValueModelReadOut:
        ref = data.reference
        return cls(ValueModel.fit(data.response_emb, data.prompt_emb, ref.values, list(ref.label_kinds),
                                  list(data.prompts)))

    def predict(self, data: ReadOutInput) -> ReadOutPrediction:
        ref = data.reference
        n = len(data.response_emb)
        against = np.zeros((n, N_VALUES))
        upholds = np.zeros_like(against)
        # The two variants: queries with a prompt read its embedding too, the others the response alone.
        with_prompt = np.array([p is not None for p in data.prompt_emb], dtype=bool).reshape(n)
        for mask in (with_prompt, ~with_prompt):
            if not mask.any():
                continue
            g = data.idx[mask]
            pe = (np.vstack([p for p, m in zip(data.prompt_emb, mask) if m and p is not None]) if mask is with_prompt
                  else None)
            against[mask], upholds[mask] = self.model.predict(
                data.sims[mask], ref.values[g], ref.against[g], ref.upholds[g], data.response_emb[mask], pe)
        return ReadOutPrediction(against, upholds)

    def save(self, directory: Path) -> list[str]:
        self.model.save(Path(directory) / MODEL_FILE)
        return [MODEL_FILE]

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> ValueModelReadOut:
        path = Path(directory) / MODEL_FILE
        try:
            model = ValueModel.load(path)
        except Exception as e:  # zipfile.BadZipFile, KeyError of a missing array, ValueError...
            raise file_error(path, "readout", f"not a readable value model ({type(e).__name__}: {str(e)[:100]})") from None
        if (d := model.dimension) != manifest.dimension:
            raise file_error(path, "dimension", f"the value model reads {d}-dimensional embeddings, the manifest says "
                             f"{manifest.dimension}")
        return cls(model)

    def is_current(self, anchors_sha256: str) -> bool:
        return True
