"""Each response read also without a short first or last sentence, the worst reading deciding
(valueguard/estimation/windows.py; docs/quality.md, "Short sentences"): what it buys, and what it costs.

A friendly opener that is not in valueguard/index/openers.py's list ("Good idea!") or a closing question ("Does
that help?") pulls a violating answer towards the benign anchors. The estimator and eval read each text whole, and
again without its first sentence and without its last one when that sentence has at most SHORT_SENTENCE_WORDS
words; the reading with the highest P(against) stands for the text, as the worst window does for a long text.
"Before" is the text read whole only (the readings switched off, as the code before this change read it).

Out of fold as benchmarks/openers.py: the pair read-out fitted on four of the five grouped folds (with the benign
anchors), and the fifth fold's rows with a prompt read whole and with the readings: the violating rows with
unlisted openers and closers, and every row as it is (AP, and the default policy's intervene rate on the rows that
violate nothing: the precision side). Then the 600 benign HH-RLHF turns through the default index's estimator
(`make index`): the policy's actions, and the guarded call's latency with and without the readings, alternated in
random order in this one run. About 5 minutes on the 2 cores.

    VALUEGUARD_DATA_DIR=.valueguard .venv/bin/python benchmarks/short_sentences.py [--fold 0] [--words 6] [--no-cost]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from unittest import mock

import numpy as np

import valueguard.estimation.windows as windows_module
import valueguard.quality.heldout as heldout_module
from valueguard import ValueEstimator, ValueGuard
from valueguard.config import data_dir
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.folds import group_folds
from valueguard.estimation.windows import SHORT_SENTENCE_WORDS, without_short_sentences
from valueguard.index.manifest import format_text
from valueguard.policy.actions import FLAGGING
from valueguard.policy.model import Policy
from valueguard.quality.compare import policy_actions
from valueguard.quality.heldout import HeldOut, held_out
from valueguard.quality.metrics import average_precision
from valueguard.reference import ReferenceSet, fulcra_files
from valueguard.reference.benign import BENIGN_FILE, benign_test_turns, default_anchor_turns
from valueguard.values.polarity import violated_rows

# None in openers.py's list; the last of each is longer than SHORT_SENTENCE_WORDS (6), to measure another limit.
OPENERS = ("Good idea! ", "Great idea! ", "That's a great plan. ", "That sounds like a fun project to try! ")
CLOSERS = (" Does that help?", " Hope this helps!", " Would you like more details?", " What else do you need?",
           " Let me know if you have any other questions!", " Is there anything else I can help you with?")


@contextmanager
def whole_only() -> Iterator[None]:
    """The estimator and eval as before the readings: every text read whole (windows for a long one)."""
    with mock.patch.object(windows_module, "without_short_sentences", lambda text: []), \
            mock.patch.object(heldout_module, "without_short_sentences", lambda text: []):
        yield


def views(text: str) -> list[str]:
    """`text`, then what the estimator also reads of it: without a short first or last sentence, where it has one."""
    plain = format_text(text, None, "response")
    return [text] + [plain[a:b] for a, b in without_short_sentences(plain)]


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
    parser.add_argument("--words", type=int, default=SHORT_SENTENCE_WORDS,
                        help="the longest sentence read away, in words (the shipped limit by default)")
    parser.add_argument("--no-cost", action="store_true", help="skip timing the guarded call")
    args = parser.parse_args()
    windows_module.SHORT_SENTENCE_WORDS = args.words  # without_short_sentences reads it on each call
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
    with whole_only():  # the views are the readings, each read once
        h = held_out(train, ReferenceSet(records), SentenceTransformerEmbedder(), readout="pair",
                     anchors=default_anchor_turns(data_dir()))
    assert len(h.kinds) == len(records)
    print(f"fold {args.fold}: {len(test)} rows with a prompt ({len(bad)} violating), read out of fold by the pair "
          f"read-out ({len(train)} training rows); default policy {policy.version}; views: the text, and without "
          f"a first or last sentence of at most {args.words} words")
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
    estimator = ValueEstimator.default(cache_size=0)
    turns = benign_test_turns(data_dir() / BENIGN_FILE)
    texts = [views(r) for r, _ in turns]
    flat = [(v, p) for (_, p), vs in zip(turns, texts) for v in vs]
    with whole_only():
        est = estimator.estimate_batch([v for v, _ in flat], [p for _, p in flat])
    at, whole_acts, worst_acts = 0, [], []
    for vs in texts:
        group = est[at:at + len(vs)]
        at += len(vs)
        for e, acts in ((group[0], whole_acts), (max(group, key=lambda x: x.violation), worst_acts)):
            acts.append(policy.evaluate(e.values, e.confidence, e.against).action)
    rates = [(np.isin(a, FLAGGING).mean(), np.isin(a, ["log"]).mean()) for a in (whole_acts, worst_acts)]
    has_view = [len(v) > 1 for v in texts]
    print(f"benign HH-RLHF turns ({len(turns)}, the default index; {np.mean(has_view):.0%} "
          f"with a view): intervened {rates[0][0]:.1%} / {rates[1][0]:.1%}, logged {rates[0][1]:.1%} / "
          f"{rates[1][1]:.1%} (whole / worst view)")
    if not args.no_cost:
        print_cost(ValueGuard.from_policy(policy, estimator=estimator), turns, has_view)
    print(f"({time.perf_counter() - start:.0f} s)")


def print_cost(guard: ValueGuard, turns: list[tuple[str, str | None]], has_view: list[bool], repeats: int = 3) -> None:
    """p50 / mean of the guarded call (estimator cache off) on every benign turn with its prompt, whole only against
    with the readings, the two alternated in random order so that the machine's load falls on both alike."""
    guard.check("Warm up.", prompt="Hello?")
    rng = random.Random(0)
    times: dict[str, list[float]] = {"whole": [], "readings": []}
    for _ in range(repeats):
        for response, prompt in turns:
            order = ["whole", "readings"]
            rng.shuffle(order)
            for name in order:
                with whole_only() if name == "whole" else nullcontext():
                    t = time.perf_counter()
                    guard.check(response, prompt=prompt)
                    times[name].append(time.perf_counter() - t)
    mask = has_view * repeats
    print(f"\nguarded call, default policy, with the prompt ({repeats} x {len(turns)} benign turns, "
          f"{sum(has_view)} with a view): ms, whole only / with the readings")
    print("| turns | p50 | mean |\n|---|---|---|")
    for label, keep in (("all", [True] * len(mask)), ("with a view", mask), ("without", [not m for m in mask])):
        a, b = ([1000 * t for t, k in zip(times[n], keep) if k] for n in ("whole", "readings"))
        print(f"| {label} | {statistics.median(a):.2f} / {statistics.median(b):.2f} | "
              f"{statistics.mean(a):.2f} / {statistics.mean(b):.2f} |")


if __name__ == "__main__":
    main()
