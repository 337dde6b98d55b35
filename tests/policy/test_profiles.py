from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valueguard.policy.loading import PolicyError
from valueguard.policy.conditions import AgainstProbability, ProfileDistance, ValueScore
from valueguard.policy.model import Policy
from valueguard.policy.profiles import distance, distances
from valueguard.values import VALUE_NAMES, ValueVector

HEADER = 'version: "1"\nname: t\ndescription: test policy\n'
PROFILES = "profiles:\n  kids:\n    benevolence: 1\n    power: 0\n"


def rule(when: str, action: str = "block", rid: str = "r1") -> str:
    return f"  - id: {rid}\n    description: test rule\n    when: {when}\n    action: {action}\n"


def vec(**scores: float) -> ValueVector:
    return ValueVector.from_dict(scores, missing=0.0)


# (policy text, exact error): each row is a mistake a user makes with profiles, and the message points at it.
INVALID = [
    # a misspelled value in a profile: the line of that value, did-you-mean
    (HEADER + "profiles:\n  kids:\n    benevolense: 1\nrules: []\n",
     "x.yaml:6 profiles.kids.benevolense: unknown value 'benevolense' (did you mean 'benevolence'?)"),
    # a target outside [-1, 1]
    (HEADER + "profiles:\n  kids:\n    benevolence: 1\n    power: -2\nrules: []\n",
     "x.yaml:7 profiles.kids.power: a target is a score in [-1, 1], got -2"),
    # a target that is not a number (YAML's `yes` is a bool)
    (HEADER + "profiles:\n  kids:\n    power: yes\nrules: []\n",
     "x.yaml:6 profiles.kids.power: a target must be a number in [-1, 1], got True"),
    # a profile that names no value: an empty target would be 0 from everything
    (HEADER + "profiles:\n  kids: {}\nrules: []\n",
     "x.yaml:5 profiles.kids: a profile is a non-empty mapping {value: target in [-1, 1]}, got {}"),
    # one value twice under two spellings
    (HEADER + "profiles:\n  kids:\n    self-direction: 1\n    self_direction: 0\nrules: []\n",
     "x.yaml:7 profiles.kids.self_direction: value 'self_direction' is named twice"),
    # a profile name with a space
    (HEADER + "profiles:\n  my kids:\n    power: 0\nrules: []\n",
     "x.yaml:6 profiles.my kids: profile name 'my kids' must be letters, digits, '-' or '_'"),
    # a condition naming a profile the policy does not declare: the condition's line, did-you-mean
    (HEADER + PROFILES + "rules:\n" + rule("{profile: kid, distance_above: 0.4}"),
     "x.yaml:11 rules[0].when: unknown profile 'kid' (did you mean 'kids'?); profiles: kids"),
    # the same inside an any-list: located at the list item
    (HEADER + PROFILES + "rules:\n" + rule("\n      any:\n        - {value: power, below: 0}\n"
                                            "        - {profile: kidz, distance_below: 0.2}"),
     "x.yaml:14 rules[0].when.any[1]: unknown profile 'kidz' (did you mean 'kids'?); profiles: kids"),
    # a profile condition in a policy with no profiles at all
    (HEADER + "rules:\n" + rule("{profile: kids, distance_above: 0.4}"),
     "x.yaml:7 rules[0].when: unknown profile 'kids'; the policy has no profiles:"),
    # a profile condition without a threshold
    (HEADER + PROFILES + "rules:\n" + rule("{profile: kids}"),
     "x.yaml:11 rules[0].when: profile 'kids' needs a threshold: distance_above or distance_below"),
    # a distance outside [0, 1]
    (HEADER + PROFILES + "rules:\n" + rule("{profile: kids, distance_above: 1.5}"),
     "x.yaml:11 rules[0].when.distance_above: Input should be less than or equal to 1"),
    # a distance threshold on a value condition
    (HEADER + PROFILES + "rules:\n" + rule("{value: power, below: 0, distance_above: 0.2}"),
     "x.yaml:11 rules[0].when: distance_above/distance_below go with profile: {profile: NAME, distance_above: X}"),
    # a profile given as a list
    (HEADER + PROFILES + "rules:\n" + rule("{profile: [kids], distance_above: 0.2}"),
     "x.yaml:11 rules[0].when: profile must be a profile's name (a string), got list ['kids']"),
    # a misspelled distance field
    (HEADER + PROFILES + "rules:\n" + rule("{profile: kids, distance_abov: 0.2}"),
     "x.yaml:11 rules[0].when: unknown condition field 'distance_abov' (did you mean 'distance_above'?)"),
]


