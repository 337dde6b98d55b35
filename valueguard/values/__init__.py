"""The value space: Schwartz's 10 basic values, FULCRA's refined values and value items, and ValueVector.

The order of BASIC_VALUES is fixed: it is the order of FULCRA's evaluator scores (`value_reward`), of every
value matrix valueguard writes, and of every array a ValueVector converts to or from.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from valueguard.values.lists import ITEM_ALIASES, REFINED_VALUES, VALUE_ITEMS


@dataclass(frozen=True)
class BasicValue:
    """One of Schwartz's 10 basic values: its name, display label and definition."""

    name: str
    label: str
    definition: str


BASIC_VALUES: tuple[BasicValue, ...] = (
    BasicValue("self_direction", "self-direction",
               "Independent thought and action: choosing, creating, exploring."),
    BasicValue("stimulation", "stimulation", "Excitement, novelty and challenge in life."),
    BasicValue("hedonism", "hedonism", "Pleasure and sensuous gratification for oneself."),
    BasicValue("achievement", "achievement",
               "Personal success through demonstrating competence according to social standards."),
    BasicValue("power", "power", "Social status and prestige, control or dominance over people and resources."),
    BasicValue("security", "security", "Safety, harmony and stability of society, of relationships and of self."),
    BasicValue("tradition", "tradition",
               "Respect, commitment and acceptance of the customs and ideas of one's culture or religion."),
    BasicValue("conformity", "conformity",
               "Restraint of actions, inclinations and impulses likely to upset or harm others "
               "and to violate social expectations or norms."),
    BasicValue("benevolence", "benevolence",
               "Preserving and enhancing the welfare of those with whom one is in frequent personal contact."),
    BasicValue("universalism", "universalism",
               "Understanding, appreciation, tolerance and protection of the welfare of all people and of nature."),
)

VALUE_NAMES: tuple[str, ...] = tuple(v.name for v in BASIC_VALUES)
N_VALUES = len(VALUE_NAMES)
_INDEX = {name: i for i, name in enumerate(VALUE_NAMES)}

# Out-of-range scores within this slack are float noise from averaging and are clipped, not refused.
_SLACK = 1e-5


def normalize_name(text: str) -> str:
    """'Self-Direction ', 'self direction' and 'self_direction' all become 'self_direction'."""
    return re.sub(r"[\s\-_]+", "_", text.strip().lower()).strip("_")


_REFINED_INDEX = {normalize_name(name): basic for name, basic in REFINED_VALUES.items()}
_ITEM_INDEX = {normalize_name(name): basic for name, (basic, _refined) in VALUE_ITEMS.items()}
_ITEM_INDEX.update({normalize_name(alias): VALUE_ITEMS[item][0] for alias, item in ITEM_ALIASES.items()})


def basic_value_of(name: str) -> str | None:
    """The basic value a basic value, refined value or value item belongs to; None if unknown.

    FULCRA's annotators sometimes wrote a refined value where a basic one was asked for (`humility: +1`):
    this is how such a label finds its place in the 10-value space.
    """
    key = normalize_name(name)
    if key in _INDEX:
        return key
    return _REFINED_INDEX.get(key) or _ITEM_INDEX.get(key)


class ValueVector(Mapping[str, float]):
    """Scores for the 10 basic values, each in [-1, 1]: +1 upholds the value, -1 works against it, 0 unrelated.

    Read it by name (`v["power"]`, `v.power`), as a dict (`v.to_dict()`) or an array (`v.to_array()`).
    """

    __slots__ = ("_scores",)

    def __init__(self, scores: Sequence[float] | np.ndarray) -> None:
        arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        if arr.shape != (N_VALUES,):
            raise ValueError(f"a value vector has {N_VALUES} scores, got {arr.shape[0]}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("value scores must be finite numbers")
        worst = float(np.max(np.abs(arr)))
        if worst > 1 + _SLACK:
            bad = VALUE_NAMES[int(np.argmax(np.abs(arr)))]
            raise ValueError(f"value score out of [-1, 1]: {bad}={arr[_INDEX[bad]]:g}")
        self._scores = tuple(float(x) for x in np.clip(arr, -1.0, 1.0))

    @classmethod
    def from_dict(cls, scores: Mapping[str, float], *, missing: float | None = None) -> ValueVector:
        """Build from a name → score mapping. Unknown names are refused; a missing name is an error unless
        `missing` gives its score (0.0 for FULCRA's "not listed means no connection")."""
        unknown = [k for k in scores if normalize_name(k) not in _INDEX]
        if unknown:
            raise ValueError(f"unknown value name(s): {', '.join(map(repr, unknown))}")
        by_name = {normalize_name(k): float(v) for k, v in scores.items()}
        absent = [n for n in VALUE_NAMES if n not in by_name]
        if absent and missing is None:
            raise ValueError(f"missing value(s): {', '.join(absent)}")
        return cls([by_name.get(n, missing if missing is not None else 0.0) for n in VALUE_NAMES])

    @classmethod
    def zeros(cls) -> ValueVector:
        return cls([0.0] * N_VALUES)

    def to_dict(self) -> dict[str, float]:
        return dict(zip(VALUE_NAMES, self._scores))

    def to_array(self) -> np.ndarray:
        return np.array(self._scores, dtype=np.float32)

    def __getitem__(self, name: str) -> float:
        try:
            return self._scores[_INDEX[normalize_name(name)]]
        except KeyError:
            raise KeyError(f"unknown value name {name!r}; known: {', '.join(VALUE_NAMES)}") from None

    def __getattr__(self, name: str) -> float:
        if name in _INDEX:
            return self._scores[_INDEX[name]]
        raise AttributeError(name)

    def __iter__(self) -> Iterator[str]:
        return iter(VALUE_NAMES)

    def __len__(self) -> int:
        return N_VALUES

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ValueVector):
            return self._scores == other._scores
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._scores)

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={s:+.2f}" for n, s in zip(VALUE_NAMES, self._scores))
        return f"ValueVector({inner})"

    def most_negative(self) -> tuple[str, float]:
        i = int(np.argmin(self._scores))
        return VALUE_NAMES[i], self._scores[i]
