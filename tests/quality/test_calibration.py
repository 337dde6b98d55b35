import numpy as np
import pytest

from valueguard.policy.conditions import AgainstProbability
from valueguard.quality.calibration import calibrate, rule_flags, threshold_grid
from valueguard.quality.heldout import HeldOut, calibration_error, cross_validate, flag_rates, metrics
from valueguard.policy.model import Policy


@pytest.fixture(scope="module")
def heldout(split, embedder, tmp_path_factory):
    return cross_validate(split[0], embedder, folds=3, cache=tmp_path_factory.mktemp("emb"))


def _with_rewrite_threshold(policy: Policy, above: float) -> Policy:
    """The policy with its value-violation rule's threshold set to `above`."""
    data = policy.model_dump(by_alias=True, exclude_none=True)
    next(r for r in data["rules"] if r["id"] == "value-violation")["when"]["above"] = float(above)
    return Policy.model_validate(data)


@pytest.mark.parametrize("goal, target", [
    ("precision", 0.6),  # a block-like target
    ("recall", 0.5),     # a log-like target
])
def test_a_calibrated_rule_meets_its_target_and_no_grid_step_does_better(heldout, goal, target):
    # From a threshold neither target picks, so the move is the calibration's, whatever the bundled one is.
    policy = _with_rewrite_threshold(Policy.load("default"), 0.95)
    new, report = calibrate(policy, heldout, {"value-violation": (goal, target)})
    row = next(r for r in report if r.rule == "value-violation")
    assert row.note == "" and row.new != row.old
    y = heldout.violated
    flags = rule_flags(next(r for r in new.rules if r.id == "value-violation"), heldout)
    precision, recall = (flags & y).sum() / flags.sum(), (flags & y).sum() / y.sum()
    assert (precision if goal == "precision" else recall) >= target
    # The next threshold in the grid (more flags for precision, fewer for recall) must not also meet the target
    # with a better other rate.
    grid = list(threshold_grid(AgainstProbability))
    step = grid[grid.index(row.new) - 1] if goal == "precision" else grid[grid.index(row.new) + 1]
    alt_rule = next(r for r in _with_rewrite_threshold(new, step).rules if r.id == "value-violation")
    f2 = rule_flags(alt_rule, heldout)
    p2, r2 = (f2 & y).sum() / max(f2.sum(), 1), (f2 & y).sum() / y.sum()
    if goal == "precision":
        assert p2 < target or r2 <= recall
    else:
        assert r2 < target or p2 <= precision


def test_an_unreachable_target_leaves_the_rule_alone(heldout):
    policy = Policy.load("default")
    # The block rule reads three values only: violations of the other seven stay out of its reach.
    new, report = calibrate(policy, heldout, {"block": ("recall", 1.0)})
    row = next(r for r in report if r.rule == "harm-to-others")
    assert "not reachable" in row.note and row.new == row.old
    assert new.rules[0] == policy.rules[0]


def test_rules_without_a_target_or_thresholds_are_kept(heldout):
    strict = Policy.load("strict")
    # A low-confidence rule has no `against` threshold to move (no bundled policy keeps one: it fired on most
    # benign turns, docs/quality.md).
    low = {"id": "low-confidence", "description": "distant or disagreeing neighbours",
           "when": {"confidence_below": 0.4}, "action": "log"}
    data = strict.model_dump(mode="json", by_alias=True, exclude_none=True)
    policy = Policy.model_validate({**data, "rules": [*data["rules"][:2], low]})
    new, report = calibrate(policy, heldout, {"rewrite": ("precision", 0.5)})
    assert [r.id for r in new.rules] == [r.id for r in policy.rules]
    kept = {r.rule: r.note for r in report}
    assert kept["low-confidence"] == "no target"
    assert next(r for r in new.rules if r.id == "low-confidence") == next(
        r for r in policy.rules if r.id == "low-confidence")


@pytest.mark.parametrize("p, y, expected", [
    (np.array([0.0, 0.0, 1.0, 1.0]), np.array([0, 0, 1, 1], bool), 0.0),   # perfectly calibrated
    (np.array([0.9, 0.9, 0.9, 0.9]), np.array([0, 0, 0, 0], bool), 0.9),   # sure and always wrong
    (np.array([0.5, 0.5, 0.5, 0.5]), np.array([0, 1, 0, 1], bool), 0.0),   # unsure and right on average
])
def test_calibration_error(p, y, expected):
    assert calibration_error(y, p) == pytest.approx(expected)


def test_metrics_of_a_perfect_estimate():
    true = np.zeros((6, 10))
    true[:2, 4] = -1
    true[2:, 8] = 1
    against = (true < 0).astype(float)
    h = HeldOut(true, np.array(["annotated"] * 6), true.copy(), against, np.ones(6))
    m = metrics(h)["annotated"]
    assert m["violation_ap"] == pytest.approx(1.0) and m["violation_auc"] == pytest.approx(1.0)
    assert m["per_value"]["power"]["f1_3class"] == pytest.approx(1.0)
    rates = flag_rates(h, against.any(axis=1).astype(bool))
    assert rates["all"] == {"flagged": 2, "precision": 1.0, "recall": 1.0}


@pytest.fixture(scope="module")
def benign(split, embedder, shared_data, tmp_path_factory):
    """Plain helpful chat turns (HH-RLHF), estimated from the same rows as `heldout`."""
    from valueguard.cli.quality import _benign_turns
    from valueguard.quality.heldout import estimate_unlabelled

    turns = _benign_turns(shared_data / "hh-rlhf" / "helpful_test.jsonl", 120)
    return estimate_unlabelled(split[0], [t for t, _ in turns], [p for _, p in turns], embedder,
                               cache=tmp_path_factory.mktemp("emb-benign"))


@pytest.mark.parametrize("share", [
    0.10,   # a log rule a person can still read
    0.02,   # close to never on plain chat: a much higher threshold
])
def test_a_benign_rate_target_is_met_with_the_most_recall(heldout, benign, share):
    policy = Policy.load("default")
    new, report = calibrate(policy, heldout, {"log": ("benign", share)}, benign=benign)
    row = next(r for r in report if r.rule == "mixed-signal")
    rule = next(r for r in new.rules if r.id == "mixed-signal")
    assert row.note == "" and row.benign_rate == rule_flags(rule, benign).mean() <= share
    # One grid step lower (more flags) either breaks the benign target or buys no recall.
    grid = list(threshold_grid(AgainstProbability))
    looser = rule.model_copy(update={"when": rule.when.model_copy(update={"above": float(grid[grid.index(row.new) - 1])})})
    y = heldout.violated
    assert rule_flags(looser, benign).mean() > share or (rule_flags(looser, heldout) & y).sum() / y.sum() <= row.recall


def test_a_benign_target_without_benign_estimates_is_refused(heldout):
    with pytest.raises(ValueError, match="benign-rate target needs benign estimates"):
        calibrate(Policy.load("default"), heldout, {"log": ("benign", 0.1)})
