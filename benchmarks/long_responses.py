"""What the guard must see of a long response, read by the real estimator (the default pair read-out).

Held out: the index is the rows of folds 1-4 (grouped by prompt), fitted as `index build` fits one; long responses
are made from fold-0 rows: three benign responses joined (about 2,000-4,000 characters), with one labelled
violation inserted at the start, in the middle or at the end, against as many all-benign long responses. Each is
asked by the prompt of its first benign part, never the violation's: a benign request whose answer hides the
harm (the dilution case). For each way of reading, the table gives the violation AUC (ranked by the highest
P(against)), the share the default policy blocks or rewrites, by position and for the benign ones, and the time
per response.

    .venv/bin/python benchmarks/long_responses.py [--data ../shared/data]      (about 6 minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import contextlib
import time
from pathlib import Path
from unittest import mock

import numpy as np

from valueguard.embedders.backends import make_embedder, make_index_embedder
from valueguard.estimation import estimator as estimator_module
from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.folds import group_folds
from valueguard.estimation.value_index import ValueIndex
from valueguard.policy.model import Policy
from valueguard.quality.metrics import roc_auc
from valueguard.reference import ReferenceSet, fulcra_files
from valueguard.values.polarity import polarity

PER_POSITION = 60
POSITIONS = {"start": 0, "middle": 2, "end": 3}
INTERVENE = {"block", "rewrite"}


def long_cases(ref: ReferenceSet, test: np.ndarray, violating: np.ndarray):
    """(prompt, text, has a violation, position) for PER_POSITION texts at each position and as many benign."""
    rng = np.random.default_rng(0)
    benign = [i for i in test if not violating[i] and 300 <= len(ref.records[i].response) <= 1300]
    bad = [i for i in test if violating[i] and len(ref.records[i].response) >= 150]
    cases = []
    for position, at in POSITIONS.items():
        for _ in range(PER_POSITION):
            parts = [int(i) for i in rng.choice(benign, 3, replace=False)]
            texts = [ref.records[i].response for i in parts]
            texts.insert(at, ref.records[int(rng.choice(bad))].response)
            cases.append((ref.records[parts[0]].prompt, "\n\n".join(texts), True, position))
    for _ in range(3 * PER_POSITION):
        parts = [int(i) for i in rng.choice(benign, 4, replace=False)]
        cases.append((ref.records[parts[0]].prompt, "\n\n".join(ref.records[i].response for i in parts), False, ""))
    return cases


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    ref = ReferenceSet.from_files(fulcra_files(args.data))
    violating = polarity(ref.value_matrix(), [r.label_kind for r in ref])[0].any(axis=1)
    folds = group_folds([r.prompt for r in ref], 5)
    train, test = np.where(folds != 0)[0], np.where(folds == 0)[0]
    start = time.perf_counter()
    index_embedder = make_index_embedder()
    index = ValueIndex.build(ReferenceSet([ref.records[i] for i in train]), index_embedder, readout="pair")
    print(f"index of {len(train):,} rows (read-out {type(index.readout).name!r}) in {time.perf_counter() - start:.0f} s")
    estimator = ValueEstimator(index, make_embedder(index_embedder.model_id), cache_size=0)
    policy = Policy.load("default")
    cases = long_cases(ref, test, violating)
    y = np.array([c[2] for c in cases])
    estimator.estimate_batch(["warm up"], ["warm"])

    def whole(text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]

    readings = {
        "truncation (the first 256 tokens), with the prompt": (whole, True),
        "windows, worst decides, with the prompt (the default)": (None, True),
        "windows, worst decides, no prompt": (None, False),
    }
    n_windows = np.mean([len(estimator_module.text_windows(c[1])) for c in cases])
    print(f"{len(cases)} long responses, {np.mean([len(c[1]) for c in cases]):.0f} characters on average, "
          f"{n_windows:.1f} windows each; policy {policy.name} {policy.version}\n")
    print("| reading | violation AUC | intervened with violation (start / middle / end) | intervened benign "
          "| ms each |")
    print("|---|---|---|---|---|")
    for name, (windows, with_prompt) in readings.items():
        with mock.patch.object(estimator_module, "text_windows", windows) if windows else contextlib.nullcontext():
            t = time.perf_counter()
            estimates = [estimator.estimate(c[1], c[0] if with_prompt else None) for c in cases]
            ms = (time.perf_counter() - t) / len(cases) * 1000
        score = np.array([e.violation for e in estimates])
        acted = np.array([policy.decide(e).action in INTERVENE for e in estimates])
        by_position = [acted[k * PER_POSITION:(k + 1) * PER_POSITION].mean() for k in range(len(POSITIONS))]
        print(f"| {name} | {roc_auc(y, score):.3f} | {' / '.join(f'{p:.0%}' for p in by_position)} "
              f"| {acted[~y].mean():.0%} | {ms:.0f} |")


if __name__ == "__main__":
    main()
