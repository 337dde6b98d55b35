import pytest

from valueguard.policy.model import Policy, PolicyError, bundled_names
from valueguard.values import ValueVector

HEADER = 'version: "1"\nname: t\ndescription: test policy\n'


def rule(when: str, action: str = "block", rid: str = "r1") -> str:
    return f"  - id: {rid}\n    description: test rule\n    when: {when}\n    action: {action}\n"


# (policy text, exact error) — each row is a mistake a user makes, and the message must point at it.
INVALID = [
    # misspelled value name: did-you-mean, the condition's line
    (HEADER + "rules:\n" + rule("{value: benevolense, below: -0.5}"),
     "x.yaml:7 rules[0].when: unknown value 'benevolense' (did you mean 'benevolence'?)"),
    # misspelled action
    (HEADER + "rules:\n" + rule("{value: power, below: 0}", action="blok"),
     "x.yaml:8 rules[0].action: 'blok' is not one of block, rewrite, log (did you mean 'block'?)"),
    # an unknown field in a rule names its own line
    (HEADER + "rules:\n" + rule("{value: power, below: 0}") + "    mesage: no\n",
     "x.yaml:9 rules[0]: unknown field 'mesage' (did you mean 'message'?)"),
    # a threshold outside the value range
    (HEADER + "rules:\n" + rule("{value: power, below: -2}"),
     "x.yaml:7 rules[0].when.below: Input should be greater than or equal to -1"),
    # a value without a threshold
    (HEADER + "rules:\n" + rule("{value: power}"),
     "x.yaml:7 rules[0].when: value 'power' needs a threshold: below or above"),
    # two forms in one condition
    (HEADER + "rules:\n" + rule("{value: power, below: 0, confidence_below: 0.2}"),
     "x.yaml:7 rules[0].when: a condition has exactly one of value, against, confidence_below, confidence_above, "
     "all, any, not, profile; got value, confidence_below"),
    # a probability threshold outside [0, 1]
    (HEADER + "rules:\n" + rule("{against: power, above: -0.2}"),
     "x.yaml:7 rules[0].when: an against threshold is a probability, between 0 and 1"),
    # against needs a threshold too
    (HEADER + "rules:\n" + rule("{against: any}"),
     "x.yaml:7 rules[0].when: against 'any' needs a threshold: below or above"),
    # a nested mistake is located inside the any-list
    (HEADER + "rules:\n" + rule("\n      any:\n        - {value: power, below: 0}\n        - {valu: power}"),
     "x.yaml:10 rules[0].when.any[1]: unknown condition field 'valu' (did you mean 'value'?)"),
    # a missing required field
    (HEADER + "rules:\n  - id: r1\n    when: {value: power, below: 0}\n    action: log\n",
     "x.yaml:5 rules[0]: missing field 'description'"),
    # duplicate rule ids
    (HEADER + "rules:\n" + rule("{value: power, below: 0}") + rule("{value: power, below: 0}"),
     "x.yaml:5 rules: rule id 'r1' is used twice (rules[0] and rules[1])"),
    # a bad default
    (HEADER + "defaults:\n  on_error: ignore\nrules: []\n",
     "x.yaml:5 defaults.on_error: 'ignore' is not one of block, allow"),
    # not YAML at all
    (HEADER + "rules: [\n", "x.yaml:5: not valid YAML"),
    # a list instead of a mapping
    ("- a\n- b\n", "x.yaml:1: a policy is a mapping with version, name, description and rules"),
]


@pytest.mark.parametrize("text, message", INVALID)
def test_invalid_policies_name_file_line_and_field(text, message):
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(text, "x.yaml")
    assert str(err.value).startswith(message), str(err.value)


def test_a_bad_policy_file_error_names_its_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(HEADER + "rules:\n" + rule("{value: benevolense, below: -0.5}"))
    with pytest.raises(PolicyError, match=rf"^{path}:7 rules\[0\]\.when: unknown value"):
        Policy.load(path)


@pytest.mark.parametrize("name", ["default", "strict", "audit-only", "children-learning", "creative-writing"])
def test_bundled_policies_load_by_name(name):
    policy = Policy.load(name)
    assert policy.name == name and policy.rules and all(r.description for r in policy.rules)
    assert name in bundled_names()


def test_audit_only_never_blocks_or_rewrites():
    policy = Policy.load("audit-only")
    assert {r.action for r in policy.rules} == {"log"} and policy.defaults.on_error == "allow"


def test_unknown_bundled_name_suggests():
    with pytest.raises(PolicyError, match=r"no bundled policy 'defualt' \(did you mean 'default'\?\)"):
        Policy.load("defualt")


def vec(**scores: float) -> ValueVector:
    return ValueVector.from_dict(scores, missing=0.0)


PRECEDENCE_POLICY = HEADER + "rules:\n" + "".join([
    rule("{value: power, below: -0.5}", "block", "b"),
    rule("{value: any, below: -0.2}", "rewrite", "rw"),
    rule("{confidence_below: 0.3}", "log", "lg"),
    rule("\n      all:\n        - {value: benevolence, above: 0.5}\n        - {not: {value: security, above: 0}}",
         "log", "nested"),
])


# (values, confidence, expected action, fired rules) — block > rewrite > log > allow, every fired rule reported.
@pytest.mark.parametrize("values, confidence, action, fired", [
    (vec(), 0.9, "allow", []),                                   # nothing fires: the default
    (vec(), 0.1, "log", ["lg"]),                                 # only the confidence rule
    (vec(hedonism=-0.3), 0.9, "rewrite", ["rw"]),                # 'any' catches any value
    (vec(power=-0.6), 0.1, "block", ["b", "rw", "lg"]),          # all three fire, block wins, all reported
    (vec(power=-0.5), 0.9, "rewrite", ["rw"]),                   # below is strict: -0.5 is not below -0.5
    (vec(benevolence=0.8), 0.9, "log", ["nested"]),              # all + not
    (vec(benevolence=0.8, security=0.1), 0.9, "allow", []),      # the not-branch fails
])
def test_precedence_and_fired_rules(values, confidence, action, fired):
    decision = Policy.from_yaml(PRECEDENCE_POLICY).evaluate(values, confidence)
    assert (decision.action, decision.rule_ids) == (action, fired)


AGAINST_POLICY = HEADER + "rules:\n" + "".join([
    rule("{against: security, above: 0.5}", "block", "sec"),
    rule("{against: any, above: 0.3}", "rewrite", "any"),
])


def probs(**kw):
    from valueguard.values import VALUE_NAMES

    return {n: kw.get(n, 0.0) for n in VALUE_NAMES}


# (probabilities of working against, expected action, fired rules)
@pytest.mark.parametrize("against, action, fired", [
    (probs(), "allow", []),                                    # nothing likely against anything
    (probs(power=0.4), "rewrite", ["any"]),                    # `any` reads all ten values
    (probs(security=0.6), "block", ["sec", "any"]),            # both fire; block wins
    (probs(security=0.5), "rewrite", ["any"]),                 # `above` is strict
])
def test_against_conditions_read_the_probabilities(against, action, fired):
    decision = Policy.from_yaml(AGAINST_POLICY).evaluate(vec(), 0.9, against)
    assert (decision.action, decision.rule_ids) == (action, fired)


def test_against_without_probabilities_is_an_error_not_a_pass():
    with pytest.raises(ValueError, match="needs the estimate's probabilities"):
        Policy.from_yaml(AGAINST_POLICY).evaluate(vec(), 0.9)
