import json

import pytest

from valueguard.cli import EXIT_ERROR

SCORED = ("harmless_test_openai_gpt-4.dev.jsonl", "harmless_test_openai_gpt-35-turbo.dev.jsonl",
          "harmless_test_mistral_mistral-large-latest.dev.jsonl")


@pytest.fixture(scope="module")
def scored_subset(shared_data, tmp_path_factory):
    """The first 200 real rows of each scored file: three models' answers to the same SafeRLHF prompts."""
    out = tmp_path_factory.mktemp("scored")
    for name in SCORED:
        lines = (shared_data / "fulcra" / name).read_text(encoding="utf-8").splitlines()[:200]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [out / name for name in SCORED]


@pytest.mark.model  # embeds and cross-validates from the command line (no model fixture marks it)
def test_reward_eval_prints_the_pairwise_accuracy_of_each_distance(run, scored_subset):
    refs = [a for p in scored_subset for a in ("--reference", p)]
    r = run("reward-eval", *refs, "--folds", "3", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)  # warnings (e.g. a first ONNX export) go to stderr
    assert out["target"] == {"security": 1.0, "benevolence": 1.0, "conformity": 1.0, "universalism": 1.0}
    rows = {row["distance"]: row for row in out["rows"]}
    assert set(rows) == {"l2", "l1", "expected"}
    # out of fold on real answers the reward must beat a coin on the pairs the labels order
    assert rows["l2"]["label_pairs"] >= 30 and rows["l2"]["label_accuracy"] > 0.55, rows["l2"]
    table = run("reward-eval", *refs, "--folds", "3", "--target", "benevolence", "--target", "power=0")
    assert table.exit_code == 0 and "| l2 (used) |" in table.output
    assert "target benevolence +1, power +0" in table.output


@pytest.mark.parametrize("target, message", [
    ("benevolense=1", "unknown value 'benevolense'"),      # a typo gets did-you-mean
    ("power=high", "expected VALUE or VALUE=score"),     # not a number
    ("power=2", "a target is a score in [-1, 1]"),       # out of range
])
def test_reward_eval_refuses_a_bad_target(run, target, message):
    r = run("reward-eval", "--target", target)
    assert r.exit_code == EXIT_ERROR and message in r.output, r.output
