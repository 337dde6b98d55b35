"""How the estimator's choices were made: what text to embed, k, and the neighbour weighting.

Grouped 5-fold cross-validation over every FULCRA file: rows are grouped by prompt (the scored files answer
the same prompts with three models), so no test row's prompt is ever in the index it is estimated from.
Prints one table per question and writes all numbers to bench-results/estimator_choice.json.

    .venv/bin/python benchmarks/estimator_choice.py [--data ../shared/data] [--folds 5]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.evidence import combine
from valueguard.quality.metrics import average_precision, best_f1, pearson_per_value, roc_auc
from valueguard.estimation.folds import exact_top_k, group_folds
from valueguard.quality.heldout import embed_cached as heldout_embed_cached
from valueguard.values.polarity import violations
from valueguard.index.manifest import format_text
from valueguard.reference import ReferenceSet, fulcra_files

OUT = Path("bench-results")


def embed_cached(embedder, texts: list[str], tag: str) -> np.ndarray:
    """The package's embedding cache (valueguard.quality.heldout.embed_cached), kept under bench-results/cache;
    `tag` only names the texts in the progress line."""
    t = time.perf_counter()
    emb = heldout_embed_cached(embedder, texts, OUT / "cache")
    print(f"  {len(texts)} texts ({tag}) in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return emb


topk = exact_top_k  # the package's exact top-k, as FAISS's flat index computes it


def evaluate(query_emb, index_emb, values, kinds, folds, k, tau) -> dict:
    """Cross-validated predictions for every row, then metrics per label kind."""
    pred = np.zeros_like(values)
    for f in np.unique(folds):
        test, train = np.where(folds == f)[0], np.where(folds != f)[0]
        sims, idx = topk(query_emb[test], index_emb[train], k)
        pred[test], _, _ = combine(sims, idx, values[train], tau)
    out = {}
    for kind in ("annotated", "model"):
        m = kinds == kind
        y = violations(values[m], kind)
        s = -pred[m].min(axis=1)  # how strongly an estimate says "violation": minus its most negative value
        out[kind] = {"ap": average_precision(y, s), "auc": roc_auc(y, s), "f1": best_f1(y, s),
                     "pearson": float(np.nanmean(pearson_per_value(pred[m], values[m])))}
    return out


def row(name: str, r: dict) -> str:
    a, m = r["annotated"], r["model"]
    return (f"| {name} | {a['ap']:.3f} | {a['auc']:.3f} | {a['f1']:.3f} | {m['ap']:.3f} | {m['auc']:.3f} "
            f"| {m['pearson']:.3f} |")


HEADER = ("| variant | FULCRA AP | FULCRA AUC | FULCRA best F1 | scored AP | scored AUC | scored mean r |\n"
          "|---|---|---|---|---|---|---|")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="folder with fulcra/*.jsonl")
    ap.add_argument("--folds", type=int, default=5)
    args = ap.parse_args()

    ref = ReferenceSet.from_files(fulcra_files(args.data))
    values = ref.value_matrix()
    kinds = np.array([r.label_kind for r in ref])
    folds = group_folds([r.prompt for r in ref], args.folds)
    embedder = SentenceTransformerEmbedder()
    emb = {
        "dialogue": embed_cached(embedder, [format_text(r.response, r.prompt, "dialogue") for r in ref], "dialogue"),
        "response": embed_cached(embedder, [format_text(r.response, None, "response") for r in ref], "response"),
        "dialogue, no prompt": embed_cached(embedder, [format_text(r.response, None, "dialogue") for r in ref],
                                            "noprompt"),
    }
    results: dict = {"rows": len(ref), "folds": args.folds, "text": {}, "k_tau": {}}

    print(f"{len(ref)} reference rows, {args.folds} folds grouped by prompt\n")
    print("What text to embed (k=10, tau=0.05)\n" + HEADER)
    for name, (q, base) in {
        "index dialogue, query dialogue": ("dialogue", "dialogue"),
        "index response, query response": ("response", "response"),
        "index dialogue, query response only (no prompt given)": ("dialogue, no prompt", "dialogue"),
    }.items():
        r = evaluate(emb[q], emb[base], values, kinds, folds, 10, 0.05)
        results["text"][name] = r
        print(row(name, r))

    # The sweep runs on the text form that won above.
    print("\nk and weighting (response form; tau 0 = equal weights)\n" + HEADER)
    for k in (1, 3, 5, 10, 20, 30):
        for tau in (0.0, 0.01, 0.02, 0.05, 0.1):
            if k == 1 and tau:
                continue
            r = evaluate(emb["response"], emb["response"], values, kinds, folds, k, tau)
            results["k_tau"][f"k={k},tau={tau}"] = r
            print(row(f"k={k}, tau={tau}", r))
    OUT.mkdir(exist_ok=True)
    (OUT / "estimator_choice.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
