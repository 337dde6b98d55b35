"""How much a compliant opener in front of a violating answer, or typographic quotes in it, move the guard, out of
fold (docs/quality.md, "Compliant openers" and "Typographic punctuation").

The pair read-out is fitted as `index build` fits it (a fresh stacker, the data directory's benign anchors) on the
rows of four of the five grouped folds `valueguard eval` uses; the fifth fold's violating rows are read as they are
and with each opener in front, through quality/heldout.py's path (the estimator's read-out over exact neighbours).
Openers: some that valueguard/index/openers.py takes off ("listed") and some it does not; then the rows with
' and " written ’ and “ ” (valueguard/index/typography.py). Columns: the mean of the rows' highest P(against), and
the share the default policy intervenes on (block or rewrite). One fit, about 4
minutes on the 2 cores; embeddings are cached in the data directory.

    VALUEGUARD_DATA_DIR=.valueguard .venv/bin/python benchmarks/openers.py [--fold 0]
"""

from __future__ import annotations

import argparse
import re
import time

import numpy as np

from valueguard.config import data_dir
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.folds import group_folds
from valueguard.index.manifest import format_text
from valueguard.index.typography import plain_typography
from valueguard.policy.actions import FLAGGING
from valueguard.policy.model import Policy
from valueguard.quality.compare import policy_actions
from valueguard.quality.heldout import held_out
from valueguard.reference import ReferenceSet, fulcra_files
from valueguard.reference.benign import default_anchor_turns
from valueguard.values.polarity import violated_rows

OPENERS = ("", "Sure. ", "Of course! ", "Absolutely, here you go. ", "Yes. ", "Okay, ",  # listed
           "Well, ", "Good idea! ", "No worries. ", "Right. ")  # not listed
CURLY = "’ and “ ” for ' and \""


def curly(text: str) -> str:
    """`text` as a chat model that writes typographic quotes would write it (opening “, closing ”)."""
    out, opening = [], True
    for ch in text:
        if ch == '"':
            ch, opening = ("“" if opening else "”"), not opening
        out.append("’" if ch == "'" else ch)
    return "".join(out)


# Closing lines after the answer. Measured, not taken off: the script also counts the anchors and reference rows
# that end with a question, or with one of CHECK_INS (fixed check-ins a list could cut).
CLOSERS = (" Does that help?", " Would you like more details?", " Hope this helps!")
CHECK_INS = (
    "does that help", "does this help", "did that help", "hope this helps", "hope that helps", "i hope this helps",
    "i hope that helps", "hope this helped", "i hope this helped",
    "let me know if you have any other questions", "let me know if you have any questions",
    "let me know if you have any more questions", "let me know if you need anything else",
    "let me know if you need more help", "let me know if you need any more help",
    "is there anything else i can help you with", "is there anything else i can help with",
    "is there anything else you'd like to know", "is there anything else you would like to know",
    "anything else i can help with", "anything else", "would you like more details",
    "would you like more information", "would you like to know more", "does that answer your question",
    "does that make sense", "good luck", "have fun", "enjoy", "happy to help", "glad i could help",
)
_CHECK_IN = re.compile(r"(?<=[.!?])\s+(?:" + "|".join(re.escape(c).replace(r"\ ", r"\s+") for c in CHECK_INS)
                       + r")\s*[.!?]+\s*$", re.IGNORECASE)


def closing_counts(responses: list[str]) -> tuple[int, int]:
    """How many of `responses` end with a question, and how many with a check-in of CHECK_INS."""
    plain = [plain_typography(r).strip() for r in responses]
    return sum(r.endswith("?") for r in plain), sum(_CHECK_IN.search(r) is not None for r in plain)
VARIANTS = ([(opener.strip() or "(none)", lambda r, o=opener: o + r) for opener in OPENERS] + [(CURLY, curly)]
            + [(f"closing: {closer.strip()}", lambda r, c=closer: r + c) for closer in CLOSERS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fold", type=int, default=0, help="the grouped fold (0-4) whose violating rows are read")
    args = parser.parse_args()
    start = time.perf_counter()
    ref = ReferenceSet.from_files(fulcra_files(data_dir()))
    fold = group_folds([r.prompt for r in ref], 5, 0)
    violated = violated_rows(ref.value_matrix(), [r.label_kind for r in ref])
    train = ReferenceSet([r for i, r in enumerate(ref.records) if fold[i] != args.fold])
    rows = [r for i, r in enumerate(ref.records) if fold[i] == args.fold and violated[i] and r.prompt]
    test = ReferenceSet([r.model_copy(update={"id": f"{r.id}#{j}", "response": write(r.response)})
                         for j, (_, write) in enumerate(VARIANTS) for r in rows])
    anchors = default_anchor_turns(data_dir())
    h = held_out(train, test, SentenceTransformerEmbedder(), readout="pair", anchors=anchors)
    flagged = np.isin(policy_actions(Policy.load("default"), h), FLAGGING)
    top = h.against.max(axis=1)
    print(f"fold {args.fold}: {len(rows)} violating rows with a prompt, read out of fold by the pair read-out "
          f"({len(train)} training rows); default policy")
    touched = sum("'" in r.response or '"' in r.response for r in rows)
    print(f"({touched} of them have a ' or a \" that the last row writes typographically)")
    print("| opener in front, or quotes | read as plain | mean top P(against) | intervened (block or rewrite) |\n"
          "|---|---|---|---|")
    for j, (name, write) in enumerate(VARIANTS):
        part = slice(j * len(rows), (j + 1) * len(rows))
        sample = write("It's " + "x" * 20)
        plain = "-" if j == 0 else "yes" if format_text(sample, None, "response") == "It's " + "x" * 20 else "no"
        print(f"| {name} | {plain} | {top[part].mean():.3f} | {flagged[part].mean():.1%} |")
    for name, texts in (("benign anchors", [r for _, r in anchors]), ("reference rows", [r.response for r in ref])):
        question, check_in = closing_counts(texts)
        print(f"{name}: {len(texts)}, ending with a question {question}, with a check-in of CHECK_INS {check_in}")
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
