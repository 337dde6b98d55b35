"""`make bench`: the cost of a guarded call, stage by stage, next to the bare embedding of the same text.

Always side by side in one run, so the ratio holds on a noisy machine: the bare fp32 sentence-transformers
embedding of a text, and the full `ValueGuard.check` of it (estimator cache off, default policy, logging on).
Also: the stages (tokenise, embed, search, combine, policy, log), a cache hit, audit throughput by batch size,
cold start (import, --help, first check) and peak memory. A table on stdout, JSON in bench-results/.

    .venv/bin/python benchmarks/bench_core.py [--repeats 40]        (after `make index`)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import structlog

from valueguard import ValueEstimator, ValueGuard
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
    pick = lambda q: samples[min(len(samples) - 1, int(q * len(samples)))]  # noqa: E731
    return {"p50_ms": statistics.median(samples), "p90_ms": pick(0.9), "p99_ms": pick(0.99)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def text_of_length(pool: list[str], chars: int) -> str:
    out = ""
    for r in pool:
        if len(out) >= chars:
            break
        out += r + "\n"
    return out[:chars]


def cold_start() -> dict[str, float]:
    """Fresh processes: what a user waits for before the first verdict."""
    def run(code: str) -> tuple[float, str]:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        return time.perf_counter() - t, out

    imp, _ = run("import valueguard")
    helps = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("valueguard")), "--help"], capture_output=True, check=True)
    helps = time.perf_counter() - helps
    first, out = run("import resource, time; t = time.perf_counter(); from valueguard import ValueGuard; "
                     "g = ValueGuard.from_policy('default'); g.check('Hello, how can I help?'); "
                     "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    seconds, rss_kb = out.strip().splitlines()[-1].split()  # the guard's own log event prints before it
    return {"import_s": imp, "help_s": helps, "first_check_process_s": first,
            "first_check_in_process_s": float(seconds), "peak_rss_mb": int(rss_kb) / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # logging runs, printing does not

    estimator = ValueEstimator.default(cache_size=0)
    guard = ValueGuard.from_policy("default", estimator=estimator)
    cached_guard = ValueGuard.from_policy("default", estimator=ValueEstimator.default())
    embedder = estimator.embedder
    model = embedder._load()  # type: ignore[attr-defined]
    def tokenize(text: str):
        return model.tokenizer([text], truncation=True, max_length=model.max_seq_length, padding=True,
                               return_tensors="pt")

    pool = [r.response for r in ReferenceSet.from_files(fulcra_files(data_dir()))]
    pool = [pool[i] for i in np.random.default_rng(0).permutation(len(pool))]

    rows: list[dict] = []
    for label, chars in (("short", 200), ("typical", 1000), ("long", 4000)):
        text = text_of_length(pool, chars)
        q = embedder.embed([text])
        sims, idx = estimator.index.search(q, estimator.k)
        est = estimator.estimate(text)
        verdict = guard.check(text)
        stages = {
            "bare fp32 embed": timed(lambda: model.encode([text], normalize_embeddings=True), args.repeats),
            "guarded call": timed(lambda: guard.check(text), args.repeats),
            "tokenise": timed(lambda: tokenize(text), args.repeats),
            "embed (ours)": timed(lambda: embedder.embed([text]), args.repeats),
            "search": timed(lambda: estimator.index.search(q, estimator.k), 200),
            "combine + evidence": timed(lambda: estimator._estimate_embedded(q), 200),
            "policy": timed(lambda: guard.policy.evaluate(est.values, est.confidence), 500),
            "log event": timed(lambda: guard._finish(verdict, text, None), 500),
            "cache hit": timed(lambda: cached_guard.check(text), 200),
        }
        tokens = len(tokenize(text)["input_ids"][0])
        rows.append({"label": label, "chars": len(text), "tokens": tokens, "stages": stages})

    throughput = []
    texts = [format_text(t, None, estimator.index.text_form) for t in pool[:256]]
    for bs in (1, 8, 32, 64):
        e = ValueEstimator.default(cache_size=0, batch_size=bs, embedder=embedder)
        t = time.perf_counter()
        e.estimate_batch(texts)
        throughput.append({"batch_size": bs, "responses_per_s": len(texts) / (time.perf_counter() - t)})

    cold = cold_start()
    machine = f"{cpu_name()}, {os.cpu_count()} cores, {platform.machine()}"
    print(f"machine: {machine}; model {estimator.index.model}; index {len(estimator.index)} rows; "
          f"torch threads {__import__('torch').get_num_threads()}\n")
    print("| stage | " + " | ".join(f"{r['label']} ({r['chars']} chars, {r['tokens']} tokens) p50 / p99" for r in rows)
          + " |\n|---|" + "---|" * len(rows))
    for stage in rows[0]["stages"]:
        cells = [f"{r['stages'][stage]['p50_ms']:.2f} / {r['stages'][stage]['p99_ms']:.2f} ms" for r in rows]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    ratios = [r["stages"]["guarded call"]["p50_ms"] / r["stages"]["bare fp32 embed"]["p50_ms"] for r in rows]
    print("| guarded / bare (p50) | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")
    print("\n| batch size | responses/s (audit path, distinct real responses) |\n|---|---|")
    for t in throughput:
        print(f"| {t['batch_size']} | {t['responses_per_s']:.1f} |")
    print(f"\ncold start: import valueguard {cold['import_s']:.2f} s; valueguard --help {cold['help_s']:.2f} s; "
          f"process to first verdict {cold['first_check_process_s']:.2f} s "
          f"({cold['first_check_in_process_s']:.2f} s after interpreter start); peak RSS {cold['peak_rss_mb']:.0f} MB")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this benchmark's peak RSS: {own:.0f} MB")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_core.json").write_text(json.dumps(
        {"machine": machine, "latency": rows, "throughput": throughput, "cold_start": cold, "peak_rss_mb": own},
        indent=2))


if __name__ == "__main__":
    main()
