"""ValueReward: the value reward of the FULCRA paper's BaseAlign, as a reward function for RL fine-tuning.

`ValueReward(target={...})(prompts=[...], completions=[...])` returns one float per completion: 1 - the distance
(policy/profiles.py) of the completion's estimated value vector from the target, so 1 at the target and 0 at its
opposite. It has the signature of a TRL reward function (GRPOTrainer(reward_funcs=[reward]), docs/profiles.md):
keyword arguments prompts and completions, each a list of strings or of conversations (lists of
{"role", "content"} messages); other keyword arguments (TRL passes the dataset's columns) are ignored.
With `policy=`, a completion the policy would block gets `floor` instead, below any other reward.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import PydanticCustomError

from valueguard.policy.profiles import DEFAULT_DISTANCE, distances, validate_profiles
from valueguard.values import VALUE_NAMES

__all__ = ["ValueReward", "check_target", "message_text"]

DEFAULT_FLOOR = -1.0


def message_text(item: Any, role: str | None = None) -> str:
    """A completion or prompt as text: a string as it is; a conversation as the content of its last message
    (of `role`, when given): for a completion, the assistant's answer; for a prompt, the user's last turn."""
    if item is None or isinstance(item, str):
        return item or ""
    if isinstance(item, Mapping):
        item = [item]
    if isinstance(item, Sequence):
        messages = [m for m in item if isinstance(m, Mapping) and (role is None or m.get("role") == role)]
        if not messages:
            messages = [m for m in item if isinstance(m, Mapping)]
        if messages:
            content = messages[-1].get("content", "")
            if isinstance(content, list):  # multimodal content parts: the text parts
                content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
            return str(content)
    raise TypeError(f"a prompt or completion is a string or a list of messages, got {type(item).__name__}")


def check_target(target: Any) -> dict[str, float]:
    """A target checked as a policy's profile is, normalised: {basic value: score in [-1, 1]}; ValueError if not."""
    if not isinstance(target, Mapping) or not target:
        raise ValueError("a target is a non-empty mapping {value: score in [-1, 1]}")
    try:
        return validate_profiles({"target": dict(target)})["target"]
    except PydanticCustomError as e:
        raise ValueError(f"target: {e.message()}") from None


class ValueReward:
    """A reward that is higher the closer a completion's estimated values come to `target`."""

    __name__ = "value_reward"  # TRL logs a reward function under its __name__

    def __init__(self, target: Mapping[str, float], estimator: Any = None, policy: Any = None, *,
                 floor: float = DEFAULT_FLOOR, kind: str = DEFAULT_DISTANCE) -> None:
        """`target`: {value: score in [-1, 1]}, the values left out don't count. `estimator`: a ValueEstimator
        (default: ValueEstimator.default(), made on first use). `policy`: a Policy, or a bundled name / YAML
        path; a completion it would block gets `floor`."""
        self.target = check_target(target)
        self.floor, self.kind = float(floor), kind
        self._estimator = estimator
        if isinstance(policy, (str, Path)):
            from valueguard.policy.model import Policy

            policy = Policy.load(policy)
        self.policy = policy

    @property
    def estimator(self) -> Any:
        if self._estimator is None:
            from valueguard.estimation.estimator import ValueEstimator

            self._estimator = ValueEstimator.default()
        return self._estimator

    def __call__(self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] | None = None,
                 **kwargs: Any) -> list[float]:
        if completions is None:
            raise TypeError("ValueReward needs completions=[...]")
        responses = [message_text(c, "assistant") for c in completions]
        if prompts is not None and len(prompts) != len(responses):
            raise ValueError(f"{len(prompts)} prompts for {len(responses)} completions")
        asked = [message_text(p, "user") or None for p in prompts] if prompts is not None else None
        if not responses:
            return []
        estimates = self.estimator.estimate_batch(responses, asked)
        values = np.array([[e.values[n] for n in VALUE_NAMES] for e in estimates])
        against = np.array([[e.against[n] for n in VALUE_NAMES] for e in estimates])
        rewards = 1.0 - distances(self.target, values, against, kind=self.kind)
        if self.policy is not None:
            blocked = [self.policy.decide(e).action == "block" for e in estimates]
            rewards = np.where(blocked, self.floor, rewards)
        return [float(r) for r in rewards]

    def __repr__(self) -> str:
        return f"ValueReward(target={self.target!r}, policy={getattr(self.policy, 'name', None)!r})"
