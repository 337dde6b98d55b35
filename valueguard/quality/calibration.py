"""Calibrate a policy: move each rule's thresholds until its flags meet a precision or recall target.

A rule can be calibrated when all its thresholds are of one kind: those of one condition form with a `tuning`
(policy/conditions/: `against` probabilities `above`, value scores `below`, distances from a profile
`distance_above`; the tuning also gives the range tried). They move together to one new threshold,
chosen on held-out estimates (heldout.py): the most recall at the target precision, the most precision at the
target recall, or the most recall at which the rule fires on no more than a target share of benign responses
(estimates of unlabelled, plainly benign turns: a log rule that fires on most of them is noise a person learns
to ignore). Confidence thresholds are left as they are. The result is a new policy; the old file is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from valueguard.quality.heldout import HeldOut
from valueguard.policy.conditions import ConditionForm
from valueguard.policy.model import Policy, Rule
from valueguard.values import VALUE_NAMES, ValueVector

Goal = Literal["precision", "recall", "benign"]
_STEP = 0.01  # the grid of thresholds tried, over each form's tuning range


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


def _tuned_form(rule: Rule) -> type[ConditionForm] | None:
    """The one form whose thresholds the rule's conditions tune, or None (none, mixed forms, or a threshold not
    in the one shape calibration moves, e.g. a value score with both below and above)."""
    tuned = [leaf for leaf in rule.when.leaves() if leaf.tuning is not None]
    forms = {type(leaf) for leaf in tuned}
    ok = all(leaf.tuned_threshold() is not None for leaf in tuned)
    return forms.pop() if len(forms) == 1 and ok else None


def threshold_grid(form: type[ConditionForm]) -> np.ndarray:
    """The thresholds tried for a form: its tuning's range in steps of 0.01."""
    t = form.tuning
    if t is None:  # _tuned_form only returns a form with a tuning
        raise ValueError(f"{form.__name__} has no threshold to calibrate")
    return np.round(np.arange(t.low, t.high, _STEP), 2)


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
        form = _tuned_form(rule)
        old = next((t for leaf in rule.when.leaves() if (t := leaf.tuned_threshold()) is not None), None) \
            if form else None
        if goal_target is None or form is None:
            flags = rule_flags(rule, h)
            p, r = _rates(flags, y)
            note = "no target" if goal_target is None else "thresholds of mixed kinds or none: left as they are"
            report.append(RuleCalibration(rule.id, rule.action, None, None, old, old, p, r, int(flags.sum()), note))
            continue
        goal, target = goal_target
        best: tuple[float, float, float, int] | None = None  # (objective, t, other, flagged)
        for t in threshold_grid(form):
            candidate = rule.model_copy(update={"when": rule.when.retuned(form, float(t))})  # bindings kept
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
        data["rules"][i]["when"] = rule.when.retuned(form, t).model_dump(by_alias=True, exclude_none=True)
        p, r = (objective, other) if goal == "recall" else (other, objective)
        report.append(RuleCalibration(rule.id, rule.action, goal, target, old, t, p, r, flagged))
    new = Policy.model_validate(data)
    if benign is not None:
        for row, rule in zip(report, new.rules):
            row.benign_rate = float(rule_flags(rule, benign).mean())
    return new, report
