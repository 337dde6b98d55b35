"""The pair read-out: the value model, and a stacker that also reads the prompt and the response *together*.

Why: the value model reads the response's own embedding and its neighbours, so it reads topic: a harmful answer
that complies lands next to refusals on the same topic. Encoding (prompt, response) as one input (MiniLM's pair
input, both segments attending to each other) gives a vector of how the answer relates to the request. Per value,
a logistic model reads that 384-d pair vector together with the value model's logits for P(against) and
P(upholds); its training features are out of fold (grouped by prompt), so it learns how far to trust a value
model that has not seen the row. Measured by grouped 5-fold cross-validation over the 4,988 reference rows
(docs/quality.md, `valueguard eval --compare`): scored AP +0.03 and mean r +0.02 over the value model, FULCRA
AP about the same. A call without a prompt gets the value model's answer unchanged (the pair needs both halves).

Fitting the stacker costs five value-model fits and one pair encoding per row, too slow for `index build`: the
package ships the stacker that `valueguard train` fitted on the default FULCRA files (`trained/`, with a training
manifest: data hash, seed, hyper-parameters, sha256). `fit` uses it only when the rows it is given are exactly
the rows it was trained on (same data hash); any other rows (a held-out fold, a user's own reference set) get a
fresh fit. Stored pickle-free in the index folder: `pair/value_model.npz` and `pair/stacker.npz`.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
from valueguard.estimation.folds import exact_top_k, group_folds
from valueguard.estimation.readout.base import ReadOutFit, ReadOutInput, ReadOutPrediction, ReferenceArrays
from valueguard.estimation.readout.value_model import (
    NEIGHBOURS, ValueModelReadOut, _logit, _sigmoid, fit_logistic,
)
from valueguard.index.manifest import Manifest, file_error
from valueguard.values import N_VALUES

STACKER_VERSION = 1
FOLDER = "pair"
STACKER_FILE = "stacker.npz"
FOLDS = 5
SEED = 0
# Chosen by grouped cross-validation among 0.1, 0.3 and 1.0 (1.0: best mean r, AP within 0.005 of the best).
STACKER_L2 = 1.0
TRAINED_DIR = Path(__file__).parent / "trained"
TRAINED_MANIFEST = "pair_stacker.json"
# Pair vectors of texts seen before (cross-validation encodes each reference row once per fold otherwise).
_MEMO: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()
_MEMO_SIZE = 50_000


def data_hash(data: ReadOutFit, model_id: str) -> str:
    """sha256 of what a stacker is fitted on: the model, and each row's prompt, response and labels."""
    h = hashlib.sha256(model_id.encode())
    for p, r, v, k in zip(data.prompts, data.responses, data.reference.values, data.reference.label_kinds):
        h.update(b"\x00" + p.encode() + b"\x01" + r.encode() + b"\x02" + str(k).encode() + np.round(v, 4).tobytes())
    return h.hexdigest()


