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

    def add(self, turn: Turn, estimate: Estimate, action: str, rules: list[str], *, seq: int | None = None,
            input_no: int = -1) -> None:
        """`seq`: the turn's place in the whole audit (ties in the top-K go to the earlier turn; default: the order
        of the calls); `input_no`: which input it came from (default: the last started)."""
        seq = next(self._order) if seq is None else seq
        self.inputs[input_no]["turns"] += 1
        self.actions[action] += 1
        self.rules.update(rules)
        values = estimate.values.to_array().astype(np.float64)
        stats = self.sources[turn.source or NO_SOURCE]
        stats.turns += 1
        stats.actions[action] += 1
        stats.value_sums += values
        if self.profiles is not None:
            self.profiles.add(turn, estimate, turn.source or NO_SOURCE, seq)
        bins = np.clip(np.searchsorted(HISTOGRAM_EDGES, values, side="right") - 1, 0, len(HISTOGRAM_EDGES) - 2)
        self.histograms[np.arange(len(VALUE_NAMES)), bins] += 1
        if action in FLAGGED:
            # Worst first: block before rewrite, then the most negative value; ties keep input order.
            key = (PRECEDENCE[action], -float(values.min()), -seq)
            row = {"id": turn.id, "source": turn.source, "action": action, "rules": rules,
                   "values": {k: round(v, 4) for k, v in estimate.values.items()},
                   "prompt": turn.prompt, "response": turn.response,
                   "neighbors": [n.model_dump() for n in estimate.neighbors[:5]]}
            if len(self._top) < TOP_FLAGGED:
                heapq.heappush(self._top, (key, row))
            elif key > self._top[0][0]:
                heapq.heapreplace(self._top, (key, row))

    def state(self) -> dict[str, Any]:
        """The builder as JSON-able data (a partial summary, e.g. one worker's): `from_state` reads it back."""
        return {"policy": self.policy, "inputs": self.inputs, "actions": dict(self.actions), "rules": dict(self.rules),
                "sources": {k: [s.turns, dict(s.actions), s.value_sums.tolist()] for k, s in self.sources.items()},
                "histograms": self.histograms.tolist(), "bad_lines": self.bad_lines,
                "bad_line_examples": self.bad_line_examples, "top": [[list(k), row] for k, row in self._top],
                "profiles": self.profiles.state() if self.profiles is not None else None}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SummaryBuilder:
        """A builder from `state()`'s data."""
        b = cls(state["policy"]["name"], state["policy"]["version"])
        b.inputs = [dict(i) for i in state["inputs"]]
        b.actions.update(state["actions"])
        b.rules.update(state["rules"])
        for name, (turns, actions, sums) in state["sources"].items():
            b.sources[name].turns, b.sources[name].value_sums = turns, np.array(sums, np.float64)
            b.sources[name].actions.update(actions)
        b.histograms = np.array(state["histograms"], np.int64)
        b.bad_lines, b.bad_line_examples = state["bad_lines"], list(state["bad_line_examples"])
        b._top = [(tuple(k), row) for k, row in state["top"]]
        heapq.heapify(b._top)
        b.profiles = ProfileTracker.from_state(state["profiles"]) if state["profiles"] is not None else None
        return b

    def merge(self, other: SummaryBuilder) -> SummaryBuilder:
        """Fold in a partial summary of other turns of the same inputs (in place; returns self). Associative and
        commutative: counts and sums add, and the top-K keeps the worst by a key that ends in the turn's place in
        the audit, so any split of an audit merges into the summary of the whole (up to float rounding of the
        means' sums). Bad-line examples are kept in merge order, up to their bound."""
        for mine, theirs in zip(self.inputs, other.inputs, strict=True):
            mine["turns"] += theirs["turns"]
            mine["bad_lines"] += theirs["bad_lines"]
        self.actions.update(other.actions)
        self.rules.update(other.rules)
        for name, s in other.sources.items():
            mine_s = self.sources[name]
            mine_s.turns += s.turns
            mine_s.actions.update(s.actions)
            mine_s.value_sums = mine_s.value_sums + s.value_sums
        self.histograms = self.histograms + other.histograms
        self.bad_lines += other.bad_lines
        room = MAX_BAD_LINE_EXAMPLES - len(self.bad_line_examples)
        self.bad_line_examples += other.bad_line_examples[:max(room, 0)]
        self._top = heapq.nlargest(TOP_FLAGGED, self._top + other._top, key=lambda kr: kr[0])
        heapq.heapify(self._top)
        if self.profiles is not None and other.profiles is not None:
            self.profiles.merge(other.profiles)
        return self

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
