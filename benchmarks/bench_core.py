"""`make bench`: the cost of a guarded call next to the bare fp32 embedding of the same text, and what sets it.

Always side by side in one run, so the ratio holds on a noisy machine: the bare fp32 sentence-transformers
embedding of a text, and the full `ValueGuard.check` of it (default backend, estimator cache off, default
policy, logging on), at ~200, ~1,000 and ~4,000 characters. Also: the guarded call on the torch backend, the
stages (tokenise, embed, search, everything but the embedding), a cache hit, audit throughput by batch size,
concurrent callers with and without micro-batching, cold start (import, --help, first verdict) and peak
memory. A table on stdout, JSON in bench-results/bench_core.json.

    .venv/bin/python benchmarks/bench_core.py [--repeats 60]        (after `make index`)
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
import threading
import time
from pathlib import Path

import numpy as np
import structlog

from valueguard import ValueEstimator, ValueGuard
from micro_batching import MicroBatcher
from valueguard.config import data_dir
from valueguard.embedders.backends import default_backend, make_embedder
from valueguard.index.manifest import format_text
from valueguard.reference import ReferenceSet, fulcra_files

OUT = Path("bench-results")
HEAVY = ("torch", "sentence_transformers", "transformers", "faiss", "onnxruntime", "onnx")


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    pick = lambda q: s[min(len(s) - 1, int(q * len(s)))]  # noqa: E731
    return {"p50_ms": statistics.median(s), "p90_ms": pick(0.9), "p99_ms": pick(0.99), "n": len(s)}


def timed(fn, repeats: int) -> dict[str, float]:
    fn()  # warm-up
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    return stats(samples)


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


class OtherLoad:
    """CPU cores that other processes used while the block ran (from /proc/stat): how noisy the run was."""

    @staticmethod
    def _busy() -> float:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> OtherLoad:
        self.start, self.own, self.t = self._busy(), time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        other = (self._busy() - self.start) - (time.process_time() - self.own)
        self.cores = max(0.0, other / (time.perf_counter() - self.t))


class Replay:
    """The real embeddings of known texts, served from memory: times everything a guarded call does but embed."""

    def __init__(self, embedder) -> None:
        self.model_id, self.embedder, self.memo = embedder.model_id, embedder, {}

    def embed(self, texts):
        missing = [t for t in texts if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, self.embedder.embed(missing)))
        return np.vstack([self.memo[t] for t in texts])


def latency(pool: list[str], prompt: str, repeats: int, backend: str) -> list[dict]:
    estimator = ValueEstimator.default(cache_size=0, backend=backend)
    embedder = estimator.embedder
    guard = ValueGuard.from_policy("default", estimator=estimator)
    torch_guard = ValueGuard.from_policy("default", estimator=ValueEstimator.default(cache_size=0, backend="torch"))
    st = torch_guard.estimator.embedder._load()  # the bare sentence-transformers model  # type: ignore[attr-defined]
    replay = ValueGuard.from_policy("default", estimator=ValueEstimator(estimator.index, Replay(embedder), cache_size=0))
    cached = ValueGuard.from_policy("default", estimator=ValueEstimator(estimator.index, embedder))
    rows = []
    for label, chars in (("short", 200), ("typical", 1000), ("long", 4000)):
        text = text_of_length(pool, chars)
        q = embedder.embed([text])
        replay.check(text)
        tokenize = getattr(embedder, "tokenize", None)
        stages = {
            "bare fp32 embed (sentence-transformers)": timed(lambda: st.encode([text], normalize_embeddings=True),
                                                            repeats),
            f"guarded call ({embedder.backend}, default)": timed(lambda: guard.check(text), repeats),
            f"guarded call with a {len(prompt)}-char prompt ({embedder.backend})": timed(
                lambda: guard.check(text, prompt=prompt), repeats),
            "guarded call (torch)": timed(lambda: torch_guard.check(text), repeats),
            "tokenise": timed(lambda: tokenize(text), 200) if tokenize else None,
            f"embed ({embedder.backend})": timed(lambda: embedder.embed([text]), repeats),
            "search": timed(lambda: estimator.index.search(q, estimator.k), 200),
            "everything but the embedding": timed(lambda: replay.check(text), 200),
            "cache hit": timed(lambda: cached.check(text), 200),
        }
        tokens = len(st.tokenizer(text, truncation=True, max_length=st.max_seq_length)["input_ids"])
        rows.append({"label": label, "chars": len(text), "tokens_read": tokens,
                     "stages": {k: v for k, v in stages.items() if v}})
    return rows


def audit_throughput(pool: list[str], backend: str, sizes=(1, 8, 32, 64)) -> list[dict]:
    texts = [format_text(t, None, "response") for t in pool[:256]]
    out = []
    embedder = make_embedder(backend=backend)
    for bs in sizes:
        e = ValueEstimator.default(cache_size=0, batch_size=bs, embedder=embedder)
        e.estimate_batch(texts[:4])
        t = time.perf_counter()
        e.estimate_batch(texts)
        out.append({"backend": backend, "batch_size": bs, "responses_per_s": len(texts) / (time.perf_counter() - t)})
    return out


def concurrent(pool: list[str], backend: str, callers: int, batched: bool, calls: int = 96) -> dict:
    """`callers` threads each run guarded calls on distinct real responses; latency of each call, total rate."""
    embedder = make_embedder(backend=backend)
    if batched:
        embedder = MicroBatcher(embedder)
    guard = ValueGuard.from_policy("default", estimator=ValueEstimator.default(cache_size=0, embedder=embedder))
    texts = pool[1000:1000 + calls]
    guard.check(texts[0])
    samples: list[float] = []
    lock = threading.Lock()

    def work(share: list[str]) -> None:
        for text in share:
            t = time.perf_counter()
            guard.check(text)
            with lock:
                samples.append((time.perf_counter() - t) * 1000)

    threads = [threading.Thread(target=work, args=(texts[i::callers],)) for i in range(callers)]
    start = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    out = {"backend": backend, "callers": callers, "micro_batching": batched, "calls_per_s": len(texts) / wall,
           **stats(samples)}
    if batched:
        out["texts_per_forward_call"] = embedder.requests / max(embedder.calls, 1)
    return out


def cold_start() -> dict[str, object]:
    """Fresh processes: what a user waits for before the first verdict, and what `import valueguard` loads."""
    def run(code: str, *args: str) -> tuple[float, str]:
        t = time.perf_counter()
        out = subprocess.run([sys.executable, *args, "-c", code], capture_output=True, text=True, check=True)
        return time.perf_counter() - t, out.stdout + out.stderr

    heavy = f"import sys; print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    imp = min(run("import valueguard")[0] for _ in range(3))
    _, imported = run(f"import valueguard; {heavy}")
    helps = min(run(f"import sys; sys.argv = ['valueguard', '--help']\nfrom valueguard.cli import main\ntry: main()\n"
                    f"except SystemExit: pass\n{heavy}")[0] for _ in range(3))
    _, help_imported = run(f"import sys; sys.argv = ['valueguard', '--help']\nfrom valueguard.cli import main\n"
                           f"try: main()\nexcept SystemExit: pass\n{heavy}")
    first, out = run("import resource, time; t = time.perf_counter(); from valueguard import ValueGuard; "
                     "g = ValueGuard.from_policy('default'); g.check('Hello, how can I help?'); "
                     "print('FIRST', time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    line = next(x for x in out.splitlines() if x.startswith("FIRST"))
    _, seconds, rss_kb = line.split()
    last = lambda s: next(x for x in s.splitlines() if x.startswith("HEAVY")).removeprefix("HEAVY ")  # noqa: E731
    return {"import_s": imp, "import_loads": last(imported), "help_s": helps, "help_loads": last(help_imported),
            "first_verdict_process_s": first, "first_verdict_in_process_s": float(seconds),
            "first_verdict_peak_rss_mb": int(rss_kb) / 1024}


def table(rows: list[dict]) -> None:
    print("| stage | " + " | ".join(
        f"{r['label']} ({r['chars']} chars, {r['tokens_read']} tokens read) p50 / p99" for r in rows)
        + " |\n|---|" + "---|" * len(rows))
    for stage in rows[0]["stages"]:
        cells = [f"{r['stages'][stage]['p50_ms']:.2f} / {r['stages'][stage]['p99_ms']:.2f} ms" for r in rows]
        print(f"| {stage} | " + " | ".join(cells) + " |")
    guarded = next(s for s in rows[0]["stages"] if s.endswith("default)"))
    for name, stage in (("default", guarded), ("torch", "guarded call (torch)")):
        ratios = [r["stages"][stage]["p50_ms"] / r["stages"]["bare fp32 embed (sentence-transformers)"]["p50_ms"]
                  for r in rows]
        print(f"| guarded call ({name}) / bare fp32 embed, p50 | " + " | ".join(f"{x:.2f}x" for x in ratios) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=60)
    ap.add_argument("--skip-cold", action="store_true", help="leave out the fresh-process measurements")
    args = ap.parse_args()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())  # logging runs, printing does not
    backend = default_backend()

    reference = ReferenceSet.from_files(fulcra_files(data_dir()))
    pool = [reference.records[i].response for i in np.random.default_rng(0).permutation(len(reference))]
    # The value model reads the prompt too (an extra embedding): a real prompt of FULCRA's mean length, ~70 chars.
    prompt = min((r.prompt for r in reference), key=lambda p: (abs(len(p) - 70), p))
    cold = None if args.skip_cold else cold_start()  # first, before this process warms any cache
    with OtherLoad() as noise:
        rows = latency(pool, prompt, args.repeats, backend)
        throughput = audit_throughput(pool, backend) + audit_throughput(pool, "torch")
        conc = [concurrent(pool, backend, n, b) for n in (1, 4, 16) for b in (False, True)]

    import faiss
    import torch

    from valueguard.config import default_threads
    machine = f"{cpu_name()}, {os.cpu_count()} logical CPUs, {platform.machine()}"
    print(f"machine: {machine}; default backend {backend} ({default_threads()} onnxruntime threads); "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); FAISS omp threads {faiss.omp_get_max_threads()}; "
          f"other processes used {noise.cores:.2f} cores during the run\n")
    table(rows)
    print("\n| backend | batch size | responses/s (audit path, 256 distinct real responses) |\n|---|---|---|")
    for t in throughput:
        print(f"| {t['backend']} | {t['batch_size']} | {t['responses_per_s']:.1f} |")
    print("\n| concurrent callers | micro-batching | guarded calls/s | p50 / p99 ms | texts per forward call |\n"
          "|---|---|---|---|---|")
    for c in conc:
        per = f"{c['texts_per_forward_call']:.1f}" if c["micro_batching"] else "1"
        print(f"| {c['callers']} | {'on' if c['micro_batching'] else 'off'} | {c['calls_per_s']:.1f} "
              f"| {c['p50_ms']:.1f} / {c['p99_ms']:.1f} | {per} |")
    if cold:
        print(f"\ncold start: import valueguard {cold['import_s']:.2f} s (loads {cold['import_loads']}); "
              f"valueguard --help {cold['help_s']:.2f} s (loads {cold['help_loads']}); new process to first verdict "
              f"{cold['first_verdict_process_s']:.2f} s ({cold['first_verdict_in_process_s']:.2f} s after interpreter "
              f"start), peak RSS {cold['first_verdict_peak_rss_mb']:.0f} MB")
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"this benchmark's peak RSS (both backends loaded): {own:.0f} MB")
    OUT.mkdir(exist_ok=True)
    (OUT / "bench_core.json").write_text(json.dumps(
        {"machine": machine, "backend": backend, "other_load_cores": noise.cores, "latency": rows, "throughput": throughput, "concurrent": conc,
         "cold_start": cold, "peak_rss_mb": own}, indent=2))


if __name__ == "__main__":
    main()
