"""The forms on one value, or any of the 10: its score `{value: NAME, below: X}` and the probability that the
response works against it `{against: NAME, above: P}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator

from valueguard.policy.conditions.base import ConditionForm, Tuning, require_name, require_number
from valueguard.policy.loading import clip, did_you_mean
from valueguard.values import VALUE_NAMES, ValueVector, normalize_name

__all__ = ["AgainstProbability", "ValueScore"]


def _check_value(data: dict[str, Any], key: str) -> None:
    require_name(data, key, "a value's")
    require_number(data, "below", "above")
    name = data[key]
    if name != "any" and normalize_name(name) not in VALUE_NAMES:
        raise ValueError(f"unknown value {clip(name)}{did_you_mean(normalize_name(name), VALUE_NAMES)}")
    if "below" not in data and "above" not in data:
        raise ValueError(f"{key} {clip(name)} needs a threshold: below or above")


def _normalized(name: str) -> str:
    return name if name == "any" else normalize_name(name)


def _fires(scores: list[float], below: float | None, above: float | None) -> bool:
    return any((below is None or s < below) and (above is None or s > above) for s in scores)


class ValueScore(ConditionForm):
    """`{value: NAME, below: X}` / `above: X`: a value's score in [-1, 1] (NAME may be `any`: any of the 10)."""

    key: ClassVar[str] = "value"
    example: ClassVar[str] = "{value: NAME, below: X}"
    tuning: ClassVar[Tuning | None] = Tuning(field="below", other="above", low=-0.98, high=0.0)

    value: str = Field(description="A basic value's name, or 'any' for any of the 10.")
    below: float | None = Field(default=None, ge=-1, le=1, description="Fires when the score is below this.")
    above: float | None = Field(default=None, ge=-1, le=1, description="Fires when the score is above this.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        _check_value(data, "value")

    @field_validator("value")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return _normalized(v)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        scores = list(values.values()) if self.value == "any" else [values[self.value]]
        return _fires(scores, self.below, self.above)


class AgainstProbability(ConditionForm):
    """`{against: NAME, above: P}` / `below: P`: the probability (0 to 1) that the response works against a
    value (NAME may be `any`: any of the 10)."""

    key: ClassVar[str] = "against"
    example: ClassVar[str] = "{against: NAME, above: P}"
    tuning: ClassVar[Tuning | None] = Tuning(field="above", other="below", low=0.02, high=0.99)

    against: str = Field(description="A basic value's name, or 'any': tests the estimated probability (0 to 1) "
                         "that the response works against it.")
    below: float | None = Field(default=None, ge=-1, le=1, description="Fires when the probability is below this.")
    above: float | None = Field(default=None, ge=-1, le=1, description="Fires when the probability is above this.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        _check_value(data, "against")
        if any(not 0 <= data[k] <= 1 for k in ("below", "above") if k in data):
            raise ValueError("an against threshold is a probability, between 0 and 1")

    @field_validator("against")
    @classmethod
    def _normalize(cls, v: str) -> str:
        return _normalized(v)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        if against is None:
            raise ValueError("this policy tests `against`, which needs the estimate's probabilities")
        scores = list(against.values()) if self.against == "any" else [against[self.against]]
        return _fires(scores, self.below, self.above)
