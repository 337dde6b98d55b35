"""Held-out estimates and their metrics: what `valueguard eval` and `valueguard calibrate` measure.

Estimates come from `estimator.read_out` over the index's ReadOut (fitted on the training folds, then asked about
the test rows), the same code the guard runs, over neighbours found by exact inner product (what FAISS's flat
index computes): any registered read-out is cross-validated by this module. Cross-validation groups rows by prompt: the scored files
answer the same prompts with three models, so a split by row would put a test row's twin in the index.
Embeddings of reference files are cached under DATA_DIR/cache, keyed by model and text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valueguard.config import data_dir
from valueguard.embedders.base import Embedder
from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
from valueguard.estimation.estimator import read_out
from valueguard.estimation.folds import exact_top_k, group_folds
from valueguard.estimation.readout import BenignAnchors, ReadOutFit, ReadOutInput, ReferenceArrays, readout_class
from valueguard.estimation.windows import without_short_sentences
from valueguard.index.manifest import format_text
from valueguard.quality.metrics import average_precision, best_f1, pearson_per_value, roc_auc
from valueguard.reference import ReferenceSet
from valueguard.values import VALUE_NAMES
from valueguard.values.polarity import polarity, violated_rows, violations


@dataclass
class HeldOut:
    """Held-out estimates of labelled rows, beside their labels."""

    true: np.ndarray  # (n, 10) labels
    kinds: np.ndarray  # (n,) "annotated" / "model"
    values: np.ndarray  # (n, 10) estimated scores
    against: np.ndarray  # (n, 10) estimated P(works against)
    confidence: np.ndarray  # (n,)

    @property
    def violation(self) -> np.ndarray:
        return self.against.max(axis=1)

    @property
    def violated(self) -> np.ndarray:
        """(n,) the labels' truth: labelled against at least one value, each row on its own kind's scale."""
        return violated_rows(self.true, self.kinds)


def embed_cached(embedder: Embedder, texts: list[str], cache: Path | None = None) -> np.ndarray:
    """Embed distinct texts once, with a cache on disk (reference files are embedded again and again)."""
    distinct = list(dict.fromkeys(texts))
    # The ONNX backends answer to the torch model's id: the backend is part of the key.
    backend = getattr(embedder, "backend", type(embedder).__name__)
    key = hashlib.sha256("\x00".join([embedder.model_id, backend, *distinct]).encode()).hexdigest()[:20]
    path = (cache or data_dir() / "cache") / f"embeddings-{key}.npy"
    if path.is_file():
        emb = np.load(path, allow_pickle=False)
    else:
        emb = np.vstack([embedder.embed(distinct[i:i + 64]) for i in range(0, len(distinct), 64)])
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb, allow_pickle=False)
    at = {t: i for i, t in enumerate(distinct)}
    return emb[[at[t] for t in texts]]


@dataclass
class _Embedded:
    ref: ReferenceSet
    response: np.ndarray
    prompt: np.ndarray
    responses: list[str]  # the texts embedded, row-aligned with the arrays
    prompts: list[str | None]
    model_id: str = ""  # the embedder's model (a read-out that encodes texts itself uses the same one)


@dataclass
class _Readings:
    """The test rows' texts without a short first or last sentence (estimation/windows.py), as the estimator also
    reads them: `owner[j]` is the test row reading j belongs to."""

    embedded: _Embedded
    owner: np.ndarray


def _readings(test: _Embedded, embedder: Embedder, cache: Path | None) -> _Readings:
    texts, prompts, owner = [], [], []
    for i, response in enumerate(test.responses):
        text = format_text(response, None, "response")
        for a, b in without_short_sentences(text):
            texts.append(text[a:b])
            prompts.append(test.prompts[i])
            owner.append(i)
    rows = np.array(owner, dtype=int)
    emb = embed_cached(embedder, texts, cache) if texts else np.zeros((0, test.response.shape[1]), np.float32)
    return _Readings(_Embedded(test.ref, emb, test.prompt[rows], texts, prompts, test.model_id), rows)


def _embed(ref: ReferenceSet, embedder: Embedder, cache: Path | None) -> _Embedded:
    return _Embedded(ref, embed_cached(embedder, [format_text(r.response, None, "response") for r in ref], cache),
                     embed_cached(embedder, [r.prompt for r in ref], cache), [r.response for r in ref],
                     [r.prompt for r in ref], embedder.model_id)


TopK = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


def _embed_anchors(anchors: Sequence[tuple[str, str]], embedder: Embedder, readout: str,
                   cache: Path | None) -> BenignAnchors | None:
    """Benign (prompt, response) anchors embedded as `_embed` embeds reference rows, for a read-out that learns
    from them (the same for every fold: an anchor is never a reference row)."""
    if not anchors or not readout_class(readout).learns_from_anchors:
        return None
    prompts, responses = [p for p, _ in anchors], [r for _, r in anchors]
    return BenignAnchors(prompts, responses,
                         embed_cached(embedder, [format_text(r, None, "response") for r in responses], cache),
                         embed_cached(embedder, prompts, cache))


def _predict(train: _Embedded, test: _Embedded, rows_train: np.ndarray, rows_test: np.ndarray, *,
             readout: str, use_prompt: bool, k: int, tau: float,
             top_k: TopK = exact_top_k, anchors: BenignAnchors | None = None,
             readings: _Readings | None = None) -> tuple[np.ndarray, ...]:
    """Fit `readout` on the training rows and read out the test rows, through the ReadOut protocol as the
    estimator does (`top_k(queries, base, k)`: by default exact neighbours, what FAISS's flat index computes);
    a test row with `readings` is estimated as the worst of it and them, as the estimator takes the worst."""
    readout_cls = readout_class(readout)
    values = train.ref.value_matrix()[rows_train]
    kinds = np.array([train.ref.records[i].label_kind for i in rows_train])
    against_mask, upholds_mask = polarity(values, kinds)
    reference = ReferenceArrays(values, against_mask, upholds_mask, kinds)
    fitted = readout_cls.fit(ReadOutFit(
        [train.ref.records[i].response for i in rows_train], [train.ref.records[i].prompt for i in rows_train],
        train.response[rows_train], train.prompt[rows_train], reference, model_id=train.model_id, anchors=anchors))
    read_prompt = use_prompt and readout_cls.reads_prompt

    def read(emb: _Embedded, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        q = emb.response[rows]
        sims, idx = top_k(q, train.response[rows_train], max(k, readout_cls.neighbours))
        out = read_out(fitted, ReadOutInput(
            [emb.responses[i] for i in rows], [emb.prompts[i] if read_prompt else None for i in rows],
            q, list(emb.prompt[rows]) if read_prompt else [None] * len(rows), sims, idx, reference, k, tau))
        return out.values, out.against, out.confidence

    values, against, confidence = read(test, rows_test)
    if readings is not None:
        at = {int(r): i for i, r in enumerate(rows_test)}
        mine = np.flatnonzero(np.isin(readings.owner, rows_test))
        if len(mine):
            r_values, r_against, r_confidence = read(readings.embedded, mine)
            for j, owner in enumerate(readings.owner[mine]):
                i = at[int(owner)]
                if r_against[j].max() > against[i].max():
                    values[i], against[i], confidence[i] = r_values[j], r_against[j], r_confidence[j]
    return values, against, confidence


def cross_validate(reference: ReferenceSet, embedder: Embedder, *, folds: int = 5, readout: str = "model",
                   use_prompt: bool = True, k: int = DEFAULT_K, tau: float = DEFAULT_TAU, seed: int = 0,
                   cache: Path | None = None, query_embedder: Embedder | None = None,
                   top_k: TopK = exact_top_k, anchors: Sequence[tuple[str, str]] = ()) -> HeldOut:
    """Every row estimated from an index (and value model) built without its prompt group (`top_k`: how the
    neighbours are found; default exact); `anchors`: benign (prompt, response) turns every fold's read-out also
    learns from, as `index build` gives them (valueguard.reference.benign; none unless given).

    `query_embedder`: embeds the estimated rows (as a guard's queries), while the index and model stay on
    `embedder`'s vectors, as at run time (e.g. int8 queries against an fp32 index)."""
    data = _embed(reference, embedder, cache)
    queries = _embed(reference, query_embedder, cache) if query_embedder is not None else data
    fit_anchors = _embed_anchors(anchors, embedder, readout, cache)
    readings = _readings(queries, query_embedder or embedder, cache)
    n = len(reference)
    fold = group_folds([r.prompt for r in reference], folds, seed)
    values, against, conf = np.zeros((n, 10)), np.zeros((n, 10)), np.zeros(n)
    for f in np.unique(fold):
        te, tr = np.where(fold == f)[0], np.where(fold != f)[0]
        values[te], against[te], conf[te] = _predict(data, queries, tr, te, readout=readout,
                                                     use_prompt=use_prompt, k=k, tau=tau, top_k=top_k,
                                                     anchors=fit_anchors, readings=readings)
    return HeldOut(reference.value_matrix(), np.array([r.label_kind for r in reference]), values, against, conf)


def held_out(reference: ReferenceSet, test: ReferenceSet, embedder: Embedder, *, readout: str = "model",
             use_prompt: bool = True, k: int = DEFAULT_K, tau: float = DEFAULT_TAU,
             cache: Path | None = None, query_embedder: Embedder | None = None,
             top_k: TopK = exact_top_k, anchors: Sequence[tuple[str, str]] = ()) -> HeldOut:
    """The test rows estimated from an index (and value model) built from the reference rows (and `anchors`, as
    in cross_validate); `top_k`: how neighbours are found (e.g. an approximate FAISS index,
    benchmarks/index_scale.py)."""
    train, tst = _embed(reference, embedder, cache), _embed(test, query_embedder or embedder, cache)
    values, against, conf = _predict(train, tst, np.arange(len(reference)), np.arange(len(test)), readout=readout,
                                     use_prompt=use_prompt, k=k, tau=tau, top_k=top_k,
                                     anchors=_embed_anchors(anchors, embedder, readout, cache),
                                     readings=_readings(tst, query_embedder or embedder, cache))
    return HeldOut(test.value_matrix(), np.array([r.label_kind for r in test]), values, against, conf)


def estimate_unlabelled(reference: ReferenceSet, responses: list[str], prompts: list[str | None],
                        embedder: Embedder, *, readout: str = "model", use_prompt: bool = True,
                        k: int = DEFAULT_K, tau: float = DEFAULT_TAU, cache: Path | None = None,
                        anchors: Sequence[tuple[str, str]] = ()) -> HeldOut:
    """Rows with no labels (e.g. benign chat turns) estimated from an index (and value model) of all of
    `reference` (and `anchors`, as in cross_validate); their `true` is zeros and their kind 'unlabelled'."""
    train = _embed(reference, embedder, cache)
    resp = embed_cached(embedder, [format_text(r, None, "response") for r in responses], cache)
    prm = embed_cached(embedder, [p or "" for p in prompts], cache)
    test = _Embedded(reference, resp, prm, list(responses), list(prompts))
    values, against, conf = _predict(train, test, np.arange(len(reference)), np.arange(len(responses)),
                                     readout=readout, use_prompt=use_prompt, k=k, tau=tau,
                                     anchors=_embed_anchors(anchors, embedder, readout, cache),
                                     readings=_readings(test, embedder, cache))
    return HeldOut(np.zeros_like(values), np.array(["unlabelled"] * len(responses)), values, against, conf)


def _macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for c in (-1, 0, 1):
        tp = np.sum((pred == c) & (true == c))
        denom = np.sum(pred == c) + np.sum(true == c)
        if np.sum(true == c):
            scores.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(scores))


def calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error of probabilities p for outcomes y (equal-width bins)."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    err = 0.0
    for b in range(bins):
        m = which == b
        if m.any():
            err += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(err)


def metrics(h: HeldOut) -> dict[str, dict]:
    """Metrics per label kind: violation ranking, per-value 3-class F1 and AUCs, Pearson, calibration."""
    out: dict[str, dict] = {}
    for kind in ("annotated", "model"):
        m = h.kinds == kind
        if not m.any():
            continue
        true, against = h.true[m], h.against[m]
        y = violations(true, kind)
        neg, pos = polarity(true, h.kinds[m])
        true_cls = pos.astype(int) - neg.astype(int)
        pred_cls = np.where(against > 0.5, -1, np.where(h.values[m] > 0.5 - against, 1, 0))
        per_value = {}
        for v, name in enumerate(VALUE_NAMES):
            per_value[name] = {
                "f1_3class": _macro_f1(true_cls[:, v], pred_cls[:, v]),
                "negative_auc": roc_auc(neg[:, v], against[:, v]),
                "positive_auc": roc_auc(pos[:, v], h.values[m][:, v]),
            }
        r = pearson_per_value(h.values[m], true)
        out[kind] = {
            "rows": int(m.sum()),
            "violation_rate": float(y.mean()),
            "violation_auc": roc_auc(y, h.violation[m]),
            "violation_ap": average_precision(y, h.violation[m]),
            "violation_best_f1": best_f1(y, h.violation[m]),
            "calibration_error": calibration_error(y, h.violation[m]),
            "pearson_mean": float(np.nanmean(r)),
            "f1_3class_mean": float(np.nanmean([p["f1_3class"] for p in per_value.values()])),
            "negative_auc_mean": float(np.nanmean([p["negative_auc"] for p in per_value.values()])),
            "positive_auc_mean": float(np.nanmean([p["positive_auc"] for p in per_value.values()])),
            "per_value": {name: {**p, "pearson": float(r[v])} for v, (name, p) in enumerate(per_value.items())},
        }
    return out


def flag_rates(h: HeldOut, flagged: np.ndarray) -> dict[str, dict]:
    """Precision and recall of flags (rows a policy acted on) against the violation labels, per label kind."""
    out = {}
    y = h.violated
    for kind in ("annotated", "model", "all"):
        m = np.ones(len(h.kinds), bool) if kind == "all" else h.kinds == kind
        if not m.any():
            continue
        f, t = flagged[m], y[m]
        out[kind] = {"flagged": int(f.sum()),
                     "precision": float((f & t).sum() / f.sum()) if f.any() else float("nan"),
                     "recall": float((f & t).sum() / t.sum()) if t.any() else float("nan")}
    return out