@pytest.mark.parametrize("text, message", INVALID)
def test_profile_mistakes_name_file_line_and_field(text, message):
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(text, "x.yaml")
    assert str(err.value) == message


PROFILE_POLICY = HEADER + PROFILES + "rules:\n" + rule("{profile: kids, distance_above: 0.5}", "block", "far") \
    + rule("{not: {profile: kids, distance_below: 0.2}}", "log", "not-near")


# (values, action, fired): distance is over benevolence (target 1) and power (target 0) only.
@pytest.mark.parametrize("values, action, fired", [
    (vec(benevolence=1.0), "allow", []),                          # at the target
    (vec(benevolence=1.0, hedonism=-1, tradition=1), "allow", []),  # values the profile leaves out don't count
    (vec(benevolence=0.0), "log", ["not-near"]),                 # sqrt(1/2)/2 = 0.35: not near, not far
    (vec(benevolence=-1.0), "block", ["far", "not-near"]),        # sqrt(4/2)/2 = 0.71
    (vec(benevolence=1.0, power=-1.0), "log", ["not-near"]),     # a target of 0 is a target, not don't-care
])
def test_profile_conditions_fire_on_the_distance(values, action, fired):
    decision = Policy.from_yaml(PROFILE_POLICY).evaluate(values, 0.9)
    assert (decision.action, decision.rule_ids) == (action, fired)


def test_a_policy_dump_reloads_with_its_profiles():
    policy = Policy.from_yaml(PROFILE_POLICY)
    again = Policy.model_validate(policy.model_dump(by_alias=True, exclude_none=True))
    assert again.profiles == {"kids": {"benevolence": 1.0, "power": 0.0}}
    assert again.evaluate(vec(benevolence=-1.0), 0.9).action == "block"


REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name, profile", [("children-learning", "child-safe"), ("creative-writing", "creative-voice")])
def test_bundled_profile_policies_load_and_use_their_profile(name, profile):
    policy = Policy.load(REPO / "policies" / f"{name}.yaml")  # by path: by name they load once installed
    assert policy.name == name and "Rationale:" in policy.description
    assert list(policy.profiles) == [profile]
    assert any(isinstance(leaf, ProfileDistance) and leaf.profile == profile
               for r in policy.rules for leaf in r.when.leaves())
    none = dict.fromkeys(VALUE_NAMES, 0.0)
    assert policy.evaluate(vec(**policy.profiles[profile]), 0.9, none).action == "allow"  # the target passes


def test_creative_writing_welcomes_stimulation_and_hedonism_and_ignores_power():
    policy = Policy.load(REPO / "policies" / "creative-writing.yaml")
    read = {leaf.against if isinstance(leaf, AgainstProbability) else leaf.value
            for r in policy.rules for leaf in r.when.leaves() if isinstance(leaf, (AgainstProbability, ValueScore))}
    assert not read & {"stimulation", "hedonism", "power", "any"}
    assert "power" not in policy.profiles["creative-voice"]
    voice = policy.profiles["creative-voice"]
    against = dict.fromkeys(VALUE_NAMES, 0.0)
    for power in (-1.0, 1.0):  # power either way changes nothing
        assert policy.evaluate(vec(**voice, power=power), 0.9, {**against, "power": max(0.0, -power)}).action \
            == "allow"


def test_children_learning_blocks_what_works_against_security():
    policy = Policy.load(REPO / "policies" / "children-learning.yaml")
    against = {**dict.fromkeys(VALUE_NAMES, 0.0), "security": 0.6}
    decision = policy.evaluate(vec(security=-0.6), 0.9, against)
    assert decision.action == "block" and "harm-to-others" in decision.rule_ids


