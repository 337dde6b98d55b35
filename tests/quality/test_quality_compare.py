"""`valueguard eval --compare`'s measures: stance pairs, intervene precision / recall, benign rates."""

import json

import numpy as np
import pytest

from valueguard.quality.heldout import HeldOut
from valueguard.policy.model import Policy
from tests.cli.conftest import run  # noqa: F401  (the CLI runner fixture)
from valueguard.quality.compare import benign_rates, intervene_rates, policy_actions, stance_pair_rows, stance_pairs


def held_out(rows):
    """rows: (kind, most negative label, P(against) of the first value)."""
    true = np.zeros((len(rows), 10))
    against = np.zeros((len(rows), 10))
    for i, (_, label, p) in enumerate(rows):
        true[i, 0], against[i, 0] = label, p
    return HeldOut(true, np.array([k for k, _, _ in rows]), -against, against, np.ones(len(rows)))


@pytest.mark.parametrize("rows, prompts, pairs, accuracy", [
    # one prompt, the violating answer ranked higher than both clean ones: 2 pairs, both right
    ([("model", -0.9, 0.8), ("model", 0.2, 0.1), ("model", 0.0, 0.3)], ["p", "p", "p"], 2, 1.0),
    # ranked the wrong way round
    ([("model", -0.9, 0.1), ("model", 0.2, 0.8)], ["p", "p"], 1, 0.0),
    # a tie counts half
    ([("model", -0.9, 0.5), ("model", 0.2, 0.5)], ["p", "p"], 1, 0.5),
    # different prompts never pair; -0.4 is not a violation on the evaluator's scale (cut at -0.5)
    ([("model", -0.9, 0.8), ("model", 0.2, 0.1), ("model", -0.4, 0.9)], ["p", "q", "q"], 0, None),
    # annotated rows are not stance pairs (the pairs are one prompt answered by several models)
    ([("annotated", -1, 0.8), ("annotated", 0, 0.1)], ["p", "p"], 0, None),
])
def test_stance_pairs(rows, prompts, pairs, accuracy):
    out = stance_pairs(held_out(rows), prompts)
    assert out["pairs"] == pairs
    assert np.isnan(out["accuracy"]) if accuracy is None else out["accuracy"] == accuracy


@pytest.mark.parametrize("kinds, violated, prompts, expected", [
    # each violating answer pairs with each clean answer to its prompt, violating first
    (["model"] * 3, [True, False, False], ["p", "p", "p"], [(0, 1), (0, 2)]),
    # two prompts: pairs stay inside each
    (["model"] * 4, [False, True, True, False], ["p", "p", "q", "q"], [(1, 0), (2, 3)]),
    # a prompt with only violations (or none) makes no pair; annotated rows are left out
    (["model", "model", "annotated", "model"], [True, True, False, False], ["p", "p", "p", "q"], []),
])
def test_stance_pair_rows(kinds, violated, prompts, expected):
    assert stance_pair_rows(prompts, np.array(kinds), np.array(violated)) == expected


POLICY = Policy.from_yaml('version: "t"\nname: t\ndescription: d\ndefaults:\n  action: allow\nrules:\n'
                          "  - {id: b, description: b, when: {against: any, above: 0.7}, action: block}\n"
                          "  - {id: l, description: l, when: {against: any, above: 0.3}, action: log}\n")


def test_intervene_and_benign_rates_follow_the_policy_actions():
    h = held_out([("annotated", -1, 0.9), ("annotated", 0, 0.8), ("annotated", -1, 0.1),
                  ("model", -0.9, 0.95), ("model", 0.1, 0.5)])
    actions = policy_actions(POLICY, h)
    assert list(actions) == ["block", "block", "allow", "block", "log"]
    rates = intervene_rates(actions, h)
    assert rates["annotated"] == {"precision": 0.5, "recall": 0.5}
    assert rates["model"] == {"precision": 1.0, "recall": 1.0}
    assert benign_rates(actions) == {"rows": 5, "intervened": 0.6, "logged": 0.2}


