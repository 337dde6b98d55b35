"""Audit memory and speed on long logs: peak RSS of `valueguard audit` at growing line counts.

The logs are made from 2,000 real FULCRA responses, repeated to reach the line count, as real logs repeat
(refusals above all): the estimator's cache (4,096 texts) then serves the repeats, so the run
measures the streaming machinery (read, policy, summary, write) rather than 1M embeddings (which at ~50/s on
2 cores would take 5.5 hours). Memory is what this shows: it must not grow with the number of lines.

    .venv/bin/python benchmarks/audit_memory.py [--lines 10000 100000 1000000]   (after `make index`)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from valueguard.config import data_dir
from valueguard.reference import ReferenceSet, fulcra_files

OUT = Path("bench-results")
DISTINCT = 2000
# Runs the audit as a child and prints the child's peak RSS: each size gets its own measurement.
MEASURE = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=False); "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def write_log(path: Path, rows: list[tuple[str, str]], lines: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            prompt, response = rows[i % len(rows)]
            f.write(json.dumps({"id": i, "prompt": prompt, "response": response, "source": "fulcra"}) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = ap.parse_args()
    rows = [(r.prompt, r.response) for r in ReferenceSet.from_files(fulcra_files(data_dir()))][::2][:DISTINCT]
    exe = str(Path(sys.executable).with_name("valueguard"))
    results = []
    work = Path(tempfile.mkdtemp(prefix="vg-audit-mem-"))
    try:
        for n in args.lines:
            src, out = work / f"log-{n}.jsonl", work / f"out-{n}.jsonl"
            write_log(src, rows, n)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-c", MEASURE, exe, "-q", "audit", str(src), "--out", str(out),
                                   "--summary", str(work / "s.json"), "--exit-zero"],
                                  capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
            written = sum(1 for _ in open(out, encoding="utf-8"))
            peak_mb = int(proc.stdout.strip().splitlines()[-1]) / 1024
            results.append({"lines": n, "written": written, "seconds": round(seconds, 1),
                            "lines_per_s": round(n / seconds), "peak_rss_mb": round(peak_mb),
                            "input_mb": round(src.stat().st_size / 2**20), "output_mb": round(out.stat().st_size / 2**20)})
            print(results[-1], file=sys.stderr)
            src.unlink()
            out.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{len(rows)} distinct real responses, repeated\n")
    print("| lines | written | seconds | lines/s | peak RSS | input | output |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['lines']:,} | {r['written']:,} | {r['seconds']} | {r['lines_per_s']:,} | {r['peak_rss_mb']} MB "
              f"| {r['input_mb']} MB | {r['output_mb']} MB |")
    OUT.mkdir(exist_ok=True)
    (OUT / "audit_memory.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
