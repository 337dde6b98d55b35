"""Policies: declarative YAML rules on value scores and confidence, validated at load time. No code, no eval.

A condition is one of:
    {against: NAME, above: P}                             the probability that the response works against a
                                                          value (NAME may be `any`: any of the 10)
    {value: NAME, below: X}  /  {value: NAME, above: X}   a value's score (NAME may be `any`: any of the 10)
    {confidence_below: X}    /  {confidence_above: X}     the estimator's confidence
    {profile: NAME, distance_above: X} / distance_below   the distance in [0, 1] from a profile's target
                                                          (profiles.py; the policy's `profiles:` names them)
    {all: [COND, ...]}  /  {any: [COND, ...]}  /  {not: COND}
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from valueguard.policy.loading import MAX_POLICY_BYTES, PolicyError, check_limits, clip, did_you_mean, format_errors, parse
from valueguard.policy.profiles import distance, located, validate_profiles
from valueguard.values import VALUE_NAMES, ValueVector, normalize_name
from valueguard.estimation.windows import MAX_CHARS_DEFAULT, MIN_MAX_CHARS
from valueguard.policy.actions import ACTIONS, FLAGGING, PRECEDENCE, Action

BUNDLED_PACKAGE = "valueguard.bundled_policies"


__all__ = ["ACTIONS", "FLAGGING", "PRECEDENCE", "Action", "Condition", "Decision", "Defaults", "Policy", "PolicyError",
           "Rule", "bind_profiles", "bundled_names"]
_did_you_mean = did_you_mean


_CONDITION_KEYS = ("value", "against", "below", "above", "confidence_below", "confidence_above", "all", "any",
                   "not", "profile", "distance_above", "distance_below")
_FORMS = ("value", "against", "confidence_below", "confidence_above", "all", "any", "not", "profile")


class Condition(BaseModel):
    """One test on a verdict's values or confidence, or a combination of conditions."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    value: str | None = Field(default=None, description="A basic value's name, or 'any' for any of the 10.")
    against: str | None = Field(
        default=None, description="A basic value's name, or 'any': tests the estimated probability (0 to 1) that "
        "the response works against it.")
    below: float | None = Field(default=None, ge=-1, le=1,
                                description="Fires when the score (or probability) is below this.")
    above: float | None = Field(default=None, ge=-1, le=1,
                                description="Fires when the score (or probability) is above this.")
    confidence_below: float | None = Field(default=None, ge=0, le=1,
                                           description="Fires when the estimator's confidence is below this.")
    confidence_above: float | None = Field(default=None, ge=0, le=1,
                                           description="Fires when the estimator's confidence is above this.")
    all_: list[Condition] | None = Field(default=None, alias="all", min_length=1,
                                         description="Fires when every listed condition fires.")
    any_: list[Condition] | None = Field(default=None, alias="any", min_length=1,
                                         description="Fires when at least one listed condition fires.")
    not_: Condition | None = Field(default=None, alias="not", description="Fires when the condition does not.")
    profile: str | None = Field(default=None, description="A profile's name (the policy's `profiles:`): tests the "
                                "distance, in [0, 1], of the response's values from its target.")
    distance_above: float | None = Field(default=None, ge=0, le=1,
                                         description="Fires when the distance from the profile is above this.")
    distance_below: float | None = Field(default=None, ge=0, le=1,
                                         description="Fires when the distance from the profile is below this.")
    _target: dict[str, float] | None = PrivateAttr(default=None)  # the profile's target, bound by the Policy

    @model_validator(mode="before")
    @classmethod
    def _check_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a condition is a mapping such as {{value: benevolence, below: -0.5}}, got {clip(data)}")
        for key in data:
            if key not in _CONDITION_KEYS:
                raise ValueError(f"unknown condition field {clip(key)}{_did_you_mean(str(key), _CONDITION_KEYS)}")
        forms = [f for f in _FORMS if f in data]
        if len(forms) != 1:
            raise ValueError(f"a condition has exactly one of {', '.join(_FORMS)}; got {', '.join(forms) or 'none'}")
        _check_types(data)
        form = forms[0]
        if form in ("value", "against"):
            name = data[form]
            if name != "any" and normalize_name(name) not in VALUE_NAMES:
                raise ValueError(f"unknown value {clip(name)}{_did_you_mean(normalize_name(name), VALUE_NAMES)}")
            if "below" not in data and "above" not in data:
                raise ValueError(f"{form} {clip(name)} needs a threshold: below or above")
            if form == "against" and any(not 0 <= data[k] <= 1 for k in ("below", "above") if k in data):
                raise ValueError("an against threshold is a probability, between 0 and 1")
        elif "below" in data or "above" in data:
            raise ValueError("below/above go with value or against: {value: NAME, below: X}")
        if form == "profile" and "distance_above" not in data and "distance_below" not in data:
            raise ValueError(f"profile {clip(data['profile'])} needs a threshold: distance_above or distance_below")
        if form != "profile" and ("distance_above" in data or "distance_below" in data):
            raise ValueError("distance_above/distance_below go with profile: {profile: NAME, distance_above: X}")
        return data

    @field_validator("value", "against")
    @classmethod
    def _normalize(cls, v: str | None) -> str | None:
        return v if v in (None, "any") else normalize_name(v)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        if self.profile is not None:
            if self._target is None:
                raise ValueError(f"profile {self.profile!r} is not bound: a profile condition is read in a Policy")
            d = distance(self._target, values, against)
            return ((self.distance_above is None or d > self.distance_above)
                    and (self.distance_below is None or d < self.distance_below))
        if self.value is not None or self.against is not None:
            if self.value is not None:
                scores = list(values.values()) if self.value == "any" else [values[self.value]]
            else:
                if against is None:
                    raise ValueError("this policy tests `against`, which needs the estimate's probabilities")
                name = self.against or "any"  # set: the branch is taken for value or against
                scores = list(against.values()) if name == "any" else [against[name]]
            return any((self.below is None or s < self.below) and (self.above is None or s > self.above)
                       for s in scores)
        if self.confidence_below is not None:
            return confidence < self.confidence_below
        if self.confidence_above is not None:
            return confidence > self.confidence_above
        if self.all_ is not None:
            return all(c.holds(values, confidence, against) for c in self.all_)
        if self.any_ is not None:
            return any(c.holds(values, confidence, against) for c in self.any_)
        if self.not_ is None:  # unreachable for a validated condition; never an assert (python -O drops it)
            raise ValueError("a condition with no test")
        return not self.not_.holds(values, confidence, against)


