"""The audit summary's `profiles`: for each of the policy's value profiles, each source's mean distance from its
target and the turns farthest from it (a bounded top-K, like the summary's flagged turns)."""

from __future__ import annotations

import heapq
import itertools
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from valueguard.audit.records import Turn
from valueguard.estimation.estimate import Estimate
from valueguard.policy.profiles import distance

FARTHEST = 10


class ProfileTracker:
    """Per profile: each source's running mean distance from the target, and the `keep` turns farthest from it."""

    def __init__(self, profiles: Mapping[str, Mapping[str, float]], keep: int = FARTHEST) -> None:
        self.profiles = {name: dict(target) for name, target in profiles.items()}
        self.keep = keep
        self._sums: dict[str, dict[str, list[float]]] = {name: defaultdict(lambda: [0.0, 0]) for name in profiles}
        self._far: dict[str, list[tuple[tuple[float, int], dict[str, Any]]]] = {name: [] for name in profiles}
        self._order = itertools.count()

    def add(self, turn: Turn, estimate: Estimate, source: str, seq: int | None = None) -> None:
        """`seq`: the turn's place in the audit (ties keep input order; default: the order of the calls)."""
        order = -(next(self._order) if seq is None else seq)
        for name, target in self.profiles.items():
            d = distance(target, estimate.values, estimate.against)
            acc = self._sums[name][source]
            acc[0] += d
            acc[1] += 1
            key = (d, order)
            heap = self._far[name]
            if len(heap) < self.keep or key > heap[0][0]:
                row = {"id": turn.id, "source": turn.source, "distance": round(d, 4),
                       "values": {k: round(v, 4) for k, v in estimate.values.items()},
                       "prompt": turn.prompt, "response": turn.response}
                (heapq.heappush if len(heap) < self.keep else heapq.heapreplace)(heap, (key, row))

    def state(self) -> dict[str, Any]:
        """The tracker as JSON-able data (SummaryBuilder.state)."""
        return {"profiles": self.profiles, "keep": self.keep,
                "sums": {n: {src: list(acc) for src, acc in sums.items()} for n, sums in self._sums.items()},
                "far": {n: [[list(k), row] for k, row in heap] for n, heap in self._far.items()}}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ProfileTracker:
        t = cls(state["profiles"], state["keep"])
        for name, sums in state["sums"].items():
            t._sums[name].update({src: list(acc) for src, acc in sums.items()})
        t._far = {n: [(tuple(k), row) for k, row in heap] for n, heap in state["far"].items()}
        for heap in t._far.values():
            heapq.heapify(heap)
        return t

    def merge(self, other: ProfileTracker) -> None:
        """Fold in another tracker of the same profiles (see SummaryBuilder.merge)."""
        for name in self.profiles:
            for src, (d, n) in other._sums[name].items():
                acc = self._sums[name][src]
                acc[0] += d
                acc[1] += n
            self._far[name] = heapq.nlargest(self.keep, self._far[name] + other._far[name], key=lambda kr: kr[0])
            heapq.heapify(self._far[name])

    def to_dict(self) -> dict[str, Any]:
        return {name: {"target": target,
                       "mean_distance": {src: round(s / n, 4) for src, (s, n) in sorted(self._sums[name].items())},
                       "farthest": [row for _, row in sorted(self._far[name], key=lambda kr: kr[0], reverse=True)]}
                for name, target in self.profiles.items()}
