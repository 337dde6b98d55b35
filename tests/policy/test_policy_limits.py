"""Hostile and careless policies (issue 13): every one is a PolicyError naming file:line and field, in bounded time
and memory; none loads, none crashes, none fails open."""

from pathlib import Path

import pytest

from valueguard.policy import loading as policy_yaml
from valueguard.policy.model import Policy, PolicyError
from valueguard.values import VALUE_NAMES, ValueVector

CORPUS = Path(__file__).parents[1] / "corpus" / "policy"
HEADER = 'version: "1"\nname: t\ndescription: test policy\n'


def rule(when: str, rid: str = "r1", action: str = "block") -> str:
    return f"  - id: {rid}\n    description: test rule\n    when: {when}\n    action: {action}\n"


# (corpus file, the error's start after the path) — the cases, kept as files.
CORPUS_CASES = [
    # last-wins would load `allow`: fail-open without a word
    ("duplicate-on-error.yaml", ":6: duplicate key 'on_error' (lines 5 and 6)"),
    # a duplicate inside a rule, not only in defaults
    ("duplicate-rule-key.yaml", ":10: duplicate key 'id' (lines 9 and 10)"),
    # was a raw TypeError from float([1])
    ("threshold-list.yaml", ":7 rules[0].when: above must be a number, got list [1]"),
    # was a raw TypeError from float({a: 1})
    ("threshold-mapping.yaml", ":7 rules[0].when: above must be a number, got dict {'a': 1}"),
    # a null threshold fired on every response
    ("threshold-null.yaml", ":7 rules[0].when: above must be a number, got null"),
    # made check() raise AssertionError
    ("all-null.yaml", ":7 rules[0].when: all must be a non-empty list of conditions, got null"),
    # made check() raise AssertionError, one level down
    ("not-confidence-null.yaml", ":7 rules[0].when.not: confidence_below must be a number, got null"),
    # True is an int to Python, not a threshold to a policy
    ("threshold-bool.yaml", ":7 rules[0].when: below must be a number, got bool True"),
    # a list where a value's name goes
    ("value-name-list.yaml", ":7 rules[0].when: value must be a value's name (a string), got list ['power']"),
    # 2,000 nested `not`s raised RecursionError
    ("nested-not-2000.yaml", ":7: nested deeper than 64 levels (the limit)"),
    # 9**7 conditions once expanded: refused at the first alias, before anything grows
    ("alias-bomb-depth-7.yaml", ":5: aliases (*name) are not allowed in a policy"),
    # null where a list of rules goes
    ("no-rules.yaml", ":4 rules: null is not allowed here"),
    # null where the defaults mapping goes
    ("defaults-null.yaml", ":4 defaults: null is not allowed here"),
    # a control character YAML refuses, located by line
    ("control-char.yaml", ":5: not valid YAML (character 1 is not allowed in YAML)"),
    # bytes that are not UTF-8, located by line
    ("not-utf8.yaml", ":3: not UTF-8 text (byte 34)"),
]


@pytest.mark.parametrize("name, message", CORPUS_CASES)
def test_hostile_policy_files_are_policy_errors_with_file_and_line(name, message):
    path = CORPUS / name
    with pytest.raises(PolicyError) as err:
        Policy.load(path)
    assert str(err.value).startswith(f"{path}{message}"), str(err.value)


def test_every_corpus_file_has_a_case():
    assert {p.name for p in CORPUS.glob("*.yaml")} == {name for name, _ in CORPUS_CASES}


def deep_flow_list(n: int) -> str:
    return HEADER + "rules: " + "[" * n + "]" * n + "\n"


# (policy text, the error's start) — limits, each an error with its number; built here, too big to keep as files.
LIMITS = [
    # a 50k-deep flow list raised RecursionError
    (deep_flow_list(50_000), "x.yaml:4: "),
    # just past the YAML depth limit, block style
    (HEADER + "rules:\n" + rule("{not: " * 62 + "{confidence_below: 0.1}" + "}" * 62),
     "x.yaml:7: nested deeper than 64 levels (the limit)"),
    # conditions nested one past their own limit (within the YAML limit)
    (HEADER + "rules:\n" + rule("{not: " * 32 + "{confidence_below: 0.1}" + "}" * 32),
     "x.yaml:7 rules[0].when: conditions nested deeper than 32 (the limit)"),
    # one rule past the rule limit
    (HEADER + "rules:\n" + "".join(rule("{confidence_below: 0.1}", f"r{i}") for i in range(1_001)),
     "x.yaml:5 rules: 1,001 rules; the limit is 1,000"),
    # many conditions in few rules
    (HEADER + "rules:\n" + "".join(
        rule("{any: [" + ", ".join(["{confidence_below: 0.1}"] * 999) + "]}", f"r{i}") for i in range(11)),
     "more than 10,000 conditions in the policy (the limit)"),
    # a file over the size limit is refused before it is parsed
    (HEADER + "rules: []\n#" + "x" * 1_000_000 + "\n", "x.yaml:1: the policy is 1,000,058 bytes; the limit is 1,000,000"),
]


