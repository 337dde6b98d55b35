"""ONNX fp32 / int8 query embeddings against the fp32 sentence-transformers baseline: quality and speed.

Quality, on all FULCRA responses (response text form): cosine agreement with the fp32 embeddings, top-10
neighbour overlap against the fp32 index, and the grouped-CV estimator metrics of estimator_choice.py with the
queries embedded by each backend while the index stays fp32 (what an existing index sees). The gate for int8
to become the default: FULCRA (annotated) violation AP within 0.01 of fp32.
Batch-invariance: the largest change of any of 64 texts' int8 embedding between alone and batched with 31
others (0 when every text has its own forward pass, as OnnxEmbedder does).
Speed: single-response latency p50/p90 at ~200, ~1000 and ~4000 characters, and batch throughput, all three
backends side by side in one run (ONNX at 1 and at 2 threads). Writes bench-results/onnx_quality.json.

    .venv/bin/python benchmarks/onnx_quality.py [--data ../shared/data] [--folds 5] [--reps 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from estimator_choice import HEADER, OUT, embed_cached, evaluate, row  # noqa: E402

from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder  # noqa: E402
from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU  # noqa: E402
from valueguard.estimation.folds import group_folds  # noqa: E402
from valueguard.index.manifest import format_text  # noqa: E402
from valueguard.config import physical_cores  # noqa: E402
from valueguard.embedders.onnx_runtime import OnnxEmbedder  # noqa: E402
from valueguard.embedders.onnx_export import EXPORT_VERSION  # noqa: E402
from valueguard.quality.heldout import cross_validate, metrics  # noqa: E402
from valueguard.reference import ReferenceSet, fulcra_files  # noqa: E402

GATE = 0.01


def neighbour_overlap(query: np.ndarray, base: np.ndarray, ref_query: np.ndarray, k: int = 10,
                      ties: bool = False) -> np.ndarray:
    """Per row: |top-k of query in base ∩ top-k of ref_query in base| / k, each row's own entry excluded.

    FULCRA holds many duplicate responses (ties at the k-th place), so the strict overlap undercounts: with
    ties=True a neighbour counts when its reference similarity reaches the reference's k-th best (-1e-5)."""
    out = np.empty(len(query))
    for s in range(0, len(query), 512):
        sl = slice(s, s + 512)
        a, b = query[sl] @ base.T, ref_query[sl] @ base.T
        rows = np.arange(sl.start, min(sl.stop, len(query)))
        a[rows - s, rows] = b[rows - s, rows] = -np.inf
        ta = np.argpartition(-a, k - 1, axis=1)[:, :k]
        tb = np.argpartition(-b, k - 1, axis=1)[:, :k]
        if ties:
            kth = np.take_along_axis(b, tb, axis=1).min(axis=1, keepdims=True)
            out[sl] = (np.take_along_axis(b, ta, axis=1) >= kth - 1e-5).sum(axis=1) / k
        else:
            out[sl] = [len(set(x) & set(y)) / k for x, y in zip(ta, tb)]
    return out


def text_of_length(pool: list[str], n: int) -> str:
    """A real response cut (or several joined) to about n characters."""
    text = ""
    for t in sorted(pool, key=lambda t: abs(len(t) - n)):
        text = (text + " " + t).strip()
        if len(text) >= n:
            break
    return text[:n]


def latency(embedder, text: str, reps: int) -> tuple[float, float]:
    for _ in range(3):
        embedder.embed([text])
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        embedder.embed([text])
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 90))


def throughput(embedder, texts: list[str]) -> float:
    embedder.embed(texts[:32])
    t = time.perf_counter()
    for i in range(0, len(texts), 32):
        embedder.embed(texts[i : i + 32])
    return len(texts) / (time.perf_counter() - t)


