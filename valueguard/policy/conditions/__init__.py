"""Policy conditions: a pydantic discriminated union of small forms, one class per form, told apart by the key
each form has (a YAML condition carries no `kind`):

    {value: NAME, below: X} / {value: NAME, above: X}    ValueScore                         scores.py
    {against: NAME, above: P} / below: P                 AgainstProbability                 scores.py
    {confidence_below: X} / {confidence_above: X}        ConfidenceBelow / ConfidenceAbove  confidence.py
    {profile: NAME, distance_above: X} / distance_below  ProfileDistance                    profile.py
    {all: [COND, ...]} / {any: [COND, ...]} / {not: COND}  AllOf / AnyOf / Not              here (they nest the union)

A new form is a ConditionForm subclass (base.py: its fields, `check`, `holds`; `tuning` when calibration may move
its threshold, `bind` when it reads the policy, `nests` and `children` when it holds conditions) and one line in
`Condition` below. Before a form is chosen, `check_shape` refuses what fits none: not a mapping, an unknown key,
no form's key or two, a key of another form; the keys it knows are the registered forms' fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar, Union, get_args

from pydantic import BeforeValidator, Discriminator, Field, Tag

from valueguard.policy.conditions.base import ConditionForm, Tuning, kind_of, require_conditions
from valueguard.policy.conditions.confidence import ConfidenceAbove, ConfidenceBelow
from valueguard.policy.conditions.profile import ProfileDistance
from valueguard.policy.conditions.scores import AgainstProbability, ValueScore
from valueguard.policy.loading import clip, did_you_mean
from valueguard.values import ValueVector

__all__ = ["FORMS", "NESTING", "TAGS", "AgainstProbability", "AllOf", "AnyOf", "Condition", "ConditionForm",
           "ConfidenceAbove", "ConfidenceBelow", "Not", "ProfileDistance", "Tuning", "ValueScore", "check_shape"]


# --- the forms that nest conditions ---------------------------------------------------------------------------

class AllOf(ConditionForm):
    """`{all: [COND, ...]}`: every listed condition fires."""

    key: ClassVar[str] = "all"
    nests: ClassVar[bool] = True
    example: ClassVar[str] = "{all: [COND, ...]}"

    all_: list[Condition] = Field(alias="all", min_length=1, description="Fires when every listed condition fires.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        require_conditions(data, cls.key)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        return all(c.holds(values, confidence, against) for c in self.all_)

    def children(self) -> tuple[tuple[tuple[Any, ...], ConditionForm], ...]:
        return tuple(((self.key, j), c) for j, c in enumerate(self.all_))

    def retuned(self, form: type[ConditionForm], threshold: float) -> ConditionForm:
        return self.model_copy(update={"all_": [c.retuned(form, threshold) for c in self.all_]})


class AnyOf(ConditionForm):
    """`{any: [COND, ...]}`: at least one listed condition fires."""

    key: ClassVar[str] = "any"
    nests: ClassVar[bool] = True
    example: ClassVar[str] = "{any: [COND, ...]}"

    any_: list[Condition] = Field(alias="any", min_length=1,
                                  description="Fires when at least one listed condition fires.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        require_conditions(data, cls.key)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        return any(c.holds(values, confidence, against) for c in self.any_)

    def children(self) -> tuple[tuple[tuple[Any, ...], ConditionForm], ...]:
        return tuple(((self.key, j), c) for j, c in enumerate(self.any_))

    def retuned(self, form: type[ConditionForm], threshold: float) -> ConditionForm:
        return self.model_copy(update={"any_": [c.retuned(form, threshold) for c in self.any_]})


class Not(ConditionForm):
    """`{not: COND}`: the condition does not fire."""

    key: ClassVar[str] = "not"
    nests: ClassVar[bool] = True
    example: ClassVar[str] = "{not: COND}"

    not_: Condition = Field(alias="not", description="Fires when the condition does not.")

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        if not isinstance(data.get(cls.key), dict):
            raise ValueError(f"not must be one condition (a mapping), got {kind_of(data.get(cls.key))}")

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        return not self.not_.holds(values, confidence, against)

    def children(self) -> tuple[tuple[tuple[Any, ...], ConditionForm], ...]:
        return (((self.key,), self.not_),)

    def retuned(self, form: type[ConditionForm], threshold: float) -> ConditionForm:
        return self.model_copy(update={"not_": self.not_.retuned(form, threshold)})


# --- the union: one line per form, in the order errors list them -----------------------------------------------

def check_shape(data: Any) -> Any:
    """What fits no form, refused before one is chosen, located at the condition itself."""
    if isinstance(data, ConditionForm):
        return data
    if not isinstance(data, dict):
        raise ValueError(f"a condition is a mapping such as {{value: benevolence, below: -0.5}}, got {clip(data)}")
    for key in data:
        if key not in _KEYS:
            raise ValueError(f"unknown condition field {clip(key)}{did_you_mean(str(key), _KEYS)}")
    forms = [f for f in FORMS if f.key in data]
    if len(forms) != 1:
        raise ValueError(f"a condition has exactly one of {', '.join(f.key for f in FORMS)}; "
                         f"got {', '.join(f.key for f in forms) or 'none'}")
    for key in data:
        if key not in forms[0].fields():
            owners = [f for f in FORMS if key in f.fields()]
            companions = owners[0].fields()[1:]
            raise ValueError(f"{'/'.join(companions)} {'go' if len(companions) > 1 else 'goes'} with "
                             f"{' or '.join(f.key for f in owners)}: {owners[0].example}")
    return data


def _tag(data: Any) -> str | None:
    if isinstance(data, ConditionForm):
        return type(data).__name__
    return next((TAGS[k] for k in data if k in TAGS), None) if isinstance(data, dict) else None


Condition = Annotated[Union[
    Annotated[ValueScore, Tag("ValueScore")],
    Annotated[AgainstProbability, Tag("AgainstProbability")],
    Annotated[ConfidenceBelow, Tag("ConfidenceBelow")],
    Annotated[ConfidenceAbove, Tag("ConfidenceAbove")],
    Annotated[AllOf, Tag("AllOf")],
    Annotated[AnyOf, Tag("AnyOf")],
    Annotated[Not, Tag("Not")],
    Annotated[ProfileDistance, Tag("ProfileDistance")],
], Discriminator(_tag), BeforeValidator(check_shape)]

_ARMS = [get_args(arm) for arm in get_args(get_args(Condition)[0])]  # (form, Tag) for each line above
FORMS: tuple[type[ConditionForm], ...] = tuple(form for form, _ in _ARMS)
TAGS: dict[str, str] = {form.key: tag.tag for form, tag in _ARMS}  # form key -> its tag (in validation errors' loc)
NESTING: frozenset[str] = frozenset(f.key for f in FORMS if f.nests)  # loading.check_limits follows these keys
_KEYS = tuple(dict.fromkeys(k for f in FORMS for k in f.fields()))
for _form in (AllOf, AnyOf, Not):  # they name `Condition`, which exists only now
    _form.model_rebuild()