@pytest.mark.parametrize("text, message", LIMITS, ids=["flow-50k", "yaml-depth", "condition-depth", "rules",
                                                       "conditions", "bytes"])
def test_limits_are_errors_that_say_their_number(text, message):
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(text, "x.yaml")
    assert message in str(err.value) and str(err.value).startswith("x.yaml:"), str(err.value)[:300]


def test_a_policy_at_the_limits_loads():
    # The bounds are far above a real policy: 1,000 rules and 31 nested `not`s load.
    text = HEADER + "rules:\n" + rule("{not: " * 31 + "{confidence_below: 0.1}" + "}" * 31, "deep") + "".join(
        rule("{against: any, above: 0.3}", f"r{i}") for i in range(999))
    assert len(Policy.from_yaml(text).rules) == 1_000


def test_a_file_over_the_size_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"#" * (policy_yaml.MAX_POLICY_BYTES + 1))
    with pytest.raises(PolicyError, match=r"big\.yaml:1: the policy is 1,000,001 bytes; the limit is 1,000,000"):
        Policy.load(path)


# (policy text) — a 5 MB bad literal was echoed whole in the error; each must quote at most ~80 characters of it.
HUGE = "x" * 5_000_000
LONG_VALUES = [
    # an unknown value name
    HEADER + "rules:\n" + rule("{value: '" + HUGE[:900_000] + "', below: 0}"),
    # a rule id that is no slug
    HEADER + "rules:\n" + rule("{value: power, below: 0}", rid="'" + " " * 900_000 + "'"),
    # an action that is not one of the four
    HEADER + "rules:\n" + rule("{value: power, below: 0}", action="'" + HUGE[:900_000] + "'"),
    # a long unknown field
    HEADER + "rules:\n" + rule("{value: power, below: 0}") + "    '" + HUGE[:900_000] + "': 1\n",
]


@pytest.mark.parametrize("text", LONG_VALUES, ids=["value", "id", "action", "field"])
def test_an_error_quotes_at_most_a_short_piece_of_the_value(text):
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(text, "x.yaml")
    assert len(str(err.value)) < 300, str(err.value)[:400]


def test_a_null_threshold_can_no_longer_fire_on_everything():
    # Before: `{against: security, above: }` loaded and fired on every response. Now it does not load; the
    # same rule with a number fires only above it.
    with pytest.raises(PolicyError):
        Policy.from_yaml(HEADER + "rules:\n" + rule("{against: security, above: }"))
    policy = Policy.from_yaml(HEADER + "rules:\n" + rule("{against: security, above: 0.5}"))
    low = {n: 0.1 for n in VALUE_NAMES}
    assert policy.evaluate(ValueVector.from_dict({}, missing=0.0), 0.9, low).action == "allow"


# (defaults line, the error) — the new defaults are checked like the rest.
DEFAULTS = [
    # a timeout is a positive number of seconds
    ("rewrite_timeout: 0", "defaults.rewrite_timeout: Input should be greater than 0"),
    # text is not a number
    ("rewrite_timeout: soon", "defaults.rewrite_timeout: Input should be a valid number"),
    # too small a bound would check less than head and tail
    ("max_chars: 10", "defaults.max_chars: Input should be greater than or equal to 2000"),
    # a bool is not a count
    ("rewrite_attempts: true", "defaults.rewrite_attempts: Input should be a valid integer"),
]


@pytest.mark.parametrize("line, message", DEFAULTS)
def test_defaults_are_typed(line, message):
    with pytest.raises(PolicyError) as err:
        Policy.from_yaml(HEADER + f"defaults:\n  {line}\nrules: []\n", "x.yaml")
    assert str(err.value) == f"x.yaml:5 {message}", str(err.value)
