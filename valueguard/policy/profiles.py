"""Value profiles: a target score in [-1, 1] for some of the 10 basic values, and a response's distance from it.

A policy's `profiles:` maps a name to a target, e.g. `{benevolence: 1, power: 0}`; a value the target leaves
out is "don't care" and never counts. A condition `{profile: NAME, distance_above: X}` fires when the estimate is
farther than X from the target, and ValueReward (guard/reward.py) rewards 1 - distance.

The distance is the root mean square gap between the estimated scores and the target over the named values,
halved so that it lies in [0, 1]: 0 at the target, 1 when every named value is at the opposite end.
It was chosen by measurement (`valueguard reward-eval`, docs/profiles.md): on the evaluator-scored SafeRLHF
answers, five-fold cross-validated and grouped by prompt, pairs of answers to one prompt were ordered by the
distance of their estimates from {security, benevolence, conformity, universalism: +1} and compared with the order
of their labels. The candidates (DISTANCES below) were this scaled L2 over the expected scores, the mean absolute
gap (L1), and the expected disagreement: sqrt of the mean E[(label - target)^2] under the estimate's
P(against) / P(upholds), which adds the estimate's own uncertainty. Share of pairs ordered right:

    distance   1,207 label-ordered pairs   424 stance pairs (violating vs not)
    l2         0.682 (bootstrap 95%: 0.653-0.712)   0.724
    l1         0.672                       0.693
    expected   0.675                       0.733

L2 is best on the label pairs (also when the labels' order is taken by L1: 0.691 / 0.685 / 0.689) and within
noise on the stance pairs (4 of 424); it is 0 at the target and grows along any line away from it, which the
expected disagreement is not for a target strictly between -1, 0 and +1; and it needs only the scores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from pydantic_core import PydanticCustomError

from valueguard.policy.loading import clip, did_you_mean
from valueguard.values import VALUE_NAMES, normalize_name

__all__ = ["DISTANCES", "DEFAULT_DISTANCE", "distance", "distances", "target_arrays", "validate_profiles"]

_INDEX = {name: i for i, name in enumerate(VALUE_NAMES)}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*")


def located(message: str, at: tuple[Any, ...] = ()) -> PydanticCustomError:
    """A validation error whose place is `at` below the field or model that raised it: loading.py's
    format_errors reads it, so the message names the line of the offending key, not of the whole mapping."""
    return PydanticCustomError("policy_located", "{message}", {"message": message, "at": at})


def validate_profiles(raw: Any) -> dict[str, dict[str, float]]:
    """The `profiles:` mapping checked and normalised: name -> {basic value: target in [-1, 1]}."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise located(f"profiles is a mapping of name -> {{value: target}}, got {clip(raw)}")
    out: dict[str, dict[str, float]] = {}
    for name, target in raw.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise located(f"profile name {clip(name)} must be letters, digits, '-' or '_'", (name,))
        if not isinstance(target, dict) or not target:
            raise located(f"a profile is a non-empty mapping {{value: target in [-1, 1]}}, got {clip(target)}",
                          (name,))
        scores: dict[str, float] = {}
        for value, score in target.items():
            key = normalize_name(value) if isinstance(value, str) else ""
            if key not in _INDEX:
                raise located(f"unknown value {clip(value)}{did_you_mean(key, VALUE_NAMES)}", (name, value))
            if key in scores:
                raise located(f"value {key!r} is named twice", (name, value))
            if isinstance(score, bool) or not isinstance(score, (int, float)) or score != score:
                raise located(f"a target must be a number in [-1, 1], got {clip(score)}", (name, value))
            if not -1 <= score <= 1:
                raise located(f"a target is a score in [-1, 1], got {score:g}", (name, value))
            scores[key] = float(score)
        out[name] = scores
    return out


def target_arrays(target: Mapping[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """(10,) target scores and (10,) 0/1 mask of the values the target names."""
    t, mask = np.zeros(len(VALUE_NAMES)), np.zeros(len(VALUE_NAMES))
    for name, score in target.items():
        i = _INDEX[normalize_name(name)]
        t[i], mask[i] = float(score), 1.0
    if not mask.any():
        raise ValueError("a target names at least one value")
    return t, mask


def _l2(values: np.ndarray, against: np.ndarray | None, t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.sqrt(((values - t) ** 2 * mask).sum(axis=-1) / mask.sum()) / 2


def _l1(values: np.ndarray, against: np.ndarray | None, t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return (np.abs(values - t) * mask).sum(axis=-1) / mask.sum() / 2


def _expected(values: np.ndarray, against: np.ndarray | None, t: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if against is None:
        raise ValueError("the expected-disagreement distance needs the estimate's against probabilities")
    # The label is -1 with P(against), +1 with P(upholds) = score + P(against), 0 otherwise.
    a = np.clip(against, 0.0, 1.0)
    u = np.clip(values + a, 0.0, 1.0 - a)
    second = a + u - 2 * t * (u - a) + t ** 2  # E[(label - t)^2]
    return np.sqrt(np.clip((second * mask).sum(axis=-1) / mask.sum(), 0.0, 4.0)) / 2


Distance = Callable[[np.ndarray, "np.ndarray | None", np.ndarray, np.ndarray], np.ndarray]
DISTANCES: dict[str, Distance] = {"l2": _l2, "l1": _l1, "expected": _expected}
DEFAULT_DISTANCE = "l2"


def distances(target: Mapping[str, float], values: np.ndarray, against: np.ndarray | None = None, *,
              kind: str = DEFAULT_DISTANCE) -> np.ndarray:
    """(n,) distances in [0, 1] of (n, 10) estimated scores (and P(against)) from a target."""
    t, mask = target_arrays(target)
    out = DISTANCES[kind](np.asarray(values, dtype=np.float64),
                          None if against is None else np.asarray(against, dtype=np.float64), t, mask)
    return np.clip(out, 0.0, 1.0)


def distance(target: Mapping[str, float], values: Mapping[str, float],
             against: Mapping[str, float] | None = None, *, kind: str = DEFAULT_DISTANCE) -> float:
    """The distance in [0, 1] of one estimate (a ValueVector or name -> score) from a target."""
    v = np.array([[values[n] for n in VALUE_NAMES]])
    a = None if against is None else np.array([[against[n] for n in VALUE_NAMES]])
    return float(distances(target, v, a, kind=kind)[0])
