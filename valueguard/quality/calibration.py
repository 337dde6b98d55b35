"""Calibrate a policy: move each rule's thresholds until its flags meet a precision or recall target.

A rule can be calibrated when all its thresholds are of one kind: `against` probabilities (`above`), value
scores (`below`) or distances from a profile (`distance_above`). They move together to one new threshold,
chosen on held-out estimates (heldout.py): the most recall at the target precision, the most precision at the
target recall, or the most recall at which the rule fires on no more than a target share of benign responses
(estimates of unlabelled, plainly benign turns: a log rule that fires on most of them is noise a person learns
to ignore). Confidence thresholds are left as they are. The result is a new policy; the old file is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from valueguard.quality.heldout import HeldOut
from valueguard.policy.model import Condition, Policy, Rule, bind_profiles
from valueguard.values import VALUE_NAMES, ValueVector

Goal = Literal["precision", "recall", "benign"]
_GRID = {"against": np.round(np.arange(0.02, 0.99, 0.01), 2), "value": np.round(np.arange(-0.98, 0.0, 0.01), 2),
         "profile": np.round(np.arange(0.02, 0.99, 0.01), 2)}


@dataclass
class RuleCalibration:
    """One rule's calibration: its goal and target, the old and new threshold and the rates they reach."""

    rule: str
    action: str
    goal: Goal | None
    target: float | None
    old: float | None
    new: float | None
    precision: float
    recall: float
    flagged: int
    note: str = ""
    benign_rate: float | None = None  # the share of benign rows it fires on, where benign estimates were given


def _leaves(c: Condition) -> list[Condition]:
    children = c.all_ or c.any_ or ([c.not_] if c.not_ is not None else [])
    return [c] if not children else [leaf for ch in children for leaf in _leaves(ch)]


def _kind(rule: Rule) -> str | None:
    kinds = {("against" if leaf.against else "value") for leaf in _leaves(rule.when)
             if leaf.against is not None or leaf.value is not None}
    kinds |= {"profile" for leaf in _leaves(rule.when) if leaf.profile is not None}
    ok = all((leaf.against is not None and leaf.above is not None and leaf.below is None)
             or (leaf.value is not None and leaf.below is not None and leaf.above is None)
             or (leaf.profile is not None and leaf.distance_above is not None and leaf.distance_below is None)
             for leaf in _leaves(rule.when)
             if leaf.against is not None or leaf.value is not None or leaf.profile is not None)
    return kinds.pop() if len(kinds) == 1 and ok else None


def _threshold(leaf: Condition, kind: str) -> float | None:
    """The leaf's threshold of `kind` (None when it has none)."""
    if kind == "profile":
        return leaf.distance_above if leaf.profile is not None else None
    return leaf.above if kind == "against" and leaf.against is not None else \
        leaf.below if kind == "value" and leaf.value is not None else None


def _with_threshold(data: Any, kind: str, t: float) -> Any:
    """The rule's condition (as plain data) with every threshold of `kind` set to t."""
    if isinstance(data, list):
        return [_with_threshold(d, kind, t) for d in data]
    if not isinstance(data, dict):
        return data
    out = {k: _with_threshold(v, kind, t) for k, v in data.items()}
    if kind == "against" and "against" in out:
        out["above"] = float(t)
    if kind == "value" and "value" in out:
        out["below"] = float(t)
    if kind == "profile" and "profile" in out:
        out["distance_above"] = float(t)
    return out


def rule_flags(rule: Rule, h: HeldOut) -> np.ndarray:
    return np.array([rule.when.holds(ValueVector(h.values[i]), float(h.confidence[i]),
                                     dict(zip(VALUE_NAMES, h.against[i]))) for i in range(len(h.kinds))])


def _rates(flags: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    tp = int((flags & y).sum())
    return (tp / flags.sum() if flags.any() else float("nan")), (tp / y.sum() if y.any() else float("nan"))


def calibrate(policy: Policy, h: HeldOut, targets: dict[str, tuple[Goal, float]], *,
              benign: HeldOut | None = None) -> tuple[Policy, list[RuleCalibration]]:
    """`targets`: by rule id, by action ('block', 'rewrite', 'log') or '*' -> (goal, target). A 'benign' goal
    (the highest share of `benign` rows the rule may fire on) needs `benign`."""
    if benign is None and any(goal == "benign" for goal, _ in targets.values()):
        raise ValueError("a benign-rate target needs benign estimates")
    y = h.violated
    data = policy.model_dump(by_alias=True, exclude_none=True)
    report = []
    for i, rule in enumerate(policy.rules):
        goal_target = targets.get(rule.id) or targets.get(rule.action) or targets.get("*")
        kind = _kind(rule)
        old = next((_threshold(leaf, kind) for leaf in _leaves(rule.when) if _threshold(leaf, kind) is not None),
                   None) if kind else None
        if goal_target is None or kind is None:
            flags = rule_flags(rule, h)
            p, r = _rates(flags, y)
            note = "no target" if goal_target is None else "thresholds of mixed kinds or none: left as they are"
            report.append(RuleCalibration(rule.id, rule.action, None, None, old, old, p, r, int(flags.sum()), note))
            continue
        goal, target = goal_target
        best: tuple[float, float, float, int] | None = None  # (objective, t, other, flagged)
        for t in _GRID[kind]:
            candidate = Rule.model_validate({**data["rules"][i], "when": _with_threshold(data["rules"][i]["when"],
                                                                                          kind, t)})
            bind_profiles(candidate.when, policy.profiles)
            flags = rule_flags(candidate, h)
            p, r = _rates(flags, y)
            if goal == "precision" and p >= target and (best is None or r > best[0]):
                best = (r, float(t), p, int(flags.sum()))
            if goal == "recall" and r >= target and (best is None or p > best[0]):
                best = (p, float(t), r, int(flags.sum()))
            if goal == "benign" and benign is not None and rule_flags(candidate, benign).mean() <= target \
                    and (best is None or r > best[0]):
                best = (r, float(t), p, int(flags.sum()))
        if best is None:
            flags = rule_flags(rule, h)
            p, r = _rates(flags, y)
            report.append(RuleCalibration(rule.id, rule.action, goal, target, old, old, p, r, int(flags.sum()),
                                          "target not reachable: left as it is"))
            continue
        objective, t, other, flagged = best
        data["rules"][i]["when"] = _with_threshold(data["rules"][i]["when"], kind, t)
        p, r = (objective, other) if goal == "recall" else (other, objective)
        report.append(RuleCalibration(rule.id, rule.action, goal, target, old, t, p, r, flagged))
    new = Policy.model_validate(data)
    if benign is not None:
        for row, rule in zip(report, new.rules):
            row.benign_rate = float(rule_flags(rule, benign).mean())
    return new, report
