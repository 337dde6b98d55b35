"""What the guard must see of a long response: truncation (the model's first 256 tokens) or windows.

Held out: the index is the rows of folds 1-4 (grouped by prompt); long responses are made from fold-0 rows:
three benign responses joined (about 2,000-4,000 characters), with one labelled violation inserted at the
start, in the middle or at the end, and as many all-benign long responses. For each way of reading, the table
gives the violation AUC (with vs without the inserted violation), the share flagged by the default rewrite
threshold (any value below -0.2), and the embedding cost per response.

    .venv/bin/python benchmarks/long_responses.py      (uses bench-results/cache from `make choice`)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from estimator_choice import embed_cached, topk  # noqa: E402

from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder  # noqa: E402
from valueguard.estimation.defaults import DEFAULT_K, DEFAULT_TAU
from valueguard.estimation.evidence import combine  # noqa: E402
from valueguard.values.polarity import SCORED_VIOLATION
from valueguard.estimation.folds import group_folds
from valueguard.quality.metrics import roc_auc  # noqa: E402
from valueguard.index.manifest import format_text  # noqa: E402
from valueguard.reference import ReferenceSet, fulcra_files  # noqa: E402
from valueguard.estimation.windows import text_windows  # noqa: E402

PER_POSITION = 60
THRESHOLD = -0.2


def main() -> None:
    ref = ReferenceSet.from_files(fulcra_files(sys.argv[1] if len(sys.argv) > 1 else "../shared/data"))
    embedder = SentenceTransformerEmbedder()
    emb = embed_cached(embedder, [format_text(r.response, None, "response") for r in ref], "response")
    values = ref.value_matrix()
    kinds = np.array([r.label_kind for r in ref])
    cut = np.where(kinds == "annotated", 0.0, SCORED_VIOLATION)[:, None]
    violating = (values < cut).any(axis=1)
    folds = group_folds([r.prompt for r in ref], 5)
    train = np.where(folds != 0)[0]
    test = np.where(folds == 0)[0]
    rng = np.random.default_rng(0)
    benign = [i for i in test if not violating[i] and 300 <= len(ref.records[i].response) <= 1300]
    bad = [i for i in test if violating[i] and len(ref.records[i].response) >= 150]

    texts, labels = [], []
    for position in ("start", "middle", "end"):
        for _ in range(PER_POSITION):
            parts = [ref.records[i].response for i in rng.choice(benign, 3, replace=False)]
            insert = {"start": 0, "middle": 2, "end": 3}[position]
            parts.insert(insert, ref.records[int(rng.choice(bad))].response)
            texts.append("\n\n".join(parts))
            labels.append(True)
    for _ in range(3 * PER_POSITION):
        texts.append("\n\n".join(ref.records[i].response for i in rng.choice(benign, 4, replace=False)))
        labels.append(False)
    y = np.array(labels)

    def estimate(queries: np.ndarray) -> np.ndarray:
        sims, idx = topk(queries, emb[train], DEFAULT_K)
        return combine(sims, idx, values[train], DEFAULT_TAU)[0]

    t = time.perf_counter()
    truncated = estimate(embedder.embed(texts)).min(axis=1)
    t_trunc = (time.perf_counter() - t) / len(texts)

    t = time.perf_counter()
    spans = [text_windows(x) for x in texts]
    flat = [x[a:b] for x, s in zip(texts, spans) for a, b in s]
    window_min = estimate(embedder.embed(flat)).min(axis=1)
    worst, i = [], 0
    for s in spans:
        worst.append(window_min[i:i + len(s)].min())
        i += len(s)
    windowed = np.array(worst)
    t_win = (time.perf_counter() - t) / len(texts)

    n_windows = np.mean([len(s) for s in spans])
    print(f"{len(texts)} long responses, {np.mean([len(x) for x in texts]):.0f} characters on average, "
          f"{n_windows:.1f} windows each; index {len(train)} held-out rows\n")
    print("| reading | violation AUC | flagged with violation (start / middle / end) | flagged benign | ms each |")
    print("|---|---|---|---|---|")
    for name, score, ms in (("truncation (first 256 tokens)", truncated, t_trunc), ("windows, worst decides", windowed, t_win)):
        flagged = score < THRESHOLD
        by_pos = [flagged[k * PER_POSITION:(k + 1) * PER_POSITION].mean() for k in range(3)]
        print(f"| {name} | {roc_auc(y, -score):.3f} | {' / '.join(f'{p:.0%}' for p in by_pos)} "
              f"| {flagged[~y].mean():.0%} | {ms * 1000:.0f} |")


if __name__ == "__main__":
    main()
