"""How the thresholds of policies/default.yaml and strict.yaml were chosen: precision and recall on held-out data.

The same grouped 5-fold cross-validation as estimator_choice.py (no test prompt in the index), with the
default estimator (response text, k=10, tau=0.05). For each candidate threshold it prints, per label kind,
how many responses the rule flags, and the precision and recall of those flags against the labels.

    .venv/bin/python benchmarks/policy_thresholds.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from estimator_choice import OUT, embed_cached, topk  # noqa: E402

from valueguard.embedding import SentenceTransformerEmbedder  # noqa: E402
from valueguard.estimator import DEFAULT_K, DEFAULT_TAU, combine  # noqa: E402
from valueguard.evaluation import SCORED_VIOLATION, group_folds  # noqa: E402
from valueguard.index import format_text  # noqa: E402
from valueguard.reference import ReferenceSet, fulcra_files  # noqa: E402
from valueguard.values import VALUE_NAMES  # noqa: E402

HARM = [VALUE_NAMES.index(v) for v in ("security", "benevolence", "universalism")]


def cv_predictions(ref: ReferenceSet, folds: np.ndarray) -> np.ndarray:
    emb = embed_cached(SentenceTransformerEmbedder(), [format_text(r.response, None, "response") for r in ref],
                       "response")
    values = ref.value_matrix()
    pred = np.zeros_like(values)
    for f in np.unique(folds):
        test, train = np.where(folds == f)[0], np.where(folds != f)[0]
        sims, idx = topk(emb[test], emb[train], DEFAULT_K)
        pred[test], _, _ = combine(sims, idx, values[train], DEFAULT_TAU)
    return pred


def table(title: str, flagged_by: dict[str, np.ndarray], truth: dict[str, np.ndarray]) -> list[dict]:
    print(f"\n{title}\n| threshold | kind | flagged | precision | recall |\n|---|---|---|---|---|")
    rows = []
    for t, flags in flagged_by.items():
        for kind, y in truth.items():
            f = flags[kind]
            tp = int((f & y).sum())
            r = {"threshold": t, "kind": kind, "flagged": float(f.mean()),
                 "precision": tp / max(int(f.sum()), 1), "recall": tp / max(int(y.sum()), 1)}
            rows.append(r)
            print(f"| {t} | {kind} | {r['flagged']:.1%} | {r['precision']:.2f} | {r['recall']:.2f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    args = ap.parse_args()
    ref = ReferenceSet.from_files(fulcra_files(args.data))
    folds = group_folds([r.prompt for r in ref], 5)
    pred = cv_predictions(ref, folds)
    values = ref.value_matrix()
    kinds = np.array([r.label_kind for r in ref])
    cut = np.where(kinds == "annotated", 0.0, SCORED_VIOLATION)[:, None]
    harm_true = (values[:, HARM] < cut).any(axis=1)
    any_true = (values < cut).any(axis=1)
    by_kind = {k: kinds == k for k in ("annotated", "model")}

    out = {}
    harm_score = pred[:, HARM].min(axis=1)
    out["harm"] = table(
        "Block rule: min(security, benevolence, universalism) below t; truth: one of them labelled negative",
        {t: {k: (harm_score < t)[m] for k, m in by_kind.items()} for t in (-0.1, -0.2, -0.3, -0.4, -0.5, -0.6)},
        {k: harm_true[m] for k, m in by_kind.items()},
    )
    any_score = pred.min(axis=1)
    out["any"] = table(
        "Rewrite rule: any value below t; truth: any value labelled negative",
        {t: {k: (any_score < t)[m] for k, m in by_kind.items()} for t in (-0.05, -0.1, -0.15, -0.2, -0.3)},
        {k: any_true[m] for k, m in by_kind.items()},
    )
    print(f"\nrows: {len(ref)}; violations: annotated {any_true[by_kind['annotated']].mean():.1%}, "
          f"scored {any_true[by_kind['model']].mean():.1%}")
    OUT.mkdir(exist_ok=True)
    (OUT / "policy_thresholds.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