@dataclass
class PairEncoder:
    """(prompt, response) pairs -> unit pair vectors, through the ONNX export of the index's model (int8)."""

    model_id: str

    def __post_init__(self) -> None:
        from valueguard.embedders.onnx_runtime import OnnxEmbedder

        self._onnx = OnnxEmbedder(self.model_id, quantize=True)

    def encode(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        keys = [(self.model_id, p, r) for p, r in zip(prompts, responses)]
        todo = list(dict.fromkeys(k for k in keys if k not in _MEMO))
        if todo:
            vecs = self._onnx.embed_pairs([p for _, p, _ in todo], [r for _, _, r in todo])
            for k, v in zip(todo, vecs):
                _MEMO[k] = v
        out = np.vstack([_MEMO[k] for k in keys]) if keys else np.zeros((0, self._onnx.dimension), np.float32)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
        return out


def _design(pair: np.ndarray, against: np.ndarray, upholds: np.ndarray, v: int) -> np.ndarray:
    p_a = np.clip(against[:, v], 1e-4, 1 - 1e-4)
    p_u = np.clip(upholds[:, v], 1e-4, 1 - 1e-4)
    return np.column_stack([pair, np.log(p_a / (1 - p_a)), np.log(p_u / (1 - p_u))])


@dataclass
class Stacker:
    """Per value, logistic weights (bias last) over [pair vector, value-model logit against, logit upholds]."""

    against: np.ndarray  # (10, d + 3)
    upholds: np.ndarray  # (10, d + 3)

    @classmethod
    def fit(cls, pair: np.ndarray, vm_against: np.ndarray, vm_upholds: np.ndarray, ref: ReferenceArrays) -> Stacker:
        a, u = [], []
        for v in range(N_VALUES):
            x = _design(pair, vm_against, vm_upholds, v)
            a.append(fit_logistic(x, ref.against[:, v], STACKER_L2))
            u.append(fit_logistic(x, ref.upholds[:, v], STACKER_L2))
        return cls(np.vstack(a), np.vstack(u))

    def predict(self, pair: np.ndarray, vm_against: np.ndarray, vm_upholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        against, upholds = np.zeros_like(vm_against), np.zeros_like(vm_upholds)
        for v in range(N_VALUES):
            x = _design(pair, vm_against, vm_upholds, v)
            against[:, v], upholds[:, v] = _sigmoid(_logit(x, self.against[v])), _sigmoid(_logit(x, self.upholds[v]))
        return against, upholds

    def save(self, path: Path) -> None:
        with open(path, "wb") as f:
            np.savez(f, version=np.array(STACKER_VERSION), against=self.against, upholds=self.upholds)

    @classmethod
    def load(cls, path: Path) -> Stacker:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != STACKER_VERSION:
                raise ValueError(f"stacker version {int(z['version'])}, this valueguard reads {STACKER_VERSION}")
            return cls(np.asarray(z["against"], np.float64), np.asarray(z["upholds"], np.float64))


def _subset(data: ReadOutFit, rows: np.ndarray) -> ReadOutFit:
    ref = data.reference
    return ReadOutFit([data.responses[i] for i in rows], [data.prompts[i] for i in rows], data.response_emb[rows],
                      data.prompt_emb[rows], ReferenceArrays(ref.values[rows], ref.against[rows], ref.upholds[rows],
                                                             ref.label_kinds[rows]))


def out_of_fold(data: ReadOutFit, folds: int = FOLDS, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """Each row's value-model P(against), P(upholds) from a model fitted without its prompt group."""
    n = len(data.responses)
    against, upholds = np.zeros((n, N_VALUES)), np.zeros((n, N_VALUES))
    fold = group_folds(list(data.prompts), folds, seed)
    for f in np.unique(fold):
        te, tr = np.where(fold == f)[0], np.where(fold != f)[0]
        part = _subset(data, tr)
        vm = ValueModelReadOut.fit(part)
        sims, idx = exact_top_k(data.response_emb[te], part.response_emb, NEIGHBOURS)
        p = vm.predict(ReadOutInput([data.responses[i] for i in te], [data.prompts[i] for i in te],
                                    data.response_emb[te], list(data.prompt_emb[te]), sims, idx, part.reference,
                                    DEFAULT_K, DEFAULT_TAU))
        against[te], upholds[te] = p.against, p.upholds
    return against, upholds


def shipped_stacker(digest: str, trained_dir: Path = TRAINED_DIR) -> Stacker | None:
    """The stacker in `trained_dir` when it was trained on exactly these rows (and its file is intact), else None."""
    manifest = trained_dir / TRAINED_MANIFEST
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    path = trained_dir / str(meta.get("file", ""))
    if meta.get("data_sha256") != digest or not path.is_file():
        return None
    if hashlib.sha256(path.read_bytes()).hexdigest() != meta.get("sha256"):
        return None
    return Stacker.load(path)


class PairReadOut:
    """The default read-out: the value model, refined per value by the (prompt, response) pair vector (ReadOut)."""

    name: ClassVar[str] = "pair"
    neighbours: ClassVar[int] = NEIGHBOURS
    reads_prompt: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (FOLDER,)

    def __init__(self, vm: ValueModelReadOut, stacker: Stacker, model_id: str, info: dict[str, Any] | None = None) -> None:
        self.vm, self.stacker, self.encoder, self.info = vm, stacker, PairEncoder(model_id), info or {}

    @classmethod
    def fit(cls, data: ReadOutFit, *, use_shipped: bool = True, trained_dir: Path | None = None) -> PairReadOut:
        """The value model on `data`, and the stacker: the shipped one when `data` is exactly what it was trained
        on, else fitted on out-of-fold value-model predictions (`use_shipped=False`: always fitted)."""
        from valueguard.config import default_model

        model_id = data.model_id or default_model()
        vm = ValueModelReadOut.fit(data)
        digest = data_hash(data, model_id)
        stacker = shipped_stacker(digest, trained_dir or TRAINED_DIR) if use_shipped else None
        if stacker is not None:
            return cls(vm, stacker, model_id, {"stacker": "shipped", "data_sha256": digest})
        vm_against, vm_upholds = out_of_fold(data)
        pair = PairEncoder(model_id).encode(list(data.prompts), list(data.responses))
        return cls(vm, Stacker.fit(pair, vm_against, vm_upholds, data.reference), model_id,
                   {"stacker": "fitted", "data_sha256": digest})

    def predict(self, data: ReadOutInput) -> ReadOutPrediction:
        p = self.vm.predict(data)
        rows = [i for i, q in enumerate(data.prompts) if q]
        if not rows:
            return p
        pair = self.encoder.encode([str(data.prompts[i]) for i in rows], [data.responses[i] for i in rows])
        against, upholds = p.against.copy(), p.upholds.copy()
        against[rows], upholds[rows] = self.stacker.predict(pair, p.against[rows], p.upholds[rows])
        return ReadOutPrediction(against, upholds)

    def save(self, directory: Path) -> list[str]:
        folder = Path(directory) / FOLDER
        folder.mkdir(exist_ok=True)
        written = [f"{FOLDER}/{name}" for name in self.vm.save(folder)]
        self.stacker.save(folder / STACKER_FILE)
        return [*written, f"{FOLDER}/{STACKER_FILE}"]

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> PairReadOut:
        folder = Path(directory) / FOLDER
        vm = ValueModelReadOut.load(folder, manifest)
        path = folder / STACKER_FILE
        try:
            stacker = Stacker.load(path)
        except Exception as e:  # zipfile.BadZipFile, KeyError of a missing array, ValueError...
            raise file_error(path, "readout", f"not a readable stacker ({type(e).__name__}: {str(e)[:100]})") from None
        if stacker.against.shape != (N_VALUES, manifest.dimension + 3):
            raise file_error(path, "dimension", f"the stacker reads {stacker.against.shape[1] - 3}-dimensional pair "
                             f"vectors, the manifest says {manifest.dimension}")
        return cls(vm, stacker, manifest.model)
