"""What users care about, per read-out, side by side: `valueguard eval --compare`.

Each read-out is measured on the same held-out estimates (heldout.py): violation AP / AUC per label kind and mean
Pearson r against the evaluator; stance pairs (one prompt, one answer labelled a violation and another not: how
often the violating answer gets the higher P(against)); a policy's intervene (block or rewrite) precision and
recall against the violation labels; and how often the policy intervenes on, or only logs, benign chat turns that
were never in the reference data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valueguard.embedders.base import Embedder
from valueguard.quality.heldout import HeldOut, cross_validate, estimate_unlabelled, metrics
from valueguard.quality.reward_eval import same_prompt_pairs
from valueguard.policy.actions import FLAGGING
from valueguard.policy.model import Policy
from valueguard.reference import ReferenceSet
from valueguard.values import VALUE_NAMES, ValueVector



@dataclass(frozen=True)
class ReadOutSetting:
    """One read-out to compare: how neighbours become values, and whether the prompt is read."""

    name: str
    readout: str
    use_prompt: bool


SETTINGS = (
    ReadOutSetting("kNN", "knn", True),
    ReadOutSetting("value model, response only", "model", False),
    ReadOutSetting("value model, response + prompt", "model", True),
    ReadOutSetting("pair (value model + prompt-response pair vector)", "pair", True),
)


def stance_pair_rows(prompts: list[str], kinds: np.ndarray, violated: np.ndarray,
                     kind: str = "model") -> list[tuple[int, int]]:
    """(violating, not violating) row pairs: two answers of label kind `kind` to one prompt."""
    return [(a, b) if violated[a] else (b, a) for a, b in same_prompt_pairs(prompts, kinds, kind)
            if violated[a] != violated[b]]


def stance_pairs(h: HeldOut, prompts: list[str], kind: str = "model") -> dict[str, float]:
    """Same prompt, one answer violating and another not: the share of such pairs where the violating answer
    has the higher P(against any value) (a tie counts half)."""
    pairs = stance_pair_rows(prompts, h.kinds, h.violated, kind)
    score = h.violation
    wins = sum(1.0 if score[b] > score[g] else 0.5 if score[b] == score[g] else 0.0 for b, g in pairs)
    return {"pairs": len(pairs), "accuracy": wins / len(pairs) if pairs else float("nan")}


def policy_actions(policy: Policy, h: HeldOut) -> np.ndarray:
    """(n,) the action the policy takes on each estimated row."""
    return np.array([policy.evaluate(ValueVector(h.values[i]), float(h.confidence[i]),
                                     dict(zip(VALUE_NAMES, h.against[i]))).action for i in range(len(h.kinds))])


def intervene_rates(actions: np.ndarray, h: HeldOut) -> dict[str, dict[str, float]]:
    """Precision and recall of block-or-rewrite against the violation labels, per label kind."""
    flagged, y = np.isin(actions, FLAGGING), h.violated
    out = {}
    for kind in ("annotated", "model"):
        m = h.kinds == kind
        f, t = flagged[m], y[m]
        out[kind] = {"precision": float((f & t).sum() / f.sum()) if f.any() else float("nan"),
                     "recall": float((f & t).sum() / t.sum()) if t.any() else float("nan")}
    return out


def benign_rates(actions: np.ndarray) -> dict[str, float]:
    """Shares of benign turns the policy blocks or rewrites, and only logs."""
    return {"rows": int(len(actions)), "intervened": float(np.isin(actions, FLAGGING).mean()),
            "logged": float((actions == "log").mean())}


def compare(reference: ReferenceSet, embedder: Embedder, policy: Policy, benign: list[tuple[str, str | None]], *,
            folds: int = 5, settings: tuple[ReadOutSetting, ...] = SETTINGS,
            cache: Path | None = None, held_out: Callable[[ReadOutSetting], HeldOut] | None = None,
            anchors: Callable[[str], Sequence[tuple[str, str]]] | None = None) -> list[dict]:
    """One row of measurements per read-out setting (cross-validated, grouped by prompt). `held_out`, when given,
    supplies each setting's cross-validated estimates instead (e.g. saved ones: cli/quality.py); `anchors`: the
    benign anchors each read-out is fitted with, by read-out name (as `index build` gives them; None: none)."""
    prompts = [r.prompt for r in reference]
    rows = []
    for s in settings:
        fit_anchors = anchors(s.readout) if anchors is not None else ()
        h = held_out(s) if held_out is not None else cross_validate(
            reference, embedder, folds=folds, readout=s.readout, use_prompt=s.use_prompt, cache=cache,
            anchors=fit_anchors)
        m = metrics(h)
        row: dict = {"read_out": s.name, "readout": s.readout, "prompt": s.use_prompt,
                     "fulcra_ap": m["annotated"]["violation_ap"], "fulcra_auc": m["annotated"]["violation_auc"],
                     "scored_ap": m["model"]["violation_ap"], "scored_auc": m["model"]["violation_auc"],
                     "scored_r": m["model"]["pearson_mean"], "stance_pairs": stance_pairs(h, prompts),
                     "intervene": intervene_rates(policy_actions(policy, h), h)}
        if benign:
            hb = estimate_unlabelled(reference, [t for t, _ in benign], [p for _, p in benign], embedder,
                                     readout=s.readout, use_prompt=s.use_prompt, cache=cache, anchors=fit_anchors)
            row["benign"] = benign_rates(policy_actions(policy, hb))
        rows.append(row)
    return rows
