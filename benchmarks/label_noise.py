"""How much of the violation labels a reader of the response cannot learn: a label-noise estimate (docs/quality.md).

The scored files' labels are the paper's evaluator reading a whole (prompt, answer) dialogue, and it scores some
bare refusals as working against a value because the *request* does (a refusal to a racist question gets
universalism -0.98). This script counts those rows, on the labels alone:

- per label kind: the violations whose response is a refusal (it opens with an apology or an inability, and says
  it cannot or will not help within its first 200 characters);
- identical responses labelled both ways (the same text, a violation for one prompt and not for another);
- the same-prompt stance pairs (`valueguard eval --compare`) whose "violating" answer is such a refusal;
- the ceiling for a read-out of the response text alone: identical texts get one score, so at best a group of
  identical texts is ranked as one block, every other row perfectly.

With `--held-out-cache DIR` (the folder `make thresholds` saves the default read-out's 5-fold estimates in; they
are computed and saved there when absent, about 8 minutes), it also measures the default read-out and policy on
the labels as they are and with those refusals relabelled as not violating.

    .venv/bin/python benchmarks/label_noise.py [--data DIR] [--held-out-cache bench-results/held-out]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from valueguard.config import data_dir
from valueguard.quality.compare import stance_pair_rows
from valueguard.quality.metrics import average_precision
from valueguard.reference import ReadReport, ReferenceSet, fulcra_files
from valueguard.reference.hygiene import is_refusal
from valueguard.reference.record import file_stem, iter_jsonl
from valueguard.values.polarity import polarity

def evaluator_labels(ref: ReferenceSet, paths: list[Path]) -> np.ndarray:
    """The value matrix with each scored row's scores as the evaluator wrote them: the reader relabels the refusals
    it scored as violations (valueguard/reference/hygiene.py), and this script measures those labels."""
    raw = {f"{file_stem(p)}:{n}": obj["value_reward"] for p in paths for n, obj in iter_jsonl(p, ReadReport(str(p)))
           if "value_reward" in obj}
    return np.array([raw.get(r.id, r.values.to_array()) for r in ref], dtype=np.float32)


def identical_groups(texts: list[str]) -> list[list[int]]:
    """Row indices of texts that are the same up to case and whitespace."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(texts):
        groups[" ".join(t.lower().split())].append(i)
    return list(groups.values())


def text_only_ceiling(y: np.ndarray, texts: list[str], draws: int = 200, seed: int = 0) -> float:
    """The expected AP of the best read-out of the response text alone: every row ranked by its own label, except
    that identical texts share one score (their group's share of violations), their order inside a tie random."""
    score = np.zeros(len(y))
    for rows in identical_groups(texts):
        score[rows] = y[rows].mean()
    rng = np.random.default_rng(seed)
    # average_precision breaks no ties in a row's favour: a tiny random jitter draws one order inside each tie.
    return float(np.mean([average_precision(y, score + rng.uniform(0, 1e-9, len(y))) for _ in range(draws)]))


def label_table(ref: ReferenceSet, y: np.ndarray, refusal: np.ndarray, kinds: np.ndarray) -> None:
    print("| label kind | rows | violations | refusals | refusals labelled a violation | share of the violations "
          "that are refusals |")
    print("|---|---|---|---|---|---|")
    for kind, name in (("annotated", "FULCRA (annotated)"), ("model", "scored (evaluator)")):
        m = kinds == kind
        v, r, rv = int((y & m).sum()), int((refusal & m).sum()), int((y & refusal & m).sum())
        print(f"| {name} | {int(m.sum())} | {v} | {r} | {rv} ({rv / max(r, 1):.1%}) | {rv / max(v, 1):.1%} |")

    mixed = [rows for rows in identical_groups([r.response for r in ref]) if 0 < y[rows].sum() < len(rows)]
    print(f"\nidentical responses labelled both ways: {len(mixed)} texts, {sum(map(len, mixed))} rows, "
          f"{sum(int(y[rows].sum()) for rows in mixed)} of them violations")
    for rows in sorted(mixed, key=len, reverse=True)[:3]:
        print(f"  {len(rows)} x {ref.records[rows[0]].response[:60]!r}: {int(y[rows].sum())} labelled a violation")

    scored = np.where(kinds == "model")[0]
    ceiling = text_only_ceiling(y[scored], [ref.records[i].response for i in scored])
    print(f"scored AP ceiling of a read-out of the response text alone (identical texts tied): {ceiling:.3f}")
    pairs = stance_pair_rows([r.prompt for r in ref], kinds, y)
    noisy = sum(1 for b, _ in pairs if refusal[b])
    print(f"stance pairs: {len(pairs)}, of which the 'violating' answer is a refusal: {noisy} ({noisy / len(pairs):.1%})")


def read_out_table(ref: ReferenceSet, as_scored: np.ndarray, cache: Path) -> None:
    from valueguard.cli.quality import _held_out
    from valueguard.policy.model import Policy
    from valueguard.quality.compare import intervene_rates, policy_actions
    from valueguard.quality.compare import stance_pairs
    from valueguard.quality.heldout import HeldOut

    h, _ = _held_out([], [], 5, "pair", False, None, cache=cache)  # the default read-out, as make thresholds
    assert np.array_equal(h.true, ref.value_matrix()), "held-out rows are not the reference rows"
    actions = policy_actions(Policy.load("default"), h)
    prompts = [r.prompt for r in ref]
    # h holds the labels as read (the refusals relabelled); the same estimates scored on the evaluator's own labels.
    evaluator = HeldOut(as_scored, h.kinds, h.values, h.against, h.confidence)
    print("\n| scored labels | violations | AP | stance pairs | default policy: intervene P / R |")
    print("|---|---|---|---|---|")
    for name, held in (("as the evaluator scored them", evaluator), ("refusals relabelled as not violating "
                                                                    "(as read)", h)):
        m = held.kinds == "model"
        ap = average_precision(held.violated[m], held.violation[m])
        st = stance_pairs(held, prompts)
        iv = intervene_rates(actions, held)["model"]
        print(f"| {name} | {int(held.violated[m].sum())} | {ap:.3f} | {st['accuracy']:.3f} ({st['pairs']}) | "
              f"{iv['precision']:.3f} / {iv['recall']:.3f} |")
    fulcra = h.kinds == "annotated"
    print(f"(FULCRA rows, unchanged: AP {average_precision(h.violated[fulcra], h.violation[fulcra]):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="data directory (default: valueguard's)")
    ap.add_argument("--held-out-cache", type=Path, default=None,
                    help="also measure the default read-out on its held-out estimates saved in this folder")
    args = ap.parse_args()
    paths = fulcra_files(args.data or data_dir())
    ref = ReferenceSet.from_files(paths)
    kinds = np.array([r.label_kind for r in ref])
    as_scored = evaluator_labels(ref, paths)
    against, _ = polarity(as_scored, kinds)
    y = against.any(axis=1)
    refusal = np.array([is_refusal(r.response) for r in ref])
    label_table(ref, y, refusal, kinds)
    if args.held_out_cache is not None:
        read_out_table(ref, as_scored, args.held_out_cache)


if __name__ == "__main__":
    main()
