"""The pair read-out's stacker: a small neural network over [pair vector, value-model logits], a seed ensemble.

Why a network and not one logistic model per value: the evidence that an answer complies with a harmful request
lies in how the pair vector and the value model's opinion combine, and the combination differs by value. Measured
by grouped 5-fold cross-validation over the same out-of-fold features (docs/quality.md): one hidden layer beat the
per-value logistic stacker on FULCRA AP, scored AP and mean r; one seed alone moved AP by up to 0.014, so the
shipped stacker averages several seeds. All 20 outputs (P(against), P(upholds) for each value) share the hidden
layer, so a rare value borrows what the common ones learnt.

Fitted with torch (imported only to fit; sentence-transformers already requires it); predicted with numpy, so a
guarded call needs no torch. Stored pickle-free as one .npz of stacked arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valueguard.estimation.readout.base import ReferenceArrays
from valueguard.estimation.readout.value_model import _sigmoid
from valueguard.values import N_VALUES

# 3: the inputs gained the context shift (pair.py, stacker_inputs): a version-2 stacker reads other features.
# 4: the pair pass and the response embedding read the response without its compliant opener (index.openers).
# 5: both read typographic punctuation in its ASCII form (index.typography).
STACKER_VERSION = 5
# Chosen by grouped cross-validation (docs/quality.md, "How the stacker was chosen").
HIDDEN = 256
DROPOUT = 0.2
WEIGHT_DECAY = 1e-3
EPOCHS = 40
BATCH = 64
LEARNING_RATE = 1e-3
SEEDS = (0, 1, 2, 3, 4)
# Benign anchors (valueguard.reference.benign) count this much each against a labelled row, and teach only the
# P(against) outputs (their P(upholds) is unknown, so it is not trained). Chosen by grouped cross-validation
# (docs/quality.md): weight 1 cut benign false alarms the most but cost ~0.01 AP and stance pairs; 0.25 keeps
# both within seed noise.
ANCHOR_WEIGHT = 0.25


def hyper_parameters() -> dict[str, object]:
    """What the training manifest records of how the stacker was fitted."""
    return {"kind": "mlp", "hidden": HIDDEN, "dropout": DROPOUT, "epochs": EPOCHS, "batch": BATCH,
            "learning_rate": LEARNING_RATE, "weight_decay": WEIGHT_DECAY, "seeds": list(SEEDS),
            "anchor_weight": ANCHOR_WEIGHT}


@dataclass(frozen=True)
class AnchorFeatures:
    """Benign anchors as the stacker reads them: their pair vectors and the value model's opinion of them."""

    pair: np.ndarray  # (a, pair dimension)
    vm_against: np.ndarray  # (a, 10)
    vm_upholds: np.ndarray  # (a, 10)


def features(pair: np.ndarray, vm_against: np.ndarray, vm_upholds: np.ndarray) -> np.ndarray:
    """[pair vector, logit P(against) for each value, logit P(upholds) for each value], float32."""
    def logit(p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-4, 1 - 1e-4)
        return np.log(p / (1 - p))

    return np.column_stack([pair, logit(vm_against), logit(vm_upholds)]).astype(np.float32)


def _gelu(x: np.ndarray) -> np.ndarray:
    # The tanh form, as the network is trained with (numpy has no erf).
    return 0.5 * x * (1.0 + np.tanh(0.7978845608028654 * (x + 0.044715 * x ** 3)))


