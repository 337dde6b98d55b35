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

    def add(self, turn: Turn, estimate: Estimate, source: str) -> None:
        order = -next(self._order)  # ties keep input order
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

    def to_dict(self) -> dict[str, Any]:
        return {name: {"target": target,
                       "mean_distance": {src: round(s / n, 4) for src, (s, n) in sorted(self._sums[name].items())},
                       "farthest": [row for _, row in sorted(self._far[name], key=lambda kr: kr[0], reverse=True)]}
                for name, target in self.profiles.items()}
