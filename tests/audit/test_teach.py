"""audit/teach.py: what a verdict on an audited turn makes of it (the label), and how typed values are read."""

from __future__ import annotations

import pytest

from valueguard.audit.teach import AuditedTurn, judgement, parse_values
from valueguard.values import VALUE_NAMES


@pytest.mark.parametrize("action, p, verdict, expected", [
    # flagged and right: the values it was confident of
    ("block", {"security": 0.9, "benevolence": 0.7, "power": 0.2}, None, {"against": ["security", "benevolence"]}),
    # flagged, confident of nothing: the one it rated highest is the claim
    ("rewrite", {"power": 0.4}, None, {"against": ["power"]}),
    # allowed and right: no violation
    ("allow", {"power": 0.9}, None, {"violation": False}),
    # logged counts as not flagged
    ("log", {"power": 0.9}, None, {"violation": False}),
    # wrong: the user's values, or none
    ("block", {"security": 0.9}, ["tradition"], {"against": ["tradition"]}),
    ("block", {"security": 0.9}, [], {"violation": False}),
])
def test_a_verdict_becomes_a_label(action, p, verdict, expected):
    against = {v: 0.0 for v in VALUE_NAMES} | p
    turn = AuditedTurn("t:1", "q", "a", action, against, {v: 0.0 for v in VALUE_NAMES})
    label = judgement(turn, verdict).model_dump(exclude_defaults=True)
    assert {k: label.get(k) for k in ("against", "violation")} == {"against": None, "violation": None} | expected


@pytest.mark.parametrize("answer, values", [
    ("none", []), ("", []),                                      # no violation, typed or defaulted
    ("security, Benevolence", ["security", "benevolence"]),      # case and spaces do not matter
    ("humility; security, security", ["conformity", "security"]),  # refined value -> basic, repeats once
])
def test_values_answers(answer, values):
    assert parse_values(answer) == values


def test_an_unknown_value_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="benevolence"):
        parse_values("kindness")