scores = st.lists(st.floats(-1, 1), min_size=10, max_size=10)
targets = st.dictionaries(st.sampled_from(VALUE_NAMES), st.floats(-1, 1), min_size=1)


@settings(max_examples=200, deadline=None)
@given(target=targets, kind=st.sampled_from(["l2", "l1"]))
def test_distance_is_zero_at_the_target(target, kind):
    at = vec(**target)
    assert distance(target, at, kind=kind) == pytest.approx(0.0, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(target=targets, start=scores, steps=st.lists(st.floats(0, 1), min_size=2, max_size=6),
       kind=st.sampled_from(["l2", "l1"]))
def test_distance_grows_moving_away_from_the_target(target, start, steps, kind):
    """Along the segment from the target to any point, the distance never decreases, and stays in [0, 1]. (The
    'expected' candidate has neither property for a target strictly between -1, 0 and +1: a label is -1, 0 or
    +1, so even an estimate at 0.25 disagrees with a target of 0.25; one reason it was not chosen.)"""
    t = np.array([target.get(n, s) for n, s in zip(VALUE_NAMES, start)])
    far = np.array(start)
    points = np.array([t + s * (far - t) for s in sorted(steps)])
    against = np.clip(-points, 0, 1)  # probabilities consistent with the scores, for the expected distance
    d = distances(target, points, against, kind=kind)
    assert np.all(np.diff(d) >= -1e-9) and np.all((d >= 0) & (d <= 1))


def test_the_opposite_of_a_full_target_is_distance_one():
    target = {n: 1.0 for n in VALUE_NAMES}
    assert distance(target, vec(**{n: -1.0 for n in VALUE_NAMES})) == pytest.approx(1.0)


def test_expected_distance_counts_uncertainty():
    """Two estimates with the same expected score 0: one sure it is unrelated, one split between +1 and -1. The
    expected disagreement from a target of +1 is larger for the split one; L2 cannot tell them apart."""
    target = {"security": 1.0}
    sure, split = vec(), vec()
    none = dict.fromkeys(VALUE_NAMES, 0.0)
    torn = {**none, "security": 0.5}
    assert distance(target, split, torn, kind="expected") > distance(target, sure, none, kind="expected")
    assert distance(target, split, torn, kind="l2") == distance(target, sure, none, kind="l2")


@pytest.fixture(scope="module")
def heldout(split, heldout_estimates):
    """The session estimator's estimates of the held-out split (no prompt in common with its index)."""
    from valueguard.quality.heldout import HeldOut

    rows = split[1]
    return HeldOut(np.array([[r.values[n] for n in VALUE_NAMES] for r in rows]),
                   np.array([r.label_kind for r in rows]),
                   np.array([[e.values[n] for n in VALUE_NAMES] for e in heldout_estimates]),
                   np.array([[e.against[n] for n in VALUE_NAMES] for e in heldout_estimates]),
                   np.array([e.confidence for e in heldout_estimates]))


@pytest.mark.parametrize("goal, target", [
    ("precision", 0.6),  # a block-like target: fewer, surer flags
    ("recall", 0.6),     # a log-like target
])
def test_calibrate_moves_a_profile_distance_to_its_target(heldout, goal, target):
    from valueguard.quality.calibration import calibrate, rule_flags

    policy = Policy.from_yaml(HEADER + "profiles:\n  safe: {security: 1, benevolence: 1, conformity: 1, "
                              "universalism: 1}\nrules:\n" + rule("{profile: safe, distance_above: 0.5}"))
    new, report = calibrate(policy, heldout, {"*": (goal, target)})
    row = report[0]
    assert row.note == "" and row.new != row.old and new.rules[0].when.distance_above == row.new
    flags, y = rule_flags(new.rules[0], heldout), heldout.violated
    achieved = (flags & y).sum() / flags.sum() if goal == "precision" else (flags & y).sum() / y.sum()
    assert achieved >= target and new.profiles == policy.profiles