def model_readout(ref, backends: dict, folds: int, fp32) -> dict:
    """The index's default read-out (the fitted value model, README "Estimation quality"), cross-validated by the
    package's own `cross_validate` (as `valueguard eval --backend` does): the index and its model fitted on fp32
    vectors, the held-out responses and prompts embedded by each backend. The whole estimator, not kNN alone."""
    out = {}
    print("\nWhole estimator (value-model read-out), index and model fp32, held-out queries by each backend\n"
          "| queries | FULCRA violation AP | FULCRA AUC | scored AP | scored AUC |\n|---|---|---|---|---|")
    for name in ("st-fp32", "onnx-fp32", "onnx-int8"):  # onnx-fp32 (cosine 1.0000): how much AP moves by noise alone
        queries = None if name == "st-fp32" else backends[name]
        h = cross_validate(ref, fp32, folds=folds, readout="model", k=DEFAULT_K, tau=DEFAULT_TAU,
                           cache=OUT / "cache", query_embedder=queries)
        m = metrics(h)
        out[name] = {kind: {k: m[kind][k] for k in ("violation_ap", "violation_auc")} for kind in m}
        print(f"| {name} | {m['annotated']['violation_ap']:.3f} | {m['annotated']['violation_auc']:.3f} "
              f"| {m['model']['violation_ap']:.3f} | {m['model']['violation_auc']:.3f} |")
    gap = out["onnx-int8"]["annotated"]["violation_ap"] - out["st-fp32"]["annotated"]["violation_ap"]
    out["ap_delta"] = gap
    print(f"int8 delta {gap:+.4f} -> {'PASS' if abs(gap) <= GATE else 'FAIL'} (gate {GATE})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="folder with fulcra/*.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=40, help="timed single-response calls per backend and length")
    ap.add_argument("--batch-texts", type=int, default=512, help="responses in the throughput run")
    ap.add_argument("--skip-speed", action="store_true", help="quality only")
    args = ap.parse_args()

    ref = ReferenceSet.from_files(fulcra_files(args.data))
    values = ref.value_matrix()
    kinds = np.array([r.label_kind for r in ref])
    folds = group_folds([r.prompt for r in ref], args.folds)
    texts = [format_text(r.response, None, "response") for r in ref]
    st = SentenceTransformerEmbedder()
    backends = {"st-fp32": st, "onnx-fp32": OnnxEmbedder(quantize=False), "onnx-int8": OnnxEmbedder(quantize=True)}
    emb = {"st-fp32": embed_cached(st, texts, "response")}
    for name in ("onnx-fp32", "onnx-int8"):  # the export version in the tag: a new export is a new cache entry
        emb[name] = embed_cached(backends[name], texts, f"response-{name}-v{EXPORT_VERSION}")
    base = emb["st-fp32"]
    results: dict = {"rows": len(ref), "folds": args.folds, "k": DEFAULT_K, "tau": DEFAULT_TAU,
                     "threads": physical_cores(), "agreement": {}, "cv": {}, "latency_ms": {}, "throughput": {}}

    print(f"{len(ref)} FULCRA responses; index vectors fp32 (sentence-transformers); queries by each backend\n")
    print("Agreement with the fp32 embeddings\n| queries | cosine mean | cosine min | cosine p1 | top-10 overlap mean "
          "| top-10 overlap min | top-10 overlap, ties counted: mean / min |\n|---|---|---|---|---|---|---|")
    for name in ("onnx-fp32", "onnx-int8"):
        cos = (emb[name] * base).sum(axis=1)
        ov = neighbour_overlap(emb[name], base, base)
        ovt = neighbour_overlap(emb[name], base, base, ties=True)
        results["agreement"][name] = {"cos_mean": float(cos.mean()), "cos_min": float(cos.min()),
                                      "cos_p1": float(np.percentile(cos, 1)), "overlap_mean": float(ov.mean()),
                                      "overlap_min": float(ov.min()), "overlap_ties_mean": float(ovt.mean()),
                                      "overlap_ties_min": float(ovt.min())}
        a = results["agreement"][name]
        print(f"| {name} | {a['cos_mean']:.4f} | {a['cos_min']:.4f} | {a['cos_p1']:.4f} | {a['overlap_mean']:.3f} "
              f"| {a['overlap_min']:.1f} | {a['overlap_ties_mean']:.3f} / {a['overlap_ties_min']:.1f} |")

    print(f"\nGrouped {args.folds}-fold CV, index fp32, k={DEFAULT_K}, tau={DEFAULT_TAU}\n" + HEADER)
    for name in backends:
        r = evaluate(emb[name], base, values, kinds, folds, DEFAULT_K, DEFAULT_TAU)
        results["cv"][name] = r
        print(row(f"queries {name}", r))
    gap = results["cv"]["onnx-int8"]["annotated"]["ap"] - results["cv"]["st-fp32"]["annotated"]["ap"]
    results["gate"] = {"ap_delta": gap, "passes": bool(abs(gap) <= GATE)}
    print(f"\nint8 gate (FULCRA AP within {GATE} of fp32): delta {gap:+.4f} -> "
          f"{'PASS' if results['gate']['passes'] else 'FAIL'}")

    results["model_readout"] = model_readout(ref, backends, args.folds, st)

    sample = texts[:64]
    alone = np.vstack([backends["onnx-int8"].embed([t]) for t in sample])
    batched = np.vstack([backends["onnx-int8"].embed(sample[i:i + 32]) for i in (0, 32)])
    results["batch_invariance_max_abs"] = float(np.abs(alone - batched).max())
    print(f"\nint8, alone vs in a batch of 32: largest difference {results['batch_invariance_max_abs']:.1e}")

    if args.skip_speed:
        OUT.mkdir(exist_ok=True)
        (OUT / "onnx_quality.json").write_text(json.dumps(results, indent=2))
        return
    backends["onnx-int8 (1 thread)"] = OnnxEmbedder(quantize=True, threads=1)
    backends["onnx-fp32 (1 thread)"] = OnnxEmbedder(quantize=False, threads=1)
    print(f"\nSpeed ({physical_cores()} physical cores, onnxruntime intra-op threads = that; torch threads = "
          f"{__import__('torch').get_num_threads()})\n| backend | " + " | ".join(
              f"~{n} chars p50 / p90 ms" for n in (200, 1000, 4000)) + " | batch texts/s |\n|---|---|---|---|---|")
    samples = {n: text_of_length(texts, n) for n in (200, 1000, 4000)}
    rng = np.random.default_rng(0)
    batch = [texts[i] for i in rng.choice(len(texts), args.batch_texts, replace=False)]
    for name, embedder in backends.items():
        cells = []
        for n, text in samples.items():
            p50, p90 = latency(embedder, text, args.reps)
            results["latency_ms"].setdefault(name, {})[n] = {"p50": p50, "p90": p90}
            cells.append(f"{p50:.1f} / {p90:.1f}")
        results["throughput"][name] = throughput(embedder, batch)
        print(f"| {name} | " + " | ".join(cells) + f" | {results['throughput'][name]:.1f} |")
    OUT.mkdir(exist_ok=True)
    (OUT / "onnx_quality.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