_THRESHOLDS = ("below", "above", "confidence_below", "confidence_above", "distance_above", "distance_below")


def _check_types(data: dict) -> None:
    """Each given field has its type, and none is null: a null threshold would fire on every response, and a
    null `all` would leave a condition with no test. (`True` is no number here, though Python says it is.)"""
    for key, v in data.items():
        if key in _THRESHOLDS:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{key} must be a number, got {_kind(v)}")
            if v != v:
                raise ValueError(f"{key} must be a number, got NaN")
        elif key in ("value", "against", "profile") and not isinstance(v, str):
            what = "a profile's" if key == "profile" else "a value's"
            raise ValueError(f"{key} must be {what} name (a string), got {_kind(v)}")
        elif key in ("all", "any") and (not isinstance(v, list) or not v):
            raise ValueError(f"{key} must be a non-empty list of conditions, got {_kind(v)}")
        elif key == "not" and not isinstance(v, dict):
            raise ValueError(f"not must be one condition (a mapping), got {_kind(v)}")


def _kind(v: Any) -> str:
    return "null" if v is None else f"{type(v).__name__} {clip(v)}"


class Rule(BaseModel):
    """One rule of a policy: when its condition holds, the action it asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(description="Short unique id, reported when the rule fires (letters, digits, - and _).")
    description: str = Field(description="What the rule is for, in a sentence.")
    when: Condition = Field(description="The condition under which the rule fires.")
    action: Literal["block", "rewrite", "log"] = Field(description="What to do when the rule fires.")
    message: str | None = Field(default=None,
                                description="For block: the text handed on instead of the response.")

    @field_validator("id")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_\-]*", v):
            raise ValueError(f"rule id {clip(v)} must be letters, digits, '-' or '_'")
        return v


class Defaults(BaseModel):
    """What a policy does when no rule fires, on errors and on a block (message, raise or not, limits)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["allow", "log"] = Field(default="allow", description="The action when no rule fires.")
    block_message: str = Field(
        default="I can't help with that.",
        description="Text handed on when a block rule without its own message fires.")
    on_block: Literal["replace", "raise"] = Field(
        default="replace", description="replace: hand on the block message; raise: raise ResponseBlocked.")
    rewrite_attempts: int = Field(default=2, ge=1, le=5, strict=True,
                                  description="Revisions tried before a response that still violates is blocked.")
    rewrite_timeout: float = Field(
        default=60.0, gt=0, le=3600, strict=True,
        description="Seconds one rewrite may take; past it the rewrite counts as failed and on_error applies "
        "(the rewriter's thread is abandoned, not killed: docs/reliability.md).")
    max_chars: int = Field(
        default=MAX_CHARS_DEFAULT, ge=MIN_MAX_CHARS, le=10_000_000, strict=True,
        description="Characters of a response that are checked. A longer one is read as its head, its tail and "
        "evenly spaced windows between them, max_chars in all, and the verdict says so (docs/reliability.md).")
    on_error: Literal["block", "allow"] = Field(
        default="block", description="When the estimator fails: block (fail closed) or allow (fail open).")