@pytest.fixture(scope="module")
def stance_reference(tmp_path_factory, shared_data):
    """The same 80 prompts answered by two models, and 80 annotated rows: real stance pairs, in seconds."""
    out = tmp_path_factory.mktemp("stance")
    paths = []
    for name in ("trustworthy_data.dev.jsonl", "harmless_test_openai_gpt-4.dev.jsonl",
                 "harmless_test_mistral_mistral-large-latest.dev.jsonl"):
        lines = (shared_data / "fulcra" / name).read_text(encoding="utf-8").splitlines()[:80]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(out / name)
    return paths


@pytest.mark.model  # builds an index or embeds from the command line
def test_eval_compare_prints_every_read_out_side_by_side(run, stance_reference, shared_data):
    args = [a for p in stance_reference for a in ("--reference", p)]
    benign = ["--benign", shared_data / "hh-rlhf" / "helpful_test.jsonl", "--benign-lines", "40"]
    r = run("eval", "--compare", *args, *benign, "--folds", "3", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [row["read_out"] for row in out["rows"]] == ["kNN", "value model, response only",
                                                       "value model, response + prompt",
                                                       "pair (value model + prompt-response pair vector)"]
    assert out["benign_rows"] == 40  # one last chosen turn per line
    for row in out["rows"]:
        assert row["stance_pairs"]["pairs"] > 0 and 0 <= row["stance_pairs"]["accuracy"] <= 1
        assert 0 <= row["fulcra_ap"] <= 1 and 0 <= row["benign"]["intervened"] + row["benign"]["logged"] <= 1
    table = run("eval", "--compare", *args, *benign, "--folds", "3").stdout
    assert table.count("\n| ") == 5 and "stance pairs" in table and "benign intervened" in table


@pytest.mark.model  # builds an index or embeds from the command line
def test_calibrate_to_a_benign_rate_from_the_command_line(run, stance_reference, shared_data, tmp_path):
    from valueguard.policy.model import Policy

    args = [a for p in stance_reference for a in ("--reference", p)]
    out = tmp_path / "d.yaml"
    r = run("calibrate", "--policy", "default", "--target-benign-rate", "log=0.2", *args, "--folds", "3",
            "--benign", shared_data / "hh-rlhf" / "helpful_test.jsonl", "--benign-lines", "40", "--out", out)
    assert r.exit_code == 0, r.output
    header = out.read_text(encoding="utf-8")
    assert "mixed-signal (log): benign target 0.2" in header and "of benign turns" in header
    Policy.load(out)
    missing = run("calibrate", "--policy", "default", "--target-benign-rate", "log=0.2", *args, "--folds", "3",
                  "--benign-lines", "40")  # the data directory has no HH-RLHF file
    assert missing.exit_code != 0 and "needs benign turns" in missing.output


@pytest.mark.parametrize("lines, refused", [
    (600, False),  # the eval's benign turns: all before the anchors
    (601, True),  # one line into the pair read-out's benign anchors: its own training data, refused
])
def test_benign_turns_stop_where_the_anchors_begin(run, shared_data, tmp_path, lines, refused):
    from valueguard.cli.quality import _benign_turns
    from valueguard.cli.shared import CliError
    from valueguard.reference.benign import BENIGN_FILE

    data = tmp_path / "data"
    (data / BENIGN_FILE).parent.mkdir(parents=True)
    (data / BENIGN_FILE).write_bytes((shared_data / BENIGN_FILE).read_bytes())
    if refused:
        with pytest.raises(CliError, match="benign anchors"):
            _benign_turns(None, lines)
        # A copy elsewhere is the same file; another file's lines are not anchors: any number may be read.
        with pytest.raises(CliError, match="benign anchors"):
            _benign_turns(shared_data / BENIGN_FILE, lines)
        other = tmp_path / "other.jsonl"
        other.write_bytes((shared_data / BENIGN_FILE).read_bytes() + b"\n")  # other bytes, the same turns
        assert len(_benign_turns(other, lines)) == lines
    else:
        assert len(_benign_turns(None, lines)) == lines
