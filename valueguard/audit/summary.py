"""The audit summary, accumulated in constant memory: counts, running means, fixed histograms, a bounded top-K."""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, defaultdict
from typing import Any

import numpy as np

from valueguard.audit.profile_summary import ProfileTracker
from valueguard.audit.records import BadLine, Turn
from valueguard.estimation.estimate import Estimate
from valueguard.policy.actions import FLAGGING, PRECEDENCE
from valueguard.values import VALUE_NAMES

HISTOGRAM_EDGES = np.linspace(-1.0, 1.0, 21)
TOP_FLAGGED = 20
MAX_BAD_LINE_EXAMPLES = 20
FLAGGED = FLAGGING  # the turns an audit counts as flagged (and exits 1 for)
NO_SOURCE = "(unknown)"


class _SourceStats:
    def __init__(self) -> None:
        self.turns = 0
        self.actions: Counter[str] = Counter()
        self.value_sums = np.zeros(len(VALUE_NAMES))


class SummaryBuilder:
    """Feed it every audited turn and bad line; `to_dict()` gives the summary JSON (schema in the README)."""

    def __init__(self, policy_name: str | None, policy_version: str | None,
                 profiles: dict[str, dict[str, float]] | None = None) -> None:
        self.policy = {"name": policy_name, "version": policy_version}
        self.profiles = ProfileTracker(profiles) if profiles else None  # the policy's value profiles, if any
        self.inputs: list[dict[str, Any]] = []
        self.actions: Counter[str] = Counter({a: 0 for a in PRECEDENCE})
        self.rules: Counter[str] = Counter()
        self.sources: dict[str, _SourceStats] = defaultdict(_SourceStats)
        self.histograms = np.zeros((len(VALUE_NAMES), len(HISTOGRAM_EDGES) - 1), dtype=np.int64)
        self.bad_lines = 0
        self.bad_line_examples: list[dict[str, Any]] = []
        self._top: list[tuple[tuple[int, float, int], dict[str, Any]]] = []  # a min-heap of the worst
        self._order = itertools.count()

    def start_input(self, path: str, fmt: str) -> None:
        self.inputs.append({"path": path, "format": fmt, "turns": 0, "bad_lines": 0})

    def add_bad_line(self, bad: BadLine) -> None:
        self.bad_lines += 1
        self.inputs[-1]["bad_lines"] += 1
        if len(self.bad_line_examples) < MAX_BAD_LINE_EXAMPLES:
            self.bad_line_examples.append({"path": bad.path, "line": bad.line, "reason": bad.reason})

    def add(self, turn: Turn, estimate: Estimate, action: str, rules: list[str]) -> None:
        self.inputs[-1]["turns"] += 1
        self.actions[action] += 1
        self.rules.update(rules)
        values = estimate.values.to_array().astype(np.float64)
        stats = self.sources[turn.source or NO_SOURCE]
        stats.turns += 1
        stats.actions[action] += 1
        stats.value_sums += values
        if self.profiles is not None:
            self.profiles.add(turn, estimate, turn.source or NO_SOURCE)
        bins = np.clip(np.searchsorted(HISTOGRAM_EDGES, values, side="right") - 1, 0, len(HISTOGRAM_EDGES) - 2)
        self.histograms[np.arange(len(VALUE_NAMES)), bins] += 1
        if action in FLAGGED:
            # Worst first: block before rewrite, then the most negative value; ties keep input order.
            key = (PRECEDENCE[action], -float(values.min()), -next(self._order))
            row = {"id": turn.id, "source": turn.source, "action": action, "rules": rules,
                   "values": {k: round(v, 4) for k, v in estimate.values.items()},
                   "prompt": turn.prompt, "response": turn.response,
                   "neighbors": [n.model_dump() for n in estimate.neighbors[:5]]}
            if len(self._top) < TOP_FLAGGED:
                heapq.heappush(self._top, (key, row))
            elif key > self._top[0][0]:
                heapq.heapreplace(self._top, (key, row))

    def to_dict(self) -> dict[str, Any]:
        turns = sum(s.turns for s in self.sources.values())
        profiles = {"profiles": self.profiles.to_dict()} if self.profiles is not None else {}
        return {
            "inputs": self.inputs,
            "policy": self.policy,
            "totals": {"turns": turns, "bad_lines": self.bad_lines,
                       "flagged": sum(self.actions[a] for a in FLAGGED)},
            "actions": dict(self.actions),
            "rules": dict(self.rules.most_common()),
            "sources": {
                name: {"turns": s.turns, "actions": {a: s.actions[a] for a in PRECEDENCE},
                       "mean_values": {v: round(float(x), 4) for v, x in zip(VALUE_NAMES, s.value_sums / s.turns)}}
                for name, s in sorted(self.sources.items())
            },
            "value_histograms": {
                v: {"edges": [round(float(e), 2) for e in HISTOGRAM_EDGES], "counts": self.histograms[i].tolist()}
                for i, v in enumerate(VALUE_NAMES)
            },
            "bad_line_examples": self.bad_line_examples,
            "top_flagged": [row for _, row in sorted(self._top, reverse=True)],
            **profiles,
        }
