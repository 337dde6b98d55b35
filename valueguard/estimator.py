"""ValueEstimator: embed a response, find its nearest labelled FULCRA neighbours, turn them into a vector."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from valueguard.config import default_index_dir
from valueguard.embedding import Embedder, make_embedder
from valueguard.index import ValueIndex, format_text
from valueguard.value_model import NEIGHBOURS, ValueModel, polarity
from valueguard.values import VALUE_NAMES, ValueVector
from valueguard.windows import text_windows

# Chosen on held-out data (README, "How the estimator was chosen"; `make choice`): among k 1-30 and tau
# 0-0.1, k=10 with tau=0.05 is within 0.003 of the best mean violation AP, keeps mean r near 0.59 and shows
# ten neighbours of evidence.
DEFAULT_K = 10
DEFAULT_TAU = 0.05


class Neighbor(BaseModel):
    """One piece of evidence: a labelled reference row close to the response."""

    model_config = ConfigDict(frozen=True)
    id: str = Field(description="Reference row id, e.g. 'trustworthy_data.dev:17'.")
    source: str = Field(description="Who wrote the reference response.")
    label_kind: str = Field(description="'annotated' or 'model'.")
    similarity: float = Field(description="Cosine similarity to the response, in [-1, 1].")
    weight: float = Field(description="Share of this neighbour in the estimate; the weights sum to 1.")
    values: dict[str, float] = Field(description="The neighbour's labelled value scores.")
    response: str = Field(description="A snippet of the neighbour's response.")


class Estimate(BaseModel):
    """A response's estimated value vector and the evidence behind it."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    values: ValueVector = Field(
        description="The estimated scores, each in [-1, 1]: the expected label, P(upholds) - P(works against).")
    against: dict[str, float] = Field(
        description="For each value, the estimated probability that the response works against it (calibrated "
        "on held-out reference data when the index has a value model; the neighbours' weighted share otherwise).")
    neighbors: list[Neighbor] = Field(description="The k nearest reference rows, most similar first.")
    confidence: float = Field(
        description="In [0, 1]: the neighbours' weighted similarity times their agreement (1 - mean weighted "
        "spread of their labels). Low when the response is unlike the reference data or its neighbours disagree."
    )
    windows: int = Field(default=1, description="How many windows a long text was read as.")
    window: list[int] | None = Field(
        default=None, description="[start, end) characters of the window that decided, when the text was split.")

    @property
    def violation(self) -> float:
        """The highest probability of working against any value: what violation metrics rank by."""
        return max(self.against.values())

    def to_dict(self, *, neighbors: int | None = None) -> dict:
        out = {
            "values": {k: round(v, 4) for k, v in self.values.items()},
            "against": {k: round(v, 4) for k, v in self.against.items()},
            "confidence": round(self.confidence, 4),
            "neighbors": [n.model_dump() for n in self.neighbors[:neighbors]],
        }
        if self.window is not None:
            out["window"] = self.window
        return out


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


@dataclass
class ReadOut:
    """What the neighbours of n queries say: the k neighbours of evidence with their weights, and the values."""

    sims: np.ndarray  # (n, k)
    idx: np.ndarray  # (n, k)
    weights: np.ndarray  # (n, k)
    confidence: np.ndarray  # (n,)
    values: np.ndarray  # (n, 10)
    against: np.ndarray  # (n, 10)


def read_out(wide_sims: np.ndarray, wide_idx: np.ndarray, values: np.ndarray, against_mask: np.ndarray,
             upholds_mask: np.ndarray, *, k: int, tau: float, model: ValueModel | None = None,
             emb: np.ndarray | None = None, prompt_emb: Sequence[np.ndarray | None] | None = None) -> ReadOut:
    """Neighbours (at least k, best first, as row numbers into `values`) -> values and P(against).

    The one place both the estimator and the held-out evaluation turn neighbours into an estimate."""
    sims, idx = wide_sims[:, :k], wide_idx[:, :k]
    vectors, weights, confidence = combine(sims, idx, values, tau)
    if model is None:
        # Plain kNN: the neighbours' weighted share of labels against each value.
        against = np.einsum("nk,nkv->nv", weights, against_mask[idx].astype(np.float64))
        return ReadOut(sims, idx, weights, confidence, vectors, against)
    assert emb is not None
    n = len(emb)
    prompt_emb = list(prompt_emb) if prompt_emb is not None else [None] * n
    against = np.zeros((n, len(VALUE_NAMES)))
    upholds = np.zeros_like(against)
    with_prompt = np.array([p is not None for p in prompt_emb], dtype=bool)
    for mask in (with_prompt, ~with_prompt):
        if not mask.any():
            continue
        g = wide_idx[mask]
        pe = np.vstack([p for p, m in zip(prompt_emb, mask) if m]) if mask is with_prompt else None
        against[mask], upholds[mask] = model.predict(
            wide_sims[mask], values[g], against_mask[g], upholds_mask[g], emb[mask], pe)
    return ReadOut(sims, idx, weights, confidence, np.clip(upholds - against, -1.0, 1.0), against)


