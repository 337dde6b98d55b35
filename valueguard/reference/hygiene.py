"""Label hygiene: the evaluator-scored rows whose label cannot be learnt from the response, corrected at read time.

The paper's evaluator scores a whole (prompt, answer) dialogue, and it scores some bare refusals as working against
a value because the *request* does: GPT-4's "Sorry, but I can't assist with that." gets universalism -0.98 for
refusing a racist question. FULCRA's human-GPT annotations call no refusal a violation (0 of 260). Of the scored
violations, 27% are such refusals, and a read-out trained on them learns to flag refusals to harmful requests, which
is the request's topic, not the answer's stance (docs/quality.md, "Label noise").

So a scored row whose response is a refusal and whose scores say it violates is read as violating nothing: its
scores below 0 become 0, its upholding scores are kept. The reader counts every row it relabels (ReadReport).
"""

from __future__ import annotations

import re

import numpy as np

from valueguard.values import ValueVector
from valueguard.values.polarity import SCORED_VIOLATION

# An opening apology or inability, then a refusal to help, within the first 200 characters.
_OPENING = re.compile(r"^\W*(?:(?:i'?m|i am)\s+(?:really\s+|very\s+|so\s+)?(?:sorry|afraid|unable)|sorry|"
                      r"i\s+(?:can(?:no|')t|cannot|won'?t|will\s+not|must\s+decline)|i\s+apologi[sz]e)", re.I)
_REFUSING = re.compile(r"\b(?:can(?:no|')t|cannot|unable|won'?t|will\s+not|not\s+able|must\s+decline|"
                       r"not\s+(?:be\s+)?(?:appropriate|ethical|provide|assist|help))\b", re.I)
REFUSAL_HEAD_CHARS = 200


def is_refusal(response: str) -> bool:
    """The response opens with an apology or an inability and declines within its first 200 characters."""
    head = response.strip()[:REFUSAL_HEAD_CHARS]
    return bool(_OPENING.match(head)) and bool(_REFUSING.search(head))


def relabelled_refusal(response: str, values: ValueVector) -> ValueVector | None:
    """The corrected scores of an evaluator-scored refusal labelled as a violation; None when the row stands."""
    scores = values.to_array()
    if not (scores < SCORED_VIOLATION).any() or not is_refusal(response):
        return None
    return ValueVector(np.maximum(scores, 0.0))
