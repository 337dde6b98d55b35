"""The forms on the estimator's confidence: `{confidence_below: X}` and `{confidence_above: X}`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field

from valueguard.policy.conditions.base import ConditionForm, require_number
from valueguard.values import ValueVector

__all__ = ["ConfidenceAbove", "ConfidenceBelow"]


class ConfidenceBelow(ConditionForm):
    """`{confidence_below: X}`: the estimator is less sure than X (its neighbours are far or disagree)."""

    key: ClassVar[str] = "confidence_below"
    example: ClassVar[str] = "{confidence_below: X}"

    confidence_below: float = Field(ge=0, le=1, description="Fires when the estimator's confidence is below this.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        require_number(data, cls.key)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        return confidence < self.confidence_below


class ConfidenceAbove(ConditionForm):
    """`{confidence_above: X}`: the estimator is surer than X."""

    key: ClassVar[str] = "confidence_above"
    example: ClassVar[str] = "{confidence_above: X}"

    confidence_above: float = Field(ge=0, le=1, description="Fires when the estimator's confidence is above this.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        require_number(data, cls.key)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        return confidence > self.confidence_above