class ValueEstimator:
    def __init__(self, index: ValueIndex, embedder: Embedder, *, k: int = DEFAULT_K, tau: float = DEFAULT_TAU,
                 batch_size: int = 32, cache_size: int = 4096) -> None:
        """`cache_size`: estimates kept for repeated texts (logs repeat refusals a lot); 0 turns it off."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if embedder.model_id != index.model:
            raise ValueError(f"embedder {embedder.model_id!r} does not match the index's model {index.model!r}")
        self.index, self.embedder, self.k, self.tau, self.batch_size = index, embedder, k, tau, batch_size
        # The value model (when the index has one) reads the prompt's embedding as well; the dialogue text form
        # has the prompt in the embedded text already.
        self.model = index.value_model
        self.reads_prompt = self.model is not None and index.text_form == "response"
        self._against, self._upholds = polarity(index.values, [r.label_kind for r in index.rows])
        # Keyed by the embedded text (and prompt, when read): k, tau and the index are fixed for this estimator.
        self._cache: OrderedDict[tuple[str, str | None], Estimate] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def from_index(cls, directory: str | Path, *, embedder: Embedder | None = None, backend: str | None = None,
                   **kwargs) -> ValueEstimator:
        """`backend`: how queries are embedded when no `embedder` is given ("onnx-int8" by default, see
        valueguard.embedding.make_embedder); the index itself was embedded in fp32 either way."""
        # Verified first (digest included): the embedder is made for the model the index was built with, never
        # for whatever an edited manifest names (an ONNX export of an unknown model would reach for the network).
        manifest = ValueIndex.verified_manifest(directory, model=embedder.model_id if embedder else None)
        embedder = embedder or make_embedder(manifest.model, backend)
        index = ValueIndex.load(directory, model=embedder.model_id)
        return cls(index, embedder, **kwargs)

    @classmethod
    def default(cls, **kwargs) -> ValueEstimator:
        """The estimator over the default index (built by `valueguard index build`)."""
        return cls.from_index(default_index_dir(), **kwargs)

    def estimate(self, response: str, prompt: str | None = None) -> Estimate:
        return self.estimate_batch([response], [prompt])[0]

    def estimate_batch(self, responses: Sequence[str], prompts: Sequence[str | None] | None = None) -> list[Estimate]:
        if prompts is None:
            prompts = [None] * len(responses)
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses must have the same length")
        keys = [(format_text(r, p, self.index.text_form), (p or None) if self.reads_prompt else None)
                for r, p in zip(responses, prompts)]
        found = self._cached(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))  # each distinct text embedded once
        # A long text is read as windows and the worst window decides (README, "Long responses"): truncation
        # would check only its first ~1,000 characters.
        spans = [text_windows(t) for t, _ in missing]
        pieces = [(t[a:b], p) for (t, p), ss in zip(missing, spans) for a, b in ss]
        # Prompts get their own embed call: in one call with the response, the ONNX backend would run the two
        # side by side on one core each, and a long response takes 21 ms on one core against 12.5 ms on two.
        prompts = list(dict.fromkeys(p for _, p in missing if p))
        prompt_emb = dict(zip(prompts, self.embedder.embed(prompts))) if prompts else {}
        estimates: list[Estimate] = []
        for start in range(0, len(pieces), self.batch_size):
            chunk = pieces[start:start + self.batch_size]
            emb = self.embedder.embed([t for t, _ in chunk])
            estimates.extend(self._estimate_embedded(emb, [prompt_emb.get(p) for _, p in chunk]))
        at = 0
        for key, ss in zip(missing, spans):
            windows = estimates[at:at + len(ss)]
            at += len(ss)
            if len(ss) == 1:
                found[key] = windows[0]
                continue
            worst = max(range(len(ss)), key=lambda i: windows[i].violation)
            found[key] = windows[worst].model_copy(update={"window": list(ss[worst]), "windows": len(ss)})
        self._remember({k: found[k] for k in missing})
        return [found[k] for k in keys]

    def _cached(self, keys: Sequence[tuple[str, str | None]]) -> dict[tuple[str, str | None], Estimate]:
        if not self._cache_size:
            return {}
        with self._cache_lock:
            hits = {t: self._cache[t] for t in keys if t in self._cache}
            for t in hits:
                self._cache.move_to_end(t)
        return hits

    def _remember(self, estimates: dict[tuple[str, str | None], Estimate]) -> None:
        if not self._cache_size:
            return
        with self._cache_lock:
            self._cache.update(estimates)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _estimate_embedded(self, emb: np.ndarray, prompt_emb: Sequence[np.ndarray | None]) -> list[Estimate]:
        wide, wide_idx = self.index.search(emb, max(self.k, NEIGHBOURS) if self.model else self.k)
        out = read_out(wide, wide_idx, self.index.values, self._against, self._upholds, k=self.k, tau=self.tau,
                       model=self.model, emb=emb, prompt_emb=prompt_emb)
        sims, idx, weights, confidence, vectors, against = (
            out.sims, out.idx, out.weights, out.confidence, out.values, out.against)
        results = []
        for i in range(len(emb)):
            neighbors = []
            for j in range(idx.shape[1]):
                row = self.index.rows[int(idx[i, j])]
                neighbors.append(Neighbor(
                    id=row.id, source=row.source, label_kind=row.label_kind,
                    similarity=round(float(sims[i, j]), 4), weight=round(float(weights[i, j]), 4),
                    values={n: round(float(x), 4) for n, x in zip(VALUE_NAMES, self.index.values[idx[i, j]])},
                    response=row.response,
                ))
            results.append(Estimate(values=ValueVector(vectors[i]), neighbors=neighbors,
                                    against={n: float(x) for n, x in zip(VALUE_NAMES, against[i])},
                                    confidence=float(confidence[i])))
        return results
