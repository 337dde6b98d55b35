"""Policies: declarative YAML rules on value scores and confidence, validated at load time. No code, no eval.

A condition is one of:
    {against: NAME, above: P}                             the probability that the response works against a
                                                          value (NAME may be `any`: any of the 10)
    {value: NAME, below: X}  /  {value: NAME, above: X}   a value's score (NAME may be `any`: any of the 10)
    {confidence_below: X}    /  {confidence_above: X}     the estimator's confidence
    {all: [COND, ...]}  /  {any: [COND, ...]}  /  {not: COND}
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valueguard.values import VALUE_NAMES, ValueVector, normalize_name

Action = Literal["allow", "log", "rewrite", "block"]
PRECEDENCE: dict[str, int] = {"allow": 0, "log": 1, "rewrite": 2, "block": 3}
BUNDLED_PACKAGE = "valueguard.bundled_policies"


class PolicyError(ValueError):
    """A policy that cannot be used; the message names the file, the line and the field."""


def _did_you_mean(word: str, options: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


_CONDITION_KEYS = ("value", "against", "below", "above", "confidence_below", "confidence_above", "all", "any",
                   "not")
_FORMS = ("value", "against", "confidence_below", "confidence_above", "all", "any", "not")


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

    @model_validator(mode="before")
    @classmethod
    def _check_shape(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(f"a condition is a mapping such as {{value: benevolence, below: -0.5}}, got {data!r}")
        for key in data:
            if key not in _CONDITION_KEYS:
                raise ValueError(f"unknown condition field {key!r}{_did_you_mean(str(key), _CONDITION_KEYS)}")
        forms = [f for f in _FORMS if f in data]
        if len(forms) != 1:
            raise ValueError(f"a condition has exactly one of {', '.join(_FORMS)}; got {', '.join(forms) or 'none'}")
        form = forms[0]
        if form in ("value", "against"):
            name = str(data[form])
            if name != "any" and normalize_name(name) not in VALUE_NAMES:
                raise ValueError(f"unknown value {name!r}{_did_you_mean(normalize_name(name), VALUE_NAMES)}")
            if "below" not in data and "above" not in data:
                raise ValueError(f"{form} {name!r} needs a threshold: below or above")
            if form == "against" and any(not 0 <= float(data.get(k, 0) or 0) <= 1 for k in ("below", "above")):
                raise ValueError("an against threshold is a probability, between 0 and 1")
        elif "below" in data or "above" in data:
            raise ValueError("below/above go with value or against: {value: NAME, below: X}")
        return data

    @field_validator("value", "against")
    @classmethod
    def _normalize(cls, v: str | None) -> str | None:
        return v if v in (None, "any") else normalize_name(v)

    def holds(self, values: ValueVector, confidence: float, against: Mapping[str, float] | None = None) -> bool:
        if self.value is not None or self.against is not None:
            if self.value is not None:
                scores = list(values.values()) if self.value == "any" else [values[self.value]]
            else:
                if against is None:
                    raise ValueError("this policy tests `against`, which needs the estimate's probabilities")
                scores = list(against.values()) if self.against == "any" else [against[self.against]]
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
        assert self.not_ is not None
        return not self.not_.holds(values, confidence, against)


class Rule(BaseModel):
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
            raise ValueError(f"rule id {v!r} must be letters, digits, '-' or '_'")
        return v


class Defaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["allow", "log"] = Field(default="allow", description="The action when no rule fires.")
    block_message: str = Field(
        default="I can't help with that.",
        description="Text handed on when a block rule without its own message fires.")
    on_block: Literal["replace", "raise"] = Field(
        default="replace", description="replace: hand on the block message; raise: raise ResponseBlocked.")
    rewrite_attempts: int = Field(default=2, ge=1, le=5,
                                  description="Revisions tried before a response that still violates is blocked.")
    on_error: Literal["block", "allow"] = Field(
        default="block", description="When the estimator fails: block (fail closed) or allow (fail open).")


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str = Field(description="The policy's own version, logged with every decision.")
    name: str = Field(description="Short name, logged with every decision.")
    description: str = Field(description="What the policy is for.")
    defaults: Defaults = Field(default_factory=Defaults, description="Settings that apply to every rule.")
    rules: list[Rule] = Field(description="The rules; every rule that fires is reported.")

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) else v

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
        return cls.from_yaml(path.read_text(encoding="utf-8"), str(path))

    @classmethod
    def from_yaml(cls, text: str, filename: str = "<policy>") -> Policy:
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{filename}:{mark.line + 1}" if mark else filename
            raise PolicyError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
        if not isinstance(data, dict):
            raise PolicyError(f"{filename}:1: a policy is a mapping with version, name, description and rules")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise PolicyError(_format_errors(e, node, filename)) from None


@dataclass(frozen=True)
class Decision:
    action: str
    fired: tuple[Rule, ...]

    @cached_property
    def rule_ids(self) -> list[str]:
        return [r.id for r in self.fired]


def bundled_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files(BUNDLED_PACKAGE).iterdir()
                  if p.name.endswith(".yaml"))


# --- error messages with file:line -------------------------------------------------------------------------

_ALIASES = {"all_": "all", "any_": "any", "not_": "not"}


def _line_of(node: yaml.Node | None, path: tuple[Any, ...]) -> int:
    """1-based line of the deepest node along `path` that exists in the YAML."""
    line = node.start_mark.line + 1 if node is not None else 1
    for key in path:
        if isinstance(node, yaml.MappingNode):
            match = next((v for k, v in node.value if k.value == _ALIASES.get(str(key), str(key))), None)
            if match is None:
                break
            node = match
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            break
        line = node.start_mark.line + 1
    return line


def _dotted(path: tuple[Any, ...]) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{_ALIASES.get(key, key)}" if out else _ALIASES.get(key, key))
    return out or "policy"


def _format_errors(error: ValidationError, root: yaml.Node | None, filename: str) -> str:
    lines = []
    for err in error.errors():
        loc = tuple(err["loc"])
        line = _line_of(root, loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            field, loc = loc[-1], loc[:-1]
            known = [*Policy.model_fields, *Defaults.model_fields, *Rule.model_fields]
            msg = f"unknown field {field!r}{_did_you_mean(str(field), known)}"
        elif err["type"] == "missing":
            msg = f"missing field {loc[-1]!r}"
            loc = loc[:-1]
        elif err["type"] == "literal_error":
            options = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
            msg = f"{err['input']!r} is not one of {', '.join(options)}{_did_you_mean(str(err['input']), options)}"
        lines.append(f"{filename}:{line} {_dotted(loc)}: {msg}")
    return "\n".join(lines)
