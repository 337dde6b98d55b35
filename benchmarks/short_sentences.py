"""Measured, not shipped: read a response also without a short first or last sentence, the worst reading deciding
(docs/quality.md, "Typographic punctuation", the closing paragraph).

A friendly opener that is not in valueguard/index/openers.py's list ("Good idea!") or a closing question ("Does
that help?") pulls a violating answer towards the benign anchors. Here each text is read whole, and again without
its first sentence and without its last one when that sentence has at most SHORT words (the views); the view with
the highest P(against) stands for the text, as the estimator's worst window does for a long text.

Out of fold as benchmarks/openers.py: the pair read-out fitted on four of the five grouped folds (with the benign
anchors), and the fifth fold's rows with a prompt read whole and as the worst view: the violating rows with
unlisted openers and closers, and every row as it is (AP, and the default policy's intervene rate on the rows that
violate nothing: the precision side). Then the 600 benign HH-RLHF turns through the default index's estimator
(`make index`). About 4 minutes on the 2 cores.

    VALUEGUARD_DATA_DIR=.valueguard .venv/bin/python benchmarks/short_sentences.py [--fold 0]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from valueguard import ValueEstimator
from valueguard.config import data_dir
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.folds import group_folds
from valueguard.policy.actions import FLAGGING
from valueguard.policy.model import Policy
from valueguard.quality.compare import policy_actions
from valueguard.quality.heldout import HeldOut, held_out
from valueguard.quality.metrics import average_precision
from valueguard.reference import ReferenceSet, fulcra_files
from valueguard.reference.benign import BENIGN_FILE, benign_test_turns, default_anchor_turns
from valueguard.values.polarity import violated_rows

SHORT = 6  # words: "That's a great plan." is 4, "Is there anything else I can help you with?" is 9
OPENERS = ("Good idea! ", "Great idea! ", "That's a great plan. ")  # none in openers.py's list
CLOSERS = (" Does that help?", " Hope this helps!", " Would you like more details?", " What else do you need?")
_FIRST = re.compile(r"^\s*([^.!?\n]{1,80}?[.!?]+)\s+(?=\S)")
_LAST = re.compile(r"(?<=[.!?])\s+([^.!?\n]{1,80}?[.!?]+)\s*$")


def views(text: str) -> list[str]:
    """`text`, then `text` without a short first sentence and without a short last one, where it has them."""
    out = [text]
    first = _FIRST.match(text)
    if first and len(first.group(1).split()) <= SHORT and re.search(r"\w", text[first.end():]):
        out.append(text[first.end():])
    last = _LAST.search(text)
    if last and len(last.group(1).split()) <= SHORT and re.search(r"\w", text[:last.start()]):
        out.append(text[:last.start()])
    return out


def worst(h: HeldOut, groups: list[list[int]]) -> tuple[HeldOut, HeldOut]:
    """(each text read whole, each text as its worst view): `groups[i]` are text i's rows in `h`, whole first."""
    whole = [g[0] for g in groups]
    pick = [max(g, key=lambda i: h.against[i].max()) for g in groups]

    def take(rows: list[int]) -> HeldOut:
        return HeldOut(h.true[rows], h.kinds[rows], h.values[rows], h.against[rows], h.confidence[rows])

    return take(whole), take(pick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", type=int, default=0, help="the grouped fold (0-4) that is read")
    args = parser.parse_args()
    start = time.perf_counter()
    policy = Policy.load("default")
    ref = ReferenceSet.from_files(fulcra_files(data_dir()))
    fold = group_folds([r.prompt for r in ref], 5, 0)
    violated = violated_rows(ref.value_matrix(), [r.label_kind for r in ref])
    train = ReferenceSet([r for i, r in enumerate(ref.records) if fold[i] != args.fold])
    test = [i for i in range(len(ref)) if fold[i] == args.fold and ref.records[i].prompt]
    bad = [i for i in test if violated[i]]
    # (name, the texts) of each variant: every test row as it is, then the violating rows with an opener or closer.
    variants = [("as they are", [(i, ref.records[i].response) for i in test])]
    variants += [(o.strip(), [(i, o + ref.records[i].response) for i in bad]) for o in OPENERS]
    variants += [(f"closing: {c.strip()}", [(i, ref.records[i].response + c) for i in bad]) for c in CLOSERS]
    records, groups = [], []
    for v, (_, texts) in enumerate(variants):
        groups.append([])
        for i, text in texts:
            rows = []
            for j, view in enumerate(views(text)):
                rows.append(len(records))
                records.append(ref.records[i].model_copy(update={"id": f"{ref.records[i].id}#{v}.{j}",
                                                                 "response": view}))
            groups[-1].append(rows)
    h = held_out(train, ReferenceSet(records), SentenceTransformerEmbedder(), readout="pair",
                 anchors=default_anchor_turns(data_dir()))
    assert len(h.kinds) == len(records)
    print(f"fold {args.fold}: {len(test)} rows with a prompt ({len(bad)} violating), read out of fold by the pair "
          f"read-out ({len(train)} training rows); default policy {policy.version}; views: the text, and without "
          f"a first or last sentence of at most {SHORT} words")
    print("| rows | with a view | AP, whole / worst view | intervened on violating rows | intervened on the rest |\n"
          "|---|---|---|---|---|")
    for (name, _), g in zip(variants, groups):
        whole, worst_view = worst(h, g)
        y = whole.violated
        flagged = [np.isin(policy_actions(policy, x), FLAGGING) for x in (whole, worst_view)]
        cells = []
        for part in (y, ~y):
            if part.any():
                cells.append(f"{flagged[0][part].mean():.1%} / {flagged[1][part].mean():.1%}")
            else:
                cells.append("-")
        ap = (f"{average_precision(y, whole.violation):.3f} / {average_precision(y, worst_view.violation):.3f}"
              if (~y).any() else "-")
        print(f"| {name} ({len(g)}) | {np.mean([len(x) > 1 for x in g]):.0%} | {ap} | {cells[0]} | {cells[1]} |")
    estimator = ValueEstimator.default()
    turns = benign_test_turns(data_dir() / BENIGN_FILE)
    texts = [views(r) for r, _ in turns]
    flat = [(v, p) for (_, p), vs in zip(turns, texts) for v in vs]
    est = estimator.estimate_batch([v for v, _ in flat], [p for _, p in flat])
    at, whole_acts, worst_acts = 0, [], []
    for vs in texts:
        group = est[at:at + len(vs)]
        at += len(vs)
        for e, acts in ((group[0], whole_acts), (max(group, key=lambda x: x.violation), worst_acts)):
            acts.append(policy.evaluate(e.values, e.confidence, e.against).action)
    rates = [(np.isin(a, FLAGGING).mean(), np.isin(a, ["log"]).mean()) for a in (whole_acts, worst_acts)]
    print(f"benign HH-RLHF turns ({len(turns)}, the default index; {np.mean([len(v) > 1 for v in texts]):.0%} "
          f"with a view): intervened {rates[0][0]:.1%} / {rates[1][0]:.1%}, logged {rates[0][1]:.1%} / "
          f"{rates[1][1]:.1%} (whole / worst view)")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