class Policy(BaseModel):
    """A policy: data (YAML validated field by field), its rules and defaults; `decide` maps an estimate to a Decision."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(description="The policy's own version, logged with every decision.")
    name: str = Field(description="Short name, logged with every decision.")
    description: str = Field(description="What the policy is for.")
    defaults: Defaults = Field(default_factory=Defaults, description="Settings that apply to every rule.")
    profiles: dict[str, dict[str, float]] = Field(
        default_factory=dict, exclude_if=lambda v: not v,  # a policy without profiles dumps as it did
        description="Target value profiles by name: {value: target score in [-1, 1]}; a value "
        "left out is don't-care. Conditions {profile: NAME, distance_above: X} test the distance from one.")
    rules: list[Rule] = Field(description="The rules; every rule that fires is reported.")

    @field_validator("profiles", mode="before")
    @classmethod
    def _profiles(cls, v: Any) -> Any:
        return validate_profiles(v)

    @model_validator(mode="after")
    def _bind_profiles(self) -> Policy:
        for i, rule in enumerate(self.rules):
            bind_profiles(rule.when, self.profiles, ("rules", i, "when"))
        return self

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: list[Rule]) -> list[Rule]:
        first: dict[str, int] = {}
        for i, rule in enumerate(rules):
            if rule.id in first:
                raise ValueError(f"rule id {rule.id!r} is used twice (rules[{first[rule.id]}] and rules[{i}])")
            first[rule.id] = i
        return rules

    def evaluate(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> Decision:
        fired = tuple(r for r in self.rules if r.when.holds(values, confidence, against))
        action = max((r.action for r in fired), key=PRECEDENCE.__getitem__, default=self.defaults.action)
        return Decision(action, fired)

    def decide(self, estimate: Any) -> Decision:
        """The decision on an Estimate (anything with values, confidence and against)."""
        return self.evaluate(estimate.values, estimate.confidence, estimate.against)

    @classmethod
    def load(cls, policy: str | Path) -> Policy:
        """A bundled policy by name ("default", "strict", "audit-only") or a YAML file by path."""
        path = Path(policy)
        if path.suffix not in (".yaml", ".yml") and not path.exists():
            bundled = resources.files(BUNDLED_PACKAGE) / f"{policy}.yaml"
            if not bundled.is_file():
                raise PolicyError(f"no bundled policy {str(policy)!r}{_did_you_mean(str(policy), bundled_names())}; "
                                  f"bundled: {', '.join(bundled_names())}; or give a path to a YAML file")
            return cls.from_yaml(bundled.read_text(encoding="utf-8"), f"policies/{policy}.yaml")
        if not path.is_file():
            raise PolicyError(f"policy file not found: {path}")
        if (size := path.stat().st_size) > MAX_POLICY_BYTES:  # refused before it is read
            raise PolicyError(f"{path}:1: the policy is {size:,} bytes; the limit is {MAX_POLICY_BYTES:,}")
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw.count(b"\n", 0, e.start) + 1
            raise PolicyError(f"{path}:{line}: not UTF-8 text (byte {e.start})") from None
        return cls.from_yaml(text, str(path))

    @classmethod
    def from_yaml(cls, text: str, filename: str = "<policy>") -> Policy:
        """Parse and validate; every problem is a PolicyError naming file:line and field (limits:
        valueguard.policy.loading, docs/reliability.md)."""
        if not isinstance(text, str):
            raise TypeError(f"a policy's YAML is a str, got {type(text).__name__}")
        data, node = parse(text, filename)
        if not isinstance(data, dict):
            raise PolicyError(f"{filename}:1: a policy is a mapping with version, name, description and rules")
        check_limits(node, filename)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            known = [*Policy.model_fields, *Defaults.model_fields, *Rule.model_fields]
            raise PolicyError(format_errors(e, node, filename, known)) from None


def bind_profiles(condition: Condition, profiles: Mapping[str, dict[str, float]], at: tuple[Any, ...] = ()) -> None:
    """Give each profile condition under `condition` its target; an unknown name is an error located at it."""
    if condition.profile is not None:
        if condition.profile not in profiles:
            known = f"; profiles: {', '.join(profiles)}" if profiles else "; the policy has no profiles:"
            raise located(f"unknown profile {clip(condition.profile)}"
                          f"{_did_you_mean(condition.profile, list(profiles))}{known}", at)
        condition._target = profiles[condition.profile]
    for name, children in (("all", condition.all_), ("any", condition.any_)):
        for j, child in enumerate(children or ()):
            bind_profiles(child, profiles, (*at, name, j))
    if condition.not_ is not None:
        bind_profiles(condition.not_, profiles, (*at, "not"))


@dataclass(frozen=True)
class Decision:
    """What a policy decided for one estimate: the action and the rules that fired (by precedence)."""

    action: Action
    fired: tuple[Rule, ...]

    @cached_property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self.fired]


def bundled_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(BUNDLED_PACKAGE).iterdir()
                  if p.name.endswith(".yaml"))
