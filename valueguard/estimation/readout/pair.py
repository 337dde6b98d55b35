"""The pair read-out: the value model, and a stacker that also reads the prompt and the response *together*.

Why: the value model reads the response's own embedding and its neighbours, so it reads topic: a harmful answer
that complies lands next to refusals on the same topic. Encoding (prompt, response) as one input (MiniLM's pair
input, both segments attending to each other) gives a vector of how the answer relates to the request. A small
network (`stacker.py`) reads that 384-d pair vector together with the value model's logits for P(against) and
P(upholds) of every value; its training features are out of fold (grouped by prompt), so it learns how far to
trust a value model that has not seen the row. Measured by grouped 5-fold cross-validation over the 4,988
reference rows (docs/quality.md, `valueguard eval --compare`). A call without a prompt gets the value model's
answer unchanged (the pair needs both halves).

The stacker also reads the *context shift*: the pair pass's response-token vector minus the response embedded
alone (the query vector the value model already has, so it costs no pass). It is how much the request changes
the way the answer reads, with the topic both vectors share taken out. Measured over saved out-of-fold features
(docs/quality.md, "The context shift"): scored AP +0.035, FULCRA AP +0.004 to +0.020, fewer benign turns above
a violation threshold, stance pairs within a few pairs.

FULCRA answers mostly harmful requests, so the stacker also learns from benign anchors (ReadOutFit.anchors:
plain helpful HH-RLHF chat, valueguard.reference.benign) as working against nothing: without them a bread recipe
reads like the drug recipes beside it. They are training rows of the stacker only, never neighbours or evidence.

Fitting the stacker costs five value-model fits and one pair encoding per row, too slow for `index build`: the
package ships the stacker that `valueguard train` fitted on the default FULCRA files (`trained/`, with a training
manifest: data hash, seeds, hyper-parameters, sha256). `fit` uses it only when the rows it is given are exactly
the rows it was trained on (same data hash); any other rows (a held-out fold, a user's own reference set) get a
fresh fit. Stored pickle-free in the index folder: `pair/value_model.npz`, `pair/stacker.npz` and
`pair/encoder.json` (the pooling and pair length the stacker was fitted on, which prediction uses, and what it was
fitted on: shipped or fitted, the anchors' fingerprint; `is_current` compares those with what a rebuild would read).
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
from valueguard.estimation.readout.stacker import STACKER_VERSION, AnchorFeatures, Stacker
from valueguard.estimation.readout.value_model import NEIGHBOURS, ValueModelReadOut
from valueguard.index.manifest import Manifest, file_error, format_text
from valueguard.reference.benign import anchors_sha256
from valueguard.values import N_VALUES

__all__ = ["PAIR_MAX_TOKENS", "PAIR_POOLING", "STACKER_VERSION", "PairEncoder", "PairReadOut", "Stacker",
           "anchor_features", "stacker_inputs", "data_hash", "out_of_fold", "shipped_stacker", "ShippedStacker"]

# How a pair pass becomes features: its prompt tokens and its response tokens mean-pooled apart (PairEncoder).
PAIR_POOLING = "segments"
# How many tokens of the pair the pass reads (prompt and response, truncated longest first); None: the model's
# maximum. A shorter pass is cheaper (128 tokens: 0.55x the time), but measured end to end it read stance a little
# worse (pairs 0.903 -> 0.892; docs/quality.md), so the stacker reads the whole pair. Each index records the
# length its stacker was fitted on (pair/encoder.json) and predicts at that length.
PAIR_MAX_TOKENS: int | None = None
FOLDER = "pair"
# What encoder.json records of how the stacker was fitted (PairReadOut.is_current reads it back).
FIT_RECORD = ("stacker", "shipped_sha256", "anchors", "anchors_sha256")
STACKER_FILE = "stacker.npz"
ENCODER_FILE = "encoder.json"
FOLDS = 5
SEED = 0
TRAINED_DIR = Path(__file__).parent / "trained"
TRAINED_MANIFEST = "pair_stacker.json"
# Pair vectors of texts seen before (cross-validation encodes each reference row once per fold otherwise).
_MEMO: OrderedDict[tuple[str, int | None, str, str], np.ndarray] = OrderedDict()
_MEMO_SIZE = 50_000


def data_hash(data: ReadOutFit, model_id: str) -> str:
    """sha256 of what a stacker is fitted on: the model, each row's prompt, response and labels, and each benign
    anchor's prompt and response."""
    h = hashlib.sha256(model_id.encode())
    for p, r, v, k in zip(data.prompts, data.responses, data.reference.values, data.reference.label_kinds):
        h.update(b"\x00" + p.encode() + b"\x01" + r.encode() + b"\x02" + str(k).encode() + np.round(v, 4).tobytes())
    if data.anchors is not None and len(data.anchors):  # without anchors, the hash of an index built before them
        h.update(b"\x03anchors")
        for p, r in zip(data.anchors.prompts, data.anchors.responses):
            h.update(b"\x00" + p.encode() + b"\x01" + r.encode())
    return h.hexdigest()


