"""Policies: declarative YAML rules on value scores and confidence, validated at load time. No code, no eval.

A rule's `when` is a Condition: one of the forms in policy/conditions/ (a value's score, the probability of
working against a value, the confidence, the distance from a profile, and all / any / not of conditions).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valueguard.policy.loading import MAX_POLICY_BYTES, PolicyError, check_limits, clip, did_you_mean, format_errors, parse
from valueguard.policy.conditions import NESTING, TAGS, Condition, ConditionForm
from valueguard.policy.profiles import validate_profiles
from valueguard.values import ValueVector
from valueguard.estimation.windows import MAX_CHARS_DEFAULT, MIN_MAX_CHARS
from valueguard.policy.actions import ACTIONS, FLAGGING, PRECEDENCE, Action

BUNDLED_PACKAGE = "valueguard.bundled_policies"


__all__ = ["ACTIONS", "FLAGGING", "PRECEDENCE", "Action", "Condition", "ConditionForm", "Decision", "Defaults",
           "Policy", "PolicyError", "Rule", "bind_profiles", "bundled_names"]
_did_you_mean = did_you_mean


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
            rule.when.bind(self.profiles, ("rules", i, "when"))
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
        check_limits(node, filename, NESTING)
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            known = [*Policy.model_fields, *Defaults.model_fields, *Rule.model_fields]
            raise PolicyError(format_errors(e, node, filename, known, hidden=frozenset(TAGS.values()))) from None


def bind_profiles(condition: ConditionForm, profiles: Mapping[str, dict[str, float]], at: tuple[Any, ...] = ()) -> None:
    """Give each condition under `condition` what it reads from the policy (a profile's target); an unknown
    profile is an error located at its condition."""
    condition.bind(profiles, at)


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
