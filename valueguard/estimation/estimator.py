"""ValueEstimator: embed a response, find its nearest labelled FULCRA neighbours, read them out as a vector.

The read-out is the index's (valueguard/estimation/readout/): `read_out` is the one place both the estimator and
the held-out evaluation (valueguard/quality/heldout.py) turn neighbours into an estimate.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from valueguard.config import default_index_dir
from valueguard.embedders.backends import make_embedder
from valueguard.embedders.base import Embedder
from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
from valueguard.estimation.estimate import Estimate, Neighbor
from valueguard.estimation.evidence import combine
from valueguard.estimation.readout import ReadOut, ReadOutInput
from valueguard.estimation.value_index import ValueIndex
from valueguard.estimation.windows import reading_spans
from valueguard.index.manifest import format_text
from valueguard.values import VALUE_NAMES, ValueVector



@dataclass
class ReadOutResult:
    """What the neighbours of n queries say: the k neighbours of evidence with their weights, and the values."""

    sims: np.ndarray  # (n, k)
    idx: np.ndarray  # (n, k)
    weights: np.ndarray  # (n, k)
    confidence: np.ndarray  # (n,)
    values: np.ndarray  # (n, 10)
    against: np.ndarray  # (n, 10)


def read_out(readout: ReadOut, data: ReadOutInput) -> ReadOutResult:
    """Wide neighbours (at least k, best first) of n queries -> evidence, values and P(against) by `readout`."""
    sims, idx = data.sims[:, :data.k], data.idx[:, :data.k]
    _, weights, confidence = combine(sims, idx, data.reference.values, data.tau)
    p = readout.predict(data)
    values = p.values if p.values is not None else p.upholds - p.against
    return ReadOutResult(sims, idx, weights, confidence, np.clip(values, -1.0, 1.0), p.against)


# An estimate's cache key: the text as read, the prompt when the read-out reads it, max_chars when it sampled the text.
_Key = tuple[str, str | None, int | None]


class ValueEstimator:
    """Estimates value vectors of responses from an index: embed, search, read out (the index's ReadOut)."""

    def __init__(self, index: ValueIndex, embedder: Embedder, *, k: int = DEFAULT_K, tau: float = DEFAULT_TAU,
                 batch_size: int = 32, cache_size: int = 4096) -> None:
        """`cache_size`: estimates kept for repeated texts (logs repeat refusals a lot); 0 turns it off."""
        if k < 1:
            raise ValueError("k must be at least 1")
        if embedder.model_id != index.model:
            raise ValueError(f"embedder {embedder.model_id!r} does not match the index's model {index.model!r}")
        self.index, self.embedder, self.k, self.tau, self.batch_size = index, embedder, k, tau, batch_size
        # A read-out that reads prompts gets them; the dialogue text form has the prompt in the embedded text.
        self.readout = index.readout
        self.reads_prompt = type(self.readout).reads_prompt and index.text_form == "response"
        # Keyed by the embedded text (and prompt, when read, and max_chars, when it sampled the text): k, tau and the
        # index are fixed for this estimator.
        self._cache: OrderedDict[_Key, Estimate] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def from_index(cls, directory: str | Path, *, embedder: Embedder | None = None, backend: str | None = None,
                   **kwargs) -> ValueEstimator:
        """`backend`: how queries are embedded when no `embedder` is given ("onnx-int8" by default, see
        valueguard.embedders.backends.make_embedder); the index itself was embedded in fp32 either way."""
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

    def estimate(self, response: str, prompt: str | None = None, *, max_chars: int | None = None) -> Estimate:
        return self.estimate_batch([response], [prompt], max_chars=max_chars)[0]

    def estimate_batch(self, responses: Sequence[str], prompts: Sequence[str | None] | None = None, *,
                       max_chars: int | None = None) -> list[Estimate]:
        """`max_chars`: of a longer text read only about this many characters, its head, its tail and evenly spaced
        windows between them (windows.sample_spans), so that one estimate's cost stays bounded."""
        if prompts is None:
            prompts = [None] * len(responses)
        if len(prompts) != len(responses):
            raise ValueError("prompts and responses must have the same length")
        texts = [format_text(r, p, self.index.text_form) for r, p in zip(responses, prompts)]
        keys = [(t, (p or None) if self.reads_prompt else None,
                 max_chars if max_chars is not None and len(t) > max_chars else None)
                for t, p in zip(texts, prompts)]
        found = self._cached(keys)
        missing = list(dict.fromkeys(k for k in keys if k not in found))  # each distinct text embedded once
        # A long text is read as windows and the worst window decides (README, "Long responses"): truncation
        # would check only its first ~1,000 characters. A short first or last sentence is read away too, the worst
        # reading deciding (windows.py).
        spans = [reading_spans(t, cap) for t, _, cap in missing]
        pieces = [(t[a:b], p) for (t, p, _), ss in zip(missing, spans) for a, b in ss]
        # Prompts get their own embed call: in one call with the response, the ONNX backend would run the two
        # side by side on one core each, and a long response takes 21 ms on one core against 12.5 ms on two.
        distinct = [p for p in dict.fromkeys(p for _, p, _ in missing) if p]
        prompt_emb = dict(zip(distinct, self.embedder.embed(distinct))) if distinct else {}
        estimates: list[Estimate] = []
        for start in range(0, len(pieces), self.batch_size):
            chunk = pieces[start:start + self.batch_size]
            emb = self.embedder.embed([t for t, _ in chunk])
            estimates.extend(self._estimate_embedded([t for t, _ in chunk], [p for _, p in chunk], emb,
                                                     [prompt_emb.get(p) if p else None for _, p in chunk]))
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

    def _cached(self, keys: Sequence[_Key]) -> dict[_Key, Estimate]:
        if not self._cache_size:
            return {}
        with self._cache_lock:
            hits = {t: self._cache[t] for t in keys if t in self._cache}
            for t in hits:
                self._cache.move_to_end(t)
        return hits

    def _remember(self, estimates: dict[_Key, Estimate]) -> None:
        if not self._cache_size:
            return
        with self._cache_lock:
            self._cache.update(estimates)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _estimate_embedded(self, texts: Sequence[str], prompts: Sequence[str | None], emb: np.ndarray,
                           prompt_emb: Sequence[np.ndarray | None]) -> list[Estimate]:
        wide, wide_idx = self.index.search(emb, max(self.k, self.readout.neighbours))
        out = read_out(self.readout, ReadOutInput(texts, prompts, emb, prompt_emb, wide, wide_idx,
                                                  self.index.reference, self.k, self.tau))
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