@dataclass
class Stacker:
    """A seed ensemble of one-hidden-layer networks: inputs -> HIDDEN (GELU) -> 20 logits (against, then upholds).

    float32 arrays (as trained), stacked over members: w1 (m, d, h), b1 (m, h), w2 (m, h, 20), b2 (m, 20)."""

    w1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: np.ndarray

    @property
    def input_dimension(self) -> int:
        """The length of the feature rows the stacker reads (pair features + 20)."""
        return int(self.w1.shape[1])

    @property
    def pair_dimension(self) -> int:
        """The length of the pair features it was fitted on (pair.stacker_inputs)."""
        return self.input_dimension - 2 * N_VALUES

    @classmethod
    def fit(cls, pair: np.ndarray, vm_against: np.ndarray, vm_upholds: np.ndarray, ref: ReferenceArrays,
            seeds: tuple[int, ...] = SEEDS, anchors: AnchorFeatures | None = None) -> Stacker:
        """One network per seed, trained with BCE on each row's against / upholds labels, and on each benign
        anchor as working against nothing (weight ANCHOR_WEIGHT, its upholds outputs untrained)."""
        import torch

        x = features(pair, vm_against, vm_upholds)
        y = np.column_stack([ref.against, ref.upholds]).astype(np.float32)
        weights = None
        if anchors is not None and len(anchors.pair):
            a = len(anchors.pair)
            x = np.vstack([x, features(anchors.pair, anchors.vm_against, anchors.vm_upholds)])
            y = np.vstack([y, np.zeros((a, 2 * N_VALUES), np.float32)])
            mask = np.ones_like(y)
            mask[len(pair):, N_VALUES:] = 0
            row_weight = np.r_[np.ones(len(pair)), np.full(a, ANCHOR_WEIGHT)].astype(np.float32)
            weights = (torch.from_numpy(mask), torch.from_numpy(row_weight))
        threads = torch.get_num_threads()
        members = []
        try:
            torch.set_num_threads(1)  # small matrices: one thread is as fast, and results do not vary with cores
            for seed in seeds:
                members.append(_train_member(torch, torch.from_numpy(x), torch.from_numpy(y), seed, weights))
        finally:
            torch.set_num_threads(threads)
        return cls(*(np.stack([m[i] for m in members]) for i in range(4)))

    def __post_init__(self) -> None:
        arrays = (self.w1, self.b1, self.w2, self.b2)
        self.w1, self.b1, self.w2, self.b2 = (np.asarray(a, np.float32) for a in arrays)
        m, d, h = self.w1.shape
        # Every member's first layer as one (d, m * h) matrix: one product per call instead of m (0.39 ms against
        # 0.64 ms for a row, measured on one core).
        self._first = np.ascontiguousarray(self.w1.transpose(1, 0, 2).reshape(d, m * h))
        self._first_bias = self.b1.reshape(-1)

    def predict(self, pair: np.ndarray, vm_against: np.ndarray, vm_upholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean over members of each output's sigmoid: (P(against), P(upholds)), each (n, 10)."""
        x = features(pair, vm_against, vm_upholds)
        m, _, h = self.w1.shape
        hidden = _gelu(x @ self._first + self._first_bias).reshape(len(x), m, h)
        logits = np.einsum("nmh,mho->nmo", hidden, self.w2) + self.b2[None]
        out = _sigmoid(logits).mean(axis=1).astype(np.float64)
        return out[:, :N_VALUES], out[:, N_VALUES:]

    def save(self, path: Path) -> None:
        """Write the weights as one .npz (no pickle)."""
        with open(path, "wb") as f:
            np.savez(f, version=np.array(STACKER_VERSION), w1=self.w1, b1=self.b1, w2=self.w2, b2=self.b2)

    @classmethod
    def load(cls, path: Path) -> Stacker:
        """Read weights `save` wrote; another version is a ValueError that says to rebuild."""
        with np.load(path, allow_pickle=False) as z:
            version = int(z["version"])
            if version != STACKER_VERSION:
                raise ValueError(f"stacker version {version}, this valueguard reads {STACKER_VERSION}: rebuild the "
                                 "index (valueguard index build)")
            arrays = [np.asarray(z[k], np.float32) for k in ("w1", "b1", "w2", "b2")]
        w1, b1, w2, b2 = arrays
        m, d, h = w1.shape
        if b1.shape != (m, h) or w2.shape != (m, h, 2 * N_VALUES) or b2.shape != (m, 2 * N_VALUES):
            raise ValueError(f"inconsistent stacker shapes {[a.shape for a in arrays]}")
        return cls(w1, b1, w2, b2)


def _train_member(torch, x, y, seed: int, weights=None) -> tuple[np.ndarray, ...]:
    """One network; `weights`: (mask of trained outputs, weight of each row), else every output of every row
    counts alike."""
    nn = torch.nn
    torch.manual_seed(seed)
    first, last = nn.Linear(x.shape[1], HIDDEN), nn.Linear(HIDDEN, 2 * N_VALUES)
    net = nn.Sequential(nn.Dropout(DROPOUT), first, nn.GELU(approximate="tanh"), nn.Dropout(DROPOUT), last)
    opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
    loss = nn.BCEWithLogitsLoss()
    each = nn.BCEWithLogitsLoss(reduction="none")
    order = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(EPOCHS):
        for rows in torch.randperm(len(x), generator=order).split(BATCH):
            opt.zero_grad()
            if weights is None:
                batch_loss = loss(net(x[rows]), y[rows])
            else:
                mask, row_weight = weights[0][rows], weights[1][rows]
                per_row = (each(net(x[rows]), y[rows]) * mask).sum(1) / mask.sum(1)
                batch_loss = (per_row * row_weight).sum() / row_weight.sum()
            batch_loss.backward()
            opt.step()
    with torch.no_grad():
        return (first.weight.T.numpy().copy(), first.bias.numpy().copy(), last.weight.T.numpy().copy(),
                last.bias.numpy().copy())