@dataclass
class PairEncoder:
    """(prompt, response) pairs -> pair features, through the ONNX export of the index's model (int8): one pass
    over the pair, its prompt tokens and its response tokens mean-pooled apart (two unit vectors, 2d values).

    Why apart: pooled together, the vector is mostly the shared topic; the response tokens' own mean is how the
    answer reads *given* the request. Measured with the same stacker and folds (docs/quality.md): stance pairs
    0.887 -> 0.906, AP the same."""

    model_id: str
    # None: the model's own maximum (what an index built before PAIR_MAX_TOKENS was fitted on).
    max_tokens: int | None = PAIR_MAX_TOKENS

    def __post_init__(self) -> None:
        from valueguard.embedders.onnx_runtime import OnnxEmbedder

        self._onnx = OnnxEmbedder(self.model_id, quantize=True)

    @property
    def dimension(self) -> int:
        """Values per pair: the model's dimension for each of the two segments."""
        return 2 * int(self._onnx.dimension)

    def encode(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        """Pair features of each (prompt, response), the response read as it is embedded alone (`format_text`:
        without its compliant opener)."""
        read = [format_text(r, None, "response") for r in responses]
        keys = [(self.model_id, self.max_tokens, p, r) for p, r in zip(prompts, read)]
        todo = list(dict.fromkeys(k for k in keys if k not in _MEMO))
        if todo:
            vecs = self._onnx.embed_pair_segments([k[2] for k in todo], [k[3] for k in todo], self.max_tokens)
            for k, v in zip(todo, vecs):
                _MEMO[k] = v
        out = np.vstack([_MEMO[k] for k in keys]) if keys else np.zeros((0, self.dimension), np.float32)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
        return out


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


def stacker_inputs(pair: np.ndarray, response_emb: np.ndarray) -> np.ndarray:
    """What the stacker reads of each row besides the value model: the pair vector (prompt tokens, response tokens)
    and the context shift, its response tokens minus the response embedded alone (3d values, float32)."""
    d = response_emb.shape[1]
    return np.hstack([pair, pair[:, d:] - response_emb]).astype(np.float32)


def anchor_features(data: ReadOutFit, vm: ValueModelReadOut, model_id: str) -> AnchorFeatures | None:
    """The benign anchors of `data` as the stacker reads them: stacker_inputs, and the opinion of the value model
    fitted on all of `data` (an anchor is never a row of it, so that opinion is out of sample)."""
    anchors = data.anchors
    if anchors is None or not len(anchors):
        return None
    sims, idx = exact_top_k(anchors.response_emb, data.response_emb, NEIGHBOURS)
    p = vm.predict(ReadOutInput(list(anchors.responses), list(anchors.prompts), anchors.response_emb,
                                list(anchors.prompt_emb), sims, idx, data.reference, DEFAULT_K, DEFAULT_TAU))
    pair = PairEncoder(model_id).encode(list(anchors.prompts), list(anchors.responses))
    return AnchorFeatures(stacker_inputs(pair, anchors.response_emb), p.against, p.upholds)


@dataclass(frozen=True)
class ShippedStacker:
    """A stacker the package ships, with the sha256 its manifest gives for its file (checked on loading)."""

    stacker: Stacker
    sha256: str


def shipped_stacker(digest: str, trained_dir: Path = TRAINED_DIR) -> ShippedStacker | None:
    """The stacker in `trained_dir` when it was trained on exactly these rows (and its file is intact), else None."""
    manifest = trained_dir / TRAINED_MANIFEST
    if not manifest.is_file():
        return None
    meta = json.loads(manifest.read_text(encoding="utf-8"))
    path = trained_dir / str(meta.get("file", ""))
    if meta.get("data_sha256") != digest or not path.is_file():
        return None
    # Trained on features this code no longer makes (another pooling, pair length or stacker version): refit.
    if (meta.get("pair_pooling") != PAIR_POOLING or meta.get("pair_max_tokens") != PAIR_MAX_TOKENS
            or meta.get("stacker_version") != STACKER_VERSION):
        return None
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    if sha256 != meta.get("sha256"):
        return None
    return ShippedStacker(Stacker.load(path), sha256)


class PairReadOut:
    """The default read-out: the value model, refined per value by the (prompt, response) pair vector (ReadOut)."""

    name: ClassVar[str] = "pair"
    neighbours: ClassVar[int] = NEIGHBOURS
    reads_prompt: ClassVar[bool] = True
    files: ClassVar[tuple[str, ...]] = (FOLDER,)
    learns_from_anchors: ClassVar[bool] = True

    def __init__(self, vm: ValueModelReadOut, stacker: Stacker, model_id: str, info: dict[str, Any] | None = None,
                 max_tokens: int | None = PAIR_MAX_TOKENS) -> None:
        self.vm, self.stacker, self.info = vm, stacker, info or {}
        self.encoder = PairEncoder(model_id, max_tokens)

    @classmethod
    def fit(cls, data: ReadOutFit, *, use_shipped: bool = True, trained_dir: Path | None = None) -> PairReadOut:
        """The value model on `data`, and the stacker: the shipped one when `data` is exactly what it was trained
        on, else fitted on out-of-fold value-model predictions (`use_shipped=False`: always fitted)."""
        from valueguard.config import default_model

        model_id = data.model_id or default_model()
        vm = ValueModelReadOut.fit(data)
        digest = data_hash(data, model_id)
        shipped = shipped_stacker(digest, trained_dir or TRAINED_DIR) if use_shipped else None
        anchors = data.anchors
        turns = list(zip(anchors.prompts, anchors.responses)) if anchors is not None else []
        info: dict[str, Any] = {"data_sha256": digest, "anchors": len(turns), "anchors_sha256": anchors_sha256(turns)}
        if shipped is not None:
            return cls(vm, shipped.stacker, model_id, {"stacker": "shipped", "shipped_sha256": shipped.sha256, **info})
        vm_against, vm_upholds = out_of_fold(data)
        pair = PairEncoder(model_id).encode(list(data.prompts), list(data.responses))
        stacker = Stacker.fit(stacker_inputs(pair, data.response_emb), vm_against, vm_upholds, data.reference,
                              anchors=anchor_features(data, vm, model_id))
        return cls(vm, stacker, model_id, {"stacker": "fitted", **info})

    def predict(self, data: ReadOutInput) -> ReadOutPrediction:
        p = self.vm.predict(data)
        rows = [i for i, q in enumerate(data.prompts) if q]
        if not rows:
            return p
        pair = self.encoder.encode([str(data.prompts[i]) for i in rows], [data.responses[i] for i in rows])
        against, upholds = p.against.copy(), p.upholds.copy()
        against[rows], upholds[rows] = self.stacker.predict(stacker_inputs(pair, data.response_emb[rows]),
                                                            p.against[rows], p.upholds[rows])
        return ReadOutPrediction(against, upholds)

    def save(self, directory: Path) -> list[str]:
        folder = Path(directory) / FOLDER
        folder.mkdir(exist_ok=True)
        written = [f"{FOLDER}/{name}" for name in self.vm.save(folder)]
        self.stacker.save(folder / STACKER_FILE)
        # How the stacker was fitted, beside how it reads: is_current compares it with what a rebuild would read.
        spec: dict[str, Any] = {"pooling": PAIR_POOLING, "max_tokens": self.encoder.max_tokens}
        spec.update((k, self.info[k]) for k in FIT_RECORD if k in self.info)
        (folder / ENCODER_FILE).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
        return [*written, f"{FOLDER}/{STACKER_FILE}", f"{FOLDER}/{ENCODER_FILE}"]

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> PairReadOut:
        folder = Path(directory) / FOLDER
        vm = ValueModelReadOut.load(folder, manifest)
        path = folder / STACKER_FILE
        try:
            stacker = Stacker.load(path)
        except Exception as e:  # zipfile.BadZipFile, KeyError of a missing array, ValueError...
            raise file_error(path, "readout", f"not a readable stacker ({type(e).__name__}: {str(e)[:100]})") from None
        if stacker.pair_dimension != 3 * manifest.dimension:
            raise file_error(path, "dimension", f"the stacker reads {stacker.pair_dimension} pair features, the "
                             f"manifest's {manifest.dimension}-dimensional model gives {3 * manifest.dimension}")
        spec = folder / ENCODER_FILE
        return cls(vm, stacker, manifest.model, _fit_record(spec), max_tokens=_encoder_max_tokens(spec))

    def is_current(self, anchors_sha256: str, trained_dir: Path | None = None) -> bool:
        """False when a rebuild would fit another stacker: other benign anchors, or a shipped stacker the package
        has since replaced (`make train`), or an index that does not say (built before either was recorded)."""
        if self.info.get("anchors_sha256") != anchors_sha256:
            return False
        if self.info.get("stacker") == "shipped":
            manifest = (trained_dir or TRAINED_DIR) / TRAINED_MANIFEST
            try:
                shipped = json.loads(manifest.read_text(encoding="utf-8")).get("sha256")
            except (OSError, ValueError):
                return False
            return bool(shipped == self.info.get("shipped_sha256"))
        return self.info.get("stacker") == "fitted"


def _fit_record(path: Path) -> dict[str, Any]:
    """What encoder.json says of how the stacker was fitted ({} for an index built before it said)."""
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # _encoder_max_tokens reports a bad file; a missing one is an older index
    if not isinstance(spec, dict):
        return {}
    return {k: spec[k] for k in FIT_RECORD if k in spec}


def _encoder_max_tokens(path: Path) -> int | None:
    """The pair length the index's stacker was fitted on. No file: an index built before the pair length was
    set, fitted on the model's full length, which None keeps."""
    if not path.is_file():
        return None
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise file_error(path, "encoder", f"not valid JSON ({e})") from None
    if not isinstance(spec, dict):
        raise file_error(path, "encoder", f"must be a JSON object, got {type(spec).__name__}")
    if spec.get("pooling") != PAIR_POOLING:
        raise file_error(path, "pooling", f"the stacker was fitted on {spec.get('pooling')!r} pair features, this "
                         f"valueguard makes {PAIR_POOLING!r} ones")
    tokens = spec.get("max_tokens")
    if tokens is not None and (not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 8):
        raise file_error(path, "max_tokens", f"must be a whole number of tokens of at least 8 or null, got {tokens!r}")
    return tokens
