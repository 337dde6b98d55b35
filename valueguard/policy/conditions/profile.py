"""The form on a value profile: `{profile: NAME, distance_above: X}` / `distance_below: X`, the distance in
[0, 1] of the response's values from a target the policy's `profiles:` names (policy/profiles.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, PrivateAttr

from valueguard.policy.conditions.base import ConditionForm, Tuning, require_name, require_number
from valueguard.policy.loading import clip, did_you_mean
from valueguard.policy.profiles import distance, located
from valueguard.values import ValueVector

__all__ = ["ProfileDistance"]


class ProfileDistance(ConditionForm):
    """`{profile: NAME, distance_above: X}`: the response is farther than X from the profile's target (or nearer,
    with `distance_below`). Read in a Policy, which binds the target by name."""

    key: ClassVar[str] = "profile"
    example: ClassVar[str] = "{profile: NAME, distance_above: X}"
    tuning: ClassVar[Tuning | None] = Tuning(field="distance_above", other="distance_below", low=0.02, high=0.99)

    profile: str = Field(description="A profile's name (the policy's `profiles:`): tests the distance, in [0, 1], "
                         "of the response's values from its target.")
    distance_above: float | None = Field(default=None, ge=0, le=1,
                                         description="Fires when the distance from the profile is above this.")
    distance_below: float | None = Field(default=None, ge=0, le=1,
                                         description="Fires when the distance from the profile is below this.")
    _target: dict[str, float] | None = PrivateAttr(default=None)  # the profile's target, bound by the Policy

    @classmethod
    def check(cls, data: dict[str, Any]) -> None:
        require_name(data, "profile", "a profile's")
        require_number(data, "distance_above", "distance_below")
        if "distance_above" not in data and "distance_below" not in data:
            raise ValueError(f"profile {clip(data['profile'])} needs a threshold: distance_above or distance_below")

    def bind(self, profiles: Mapping[str, dict[str, float]], at: tuple[Any, ...] = ()) -> None:
        if self.profile not in profiles:
            known = f"; profiles: {', '.join(profiles)}" if profiles else "; the policy has no profiles:"
            raise located(f"unknown profile {clip(self.profile)}{did_you_mean(self.profile, list(profiles))}{known}",
                          at)
        self._target = profiles[self.profile]

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        if self._target is None:
            raise ValueError(f"profile {self.profile!r} is not bound: a profile condition is read in a Policy")
        d = distance(self._target, values, against)
        return ((self.distance_above is None or d > self.distance_above)
                and (self.distance_below is None or d < self.distance_below))
