"""What every condition form is: a small frozen pydantic model (no unknown fields) that says whether it holds for
one estimate, and the checks its fields go through before pydantic reads them.

The checks are written out (not left to pydantic's types) because a policy is written by a person: a null
threshold would fire on every response, `True` is an int to Python but no threshold to a policy, and the errors
say what the field should be in the policy's own words.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, model_validator

from valueguard.policy.loading import clip
from valueguard.values import ValueVector

__all__ = ["ConditionForm", "Tuning", "kind_of", "require_conditions", "require_name", "require_number"]


@dataclass(frozen=True)
class Tuning:
    """The threshold calibration (quality/calibration.py) may move on a form: `field`, when `other` is unset,
    tried from `low` up to `high` (exclusive) in steps of 0.01."""

    field: str
    other: str
    low: float
    high: float


class ConditionForm(BaseModel):
    """One form of condition, e.g. `{value: NAME, below: X}`: its fields, their checks, and `holds`.

    A form is marked in YAML by its `key` (the union in conditions/__init__.py dispatches on it); `example` is
    how the form is written, quoted when a field of it turns up in another form."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    key: ClassVar[str]
    example: ClassVar[str]
    tuning: ClassVar[Tuning | None] = None
    nests: ClassVar[bool] = False  # its key holds a condition or a list of them (counted by the policy's limits)

    @model_validator(mode="before")
    @classmethod
    def _check_input(cls, data: Any) -> Any:
        if isinstance(data, dict):
            cls.check(data)
        return data

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        """Raise ValueError for what pydantic's own checks would word poorly (types, names, missing thresholds)."""

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The form's keys as YAML writes them, `key` first."""
        return tuple(f.alias or name for name, f in cls.model_fields.items())

    @abstractmethod
    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        """Whether the condition fires for an estimate's scores, confidence and P(against) per value."""

    def children(self) -> tuple[tuple[tuple[Any, ...], ConditionForm], ...]:
        """(where below this condition, condition) for each condition nested in this one."""
        return ()

    def leaves(self) -> list[ConditionForm]:
        """The conditions under this one that nest none (this one, when it nests none)."""
        kids = self.children()
        return [self] if not kids else [leaf for _, child in kids for leaf in child.leaves()]

    def bind(self, profiles: Mapping[str, dict[str, float]], at: tuple[Any, ...] = ()) -> None:
        """Take what the condition needs from its policy (a profile's target); `at` locates an error."""
        for where, child in self.children():
            child.bind(profiles, (*at, *where))

    def tuned_threshold(self) -> float | None:
        """The threshold calibration moves, or None: the form has none, or it is not in the one shape moved."""
        t = self.tuning
        return None if t is None or getattr(self, t.other) is not None else getattr(self, t.field)

    def retuned(self, form: type[ConditionForm], threshold: float) -> ConditionForm:
        """This condition with the tuned threshold of every `form` in it set to `threshold` (bindings kept)."""
        if self.tuning is not None and type(self) is form:
            return self.model_copy(update={self.tuning.field: float(threshold)})
        return self


def kind_of(v: Any) -> str:
    """How an error names a wrong value: its type and a short quote."""
    return "null" if v is None else f"{type(v).__name__} {clip(v)}"


def require_number(data: dict[str, Any], *keys: str) -> None:
    """Each of `keys` given is a number (not a bool, not NaN, not null)."""
    for key in keys:
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{key} must be a number, got {kind_of(v)}")
            if v != v:
                raise ValueError(f"{key} must be a number, got NaN")


def require_name(data: dict[str, Any], key: str, what: str) -> None:
    """`key`, when given, is a string: `what`'s name."""
    if key in data and not isinstance(data[key], str):
        raise ValueError(f"{key} must be {what} name (a string), got {kind_of(data[key])}")


def require_conditions(data: dict[str, Any], key: str) -> None:
    """`key`, when given, is a non-empty list (of conditions, checked by the union)."""
    if key in data and (not isinstance(data[key], list) or not data[key]):
        raise ValueError(f"{key} must be a non-empty list of conditions, got {kind_of(data[key])}")
