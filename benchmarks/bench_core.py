"""`make bench`, first cut: embedding latency (single and batch), search latency, estimate latency, index build.

Uses the default index (built by `make index`). Prints a table and writes bench-results/bench_core.json.

    .venv/bin/python benchmarks/bench_core.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import faiss
import numpy as np

from valueguard.embedding import SentenceTransformerEmbedder
from valueguard.estimator import ValueEstimator
from valueguard.config import data_dir
from valueguard.index import format_text
from valueguard.reference import ReferenceSet, fulcra_files

OUT = Path("bench-results")


def timed(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return {"p50_ms": statistics.median(samples), "p90_ms": samples[int(0.9 * (len(samples) - 1))],
            "mean_ms": statistics.fmean(samples)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def texts_of_length(rows: list[str], chars: int) -> str:
    """A real response cut or padded (with further real responses) to about `chars` characters."""
    out = ""
    for r in rows:
        if len(out) >= chars:
            break
        out += r + "\n"
    return out[:chars]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()

    estimator = ValueEstimator.default()
    embedder: SentenceTransformerEmbedder = estimator.embedder  # type: ignore[assignment]
    index = estimator.index
    # Full responses from the reference files (the index keeps only snippets).
    responses = [r.response for r in ReferenceSet.from_files(fulcra_files(data_dir()))]
    rng = np.random.default_rng(0)
    pool = [responses[i] for i in rng.permutation(len(responses))]

    rows: list[tuple[str, str, dict[str, float]]] = []
    for label, chars in (("short", 200), ("typical", 1000), ("long", 4000)):
        text = texts_of_length(pool, chars)
        rows.append((f"embed 1 ({label}, {len(text)} chars)", "ms", timed(lambda t=text: embedder.embed([t]), args.repeats)))
    typical = texts_of_length(pool, 1000)
    q = embedder.embed([typical])
    rows.append((f"search k={estimator.k} over {len(index)} rows", "ms", timed(lambda: index.search(q, estimator.k), 200)))
    rows.append(("estimate 1 (typical, end to end)", "ms", timed(lambda: estimator.estimate(typical), args.repeats)))

    batch_rows = []
    for bs in (1, 8, 32, 64):
        texts = pool[:256]
        t = time.perf_counter()
        for i in range(0, len(texts), bs):
            embedder.embed(texts[i : i + bs])
        batch_rows.append({"batch_size": bs, "responses_per_s": len(texts) / (time.perf_counter() - t)})

    # Index build: 300 real rows from scratch (the default index's own build time is in its manifest).
    sample = pool[:300]
    t = time.perf_counter()
    emb = embedder.embed([format_text(s, None, index.text_form) for s in sample])
    flat = faiss.IndexFlatIP(emb.shape[1])
    flat.add(emb)
    build_300 = time.perf_counter() - t

    machine = f"{cpu_name()}, {os.cpu_count()} cores, {platform.machine()}"
    print(f"machine: {machine}; model {index.model}; index {len(index)} rows ({index.text_form} form)\n")
    print("| measure | p50 | p90 | mean |\n|---|---|---|---|")
    for name, unit, r in rows:
        print(f"| {name} | {r['p50_ms']:.2f} {unit} | {r['p90_ms']:.2f} {unit} | {r['mean_ms']:.2f} {unit} |")
    print("\n| batch size | responses/s (embedding) |\n|---|---|")
    for b in batch_rows:
        print(f"| {b['batch_size']} | {b['responses_per_s']:.1f} |")
    seq = getattr(embedder._load(), "max_seq_length", None)
    print(f"\nthe model reads at most {seq} tokens: text past that is not embedded")
    print(f"index build, 300 rows: {build_300:.1f} s; default index ({len(index)} rows): "
          f"{index.manifest.build_seconds:.0f} s (from its manifest)")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_core.json").write_text(json.dumps({
        "machine": machine, "model": index.model, "index_rows": len(index),
        "latency": {name: r for name, _, r in rows}, "batch": batch_rows,
        "build_300_rows_s": build_300, "default_index_build_s": index.manifest.build_seconds,
    }, indent=2))


if __name__ == "__main__":
    main()
