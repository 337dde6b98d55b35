"""The learning curve of teaching on a domain shift (docs/teach.md): how many of one model's labelled answers does
the guard need before it reads that model's other answers well?

Fit on FULCRA's annotated file alone, teach with 0 / 50 / 200 / 1,000 rows of one model's evaluator-scored answers
(what `valueguard index add` folds in), and test on that model's other answers. The split is by prompt: a test
prompt is never taught, and annotated rows that share a test prompt are left out of the index too. The read-out
is the one the guard runs (quality/heldout.py's path: estimator.read_out over exact inner-product neighbours, the
read-out refitted through the ReadOut protocol on all rows at each size, as `index add` refits it). Embeddings are cached under
DATA_DIR/cache (heldout.embed_cached), so a second run takes seconds.

    VALUEGUARD_DATA_DIR=/tmp/vg python benchmarks/teach_curve.py [--data ../shared/data] [--seeds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
from valueguard.estimation.readout import READOUTS
from valueguard.quality.heldout import HeldOut, _embed, _predict, metrics
from valueguard.reference import ReferenceSet

SIZES = (0, 50, 200, 1000)
ANNOTATED = "fulcra/trustworthy_data.dev.jsonl"
TAUGHT = "fulcra/harmless_test_openai_gpt-4.dev.jsonl"


def split_by_prompt(prompts: list[str], test_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(test rows, teaching pool in a random order): whole prompts go to the test set until it has `test_rows`."""
    rng = np.random.default_rng(seed)
    distinct = list(dict.fromkeys(prompts))
    order = rng.permutation(len(distinct))
    test_prompts: set[str] = set()
    count = 0
    by_prompt: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_prompt.setdefault(p, []).append(i)
    for j in order:
        if count >= test_rows:
            break
        test_prompts.add(distinct[j])
        count += len(by_prompt[distinct[j]])
    test = np.array([i for i, p in enumerate(prompts) if p in test_prompts])
    pool = np.array([i for i, p in enumerate(prompts) if p not in test_prompts])
    return test, pool[rng.permutation(len(pool))]


def curve(data: Path, seeds: int, readout: str, sizes: tuple[int, ...] = SIZES) -> list[dict]:
    annotated = ReferenceSet.from_files([data / ANNOTATED])
    taught = ReferenceSet.from_files([data / TAUGHT])
    both = ReferenceSet(annotated.records + taught.records)
    embedded = _embed(both, SentenceTransformerEmbedder(), None)  # once: every size and seed reads these rows
    n_ann = len(annotated)
    prompts = [r.prompt for r in taught]
    rows = []
    for seed in range(seeds):
        test, pool = split_by_prompt(prompts, len(taught) - max(sizes), seed)
        test_prompts = {prompts[i] for i in test}
        base = np.array([i for i, r in enumerate(annotated) if r.prompt not in test_prompts])
        for size in sizes:
            train = np.concatenate([base, n_ann + pool[:size]])
            start = time.perf_counter()
            values, against, conf = _predict(embedded, embedded, train, n_ann + test, readout=readout,
                                             use_prompt=True, k=DEFAULT_K, tau=DEFAULT_TAU)
            h = HeldOut(both.value_matrix()[n_ann + test], np.array(["model"] * len(test)), values, against, conf)
            m = metrics(h)["model"]
            rows.append({"seed": seed, "taught": size, "index_rows": len(train), "test_rows": len(test),
                         "test_violations": int(h.violated.sum()), "ap": m["violation_ap"],
                         "auc": m["violation_auc"], "r": m["pearson_mean"],
                         "fit_seconds": time.perf_counter() - start})
            print(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()),
                  file=sys.stderr, flush=True)  # a long run shows (and keeps) each row as it comes
    return rows


def table(rows: list[dict], sizes: tuple[int, ...] = SIZES) -> str:
    def cell(vals: list[float]) -> str:
        return f"{np.mean(vals):.2f} ± {np.std(vals):.2f}" if len(vals) > 1 else f"{vals[0]:.2f}"

    seeds = len({r["seed"] for r in rows})
    lines = ["| taught rows | index rows | violation AP | violation AUC | mean Pearson r | refit + test s |",
             "|---:|---:|---|---|---|---:|"]
    for size in sizes:
        at = [r for r in rows if r["taught"] == size]
        lines.append(f"| {size:,} | {at[0]['index_rows']:,} | {cell([r['ap'] for r in at])} | "
                     f"{cell([r['auc'] for r in at])} | {cell([r['r'] for r in at])} | "
                     f"{np.mean([r['fit_seconds'] for r in at]):.1f} |")
    first = [r for r in rows if r["taught"] == sizes[0]]
    lines.append(f"\n{seeds} seed(s) (mean ± sd over seeds); test: {first[0]['test_rows']} answers per seed "
                 f"({np.mean([r['test_violations'] for r in first]):.0f} violations on average), no test prompt "
                 f"taught or in the index.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="The FULCRA mirror (has fulcra/).")
    ap.add_argument("--seeds", type=int, default=3, help="Random splits by prompt.")
    ap.add_argument("--readout", choices=list(READOUTS), default="model", help="The read-out refitted and read.")
    args = ap.parse_args(argv)
    print(f"## Teaching {Path(TAUGHT).name} answers on top of {Path(ANNOTATED).name} "
          f"(read-out: {args.readout})\n")
    print(table(curve(args.data, args.seeds, args.readout)))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
