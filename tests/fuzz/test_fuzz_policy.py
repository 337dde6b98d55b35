"""Fuzz the policy loader and evaluator: any text is a Policy or a PolicyError naming file:line, with a short
message; any valid policy evaluates any estimate to one of the four actions."""

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from tests.fuzz.profiles import PROFILE
from valueguard.policy.model import PRECEDENCE, ConditionForm, Policy, PolicyError
from valueguard.values import VALUE_NAMES, ValueVector

KEYS = ["version", "name", "description", "defaults", "rules", "id", "when", "action", "message", "value", "against",
        "below", "above", "confidence_below", "confidence_above", "all", "any", "not", "on_error", "max_chars",
        "rewrite_timeout", "rewrite_attempts", "block_message", "on_block", "<<"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True),
                    st.sampled_from([*VALUE_NAMES, "any", "block", "allow", "log", "rewrite", "raise", "replace"]),
                    st.text(max_size=30))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=6)),
    max_leaves=40)
HEADER = 'version: "1"\nname: f\ndescription: fuzz\n'


def mutate(text: str, data: st.DataObject) -> str:
    """A structural edit YAML's dumper never writes: an alias, a duplicate key, deep nesting, a cut, a byte."""
    kind = data.draw(st.sampled_from(["none", "alias", "dup", "deep", "cut", "insert"]))
    if kind == "alias":
        return "a: &a {confidence_below: 0.1}\n" + text + "\nb: [*a, *a]\n"
    if kind == "dup":
        return text + "\n" + text
    if kind == "deep":
        n = data.draw(st.integers(1, 3000))
        return HEADER + "rules: " + "[" * n + "]" * data.draw(st.integers(0, n)) + "\n"
    if kind == "cut" and text:
        return text[: data.draw(st.integers(0, len(text)))]
    if kind == "insert":
        at = data.draw(st.integers(0, len(text)))
        return text[:at] + data.draw(st.text(max_size=5)) + text[at:]
    return text


def assert_loads_or_policy_error(text: str) -> None:
    try:
        Policy.from_yaml(text, "x.yaml")
    except PolicyError as e:
        message = str(e)
        assert message.startswith("x.yaml:"), message[:200]
        # One line per problem, each quoting at most ~80 characters of a value.
        assert all(len(line) < 600 for line in message.splitlines()), message[:700]


@given(DOCS, st.data())
@PROFILE
@example({"defaults": {"on_error": "block"}, "rules": [{"id": "r", "description": "d", "when": {"all": None},
                                                        "action": "block"}]}, None)
def test_policy_loader_on_structured_documents(doc, data):
    text = yaml.safe_dump(doc, allow_unicode=True) if not isinstance(doc, dict) else \
        HEADER + yaml.safe_dump(doc, allow_unicode=True)
    assert_loads_or_policy_error(text if data is None else mutate(text, data))


@given(st.text(max_size=400))
@PROFILE
def test_policy_loader_on_any_text(text):
    assert_loads_or_policy_error(text)


THRESHOLD = st.floats(-1, 1, allow_nan=False)
PROBABILITY = st.floats(0, 1, allow_nan=False)
NAME = st.sampled_from([*VALUE_NAMES, "any"])
LEAVES = st.one_of(
    st.builds(lambda n, b: {"value": n, "below": b}, NAME, THRESHOLD),
    st.builds(lambda n, a: {"value": n, "above": a}, NAME, THRESHOLD),
    st.builds(lambda n, a: {"against": n, "above": a}, NAME, PROBABILITY),
    st.builds(lambda c: {"confidence_below": c}, PROBABILITY),
    st.builds(lambda c: {"confidence_above": c}, PROBABILITY),
)
CONDITIONS = st.recursive(LEAVES, lambda inner: st.one_of(
    st.builds(lambda cs: {"all": cs}, st.lists(inner, min_size=1, max_size=4)),
    st.builds(lambda cs: {"any": cs}, st.lists(inner, min_size=1, max_size=4)),
    st.builds(lambda c: {"not": c}, inner)), max_leaves=20)
RULES = st.lists(st.tuples(CONDITIONS, st.sampled_from(["block", "rewrite", "log"])), min_size=1, max_size=6)
SCORES = st.lists(st.floats(-1, 1, allow_nan=False), min_size=10, max_size=10)


def reference_holds(cond: dict, values: dict, confidence: float, against: dict) -> bool:
    """What a condition means, written out independently of Condition.holds."""
    if "all" in cond:
        return all(reference_holds(c, values, confidence, against) for c in cond["all"])
    if "any" in cond:
        return any(reference_holds(c, values, confidence, against) for c in cond["any"])
    if "not" in cond:
        return not reference_holds(cond["not"], values, confidence, against)
    if "confidence_below" in cond:
        return confidence < cond["confidence_below"]
    if "confidence_above" in cond:
        return confidence > cond["confidence_above"]
    source = values if "value" in cond else against
    name = cond.get("value", cond.get("against"))
    scores = list(source.values()) if name == "any" else [source[name]]
    return any(("below" not in cond or s < cond["below"]) and ("above" not in cond or s > cond["above"])
               for s in scores)


@given(RULES, SCORES, PROBABILITY, st.lists(PROBABILITY, min_size=10, max_size=10))
@PROFILE
def test_evaluator_on_any_valid_policy_and_estimate(rules, scores, confidence, against):
    doc = {"version": "1", "name": "f", "description": "fuzz", "rules": [
        {"id": f"r{i}", "description": "d", "when": when, "action": action} for i, (when, action) in enumerate(rules)]}
    policy = Policy.from_yaml(yaml.safe_dump(doc), "x.yaml")  # valid by construction: it must load
    values = ValueVector(scores)
    probs = dict(zip(VALUE_NAMES, against))
    decision = policy.evaluate(values, confidence, probs)
    assert decision.action in PRECEDENCE
    fired = [r.id for r, (when, _) in zip(policy.rules, rules) if reference_holds(when, dict(values.items()),
                                                                                   confidence, probs)]
    assert decision.rule_ids == fired
    assert all(isinstance(r.when, ConditionForm) for r in policy.rules)
