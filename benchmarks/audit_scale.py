"""Audit throughput of the local engine against the ray engine with 1 and 2 workers, on real HH-RLHF lines
(docs/scale.md, "Audit on Ray Data"). Each run includes its start-up (Ray's, each actor's model and index load).

    nice -n 15 .venv/bin/python benchmarks/audit_scale.py [--lines 300] [--index DIR] [--data ../shared/data]

Without --index it uses DATA_DIR/index when there is one, else builds a 1,000-row index of a FULCRA file under
bench-results/ (throughput depends on the embedding, hardly on the index's size).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from valueguard.audit.ray_engine import run_audit_ray
from valueguard.audit.runner import run_audit
from valueguard.config import default_index_dir
from valueguard.estimation.estimator import ValueEstimator
from valueguard.policy.model import Policy


def index_for(args: argparse.Namespace) -> Path:
    if args.index:
        return args.index
    if (default_index_dir() / "manifest.json").is_file():
        return default_index_dir()
    from valueguard.embedders.backends import make_index_embedder
    from valueguard.estimation.value_index import ValueIndex
    from valueguard.reference import ReferenceSet

    out = Path("bench-results/scale-index")
    if not (out / "manifest.json").is_file():
        ref = ReferenceSet.from_files([args.data / "fulcra" / "trustworthy_data.dev.jsonl"])
        ValueIndex.build(ReferenceSet(ref.records[:1000]), make_index_embedder(), readout="model").save(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--index", type=Path, default=None)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    index = index_for(args)
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    log = out / "scale-input.jsonl"
    lines = (args.data / "hh-rlhf" / "helpful_test.jsonl").read_text(encoding="utf-8").splitlines()[: args.lines]
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rows = []
    start = time.perf_counter()
    estimator = ValueEstimator.from_index(index)
    local = run_audit(estimator, [log], out / "scale-local.jsonl", policy=Policy.load("default"),
                      batch_size=args.batch_size)
    rows.append(("local", 1, local.audited, time.perf_counter() - start))
    for workers in (1, 2):
        r = run_audit_ray(index, [log], out / f"scale-ray{workers}.jsonl", batch_size=args.batch_size,
                          workers=workers)
        same = (out / f"scale-ray{workers}.jsonl").read_bytes() == (out / "scale-local.jsonl").read_bytes()
        rows.append((f"ray{' (records identical)' if same else ' (RECORDS DIFFER)'}", workers, r.audited, r.seconds))
    print(f"{args.lines} HH-RLHF lines, index {index}, batch {args.batch_size}; seconds include start-up")
    print("| engine | workers | responses | seconds | responses/s |\n|---|---|---|---|---|")
    for name, workers, n, seconds in rows:
        print(f"| {name} | {workers} | {n} | {seconds:.1f} | {n / seconds:.1f} |")


if __name__ == "__main__":
    main()
