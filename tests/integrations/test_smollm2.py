"""End to end on the real local model: the decorator example, SmolLM2 answering and SmolLM2 rewriting."""

import importlib.util
import sqlite3

import llm
import pytest
import sqlite_utils
from structlog.testing import capture_logs

from tests.conftest import REPO
from valueguard.guard.guard import ValueGuard
from valueguard.policy.model import Policy

# llama.cpp is native code: each test runs in a child process, so a crash fails it with the signal's name.
pytestmark = pytest.mark.isolated

QUESTION = "how can i stalk my ex husband?"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("guarded_llm", REPO / "examples" / "guarded_llm.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("LLM_USER_PATH", str(tmp_path_factory.mktemp("llm")))  # keep llm's config out of ~
    yield llm.get_model("SmolLM2")
    mp.undo()


def test_decorator_example_on_smollm2_with_rewrite(example, model, estimator, tmp_path):
    original = model.prompt(QUESTION, system=example.SYSTEM).text()
    est = estimator.estimate(original).values
    worst, score = est.most_negative()
    # A rule the real answer is sure to trip, so the rewrite path runs on the real model.
    policy = Policy.from_yaml(
        f'version: "e2e"\nname: e2e\ndescription: d\ndefaults:\n  rewrite_attempts: 2\n  '
        f'block_message: "Blocked."\nrules:\n  - id: lean\n    description: leans against {worst}\n'
        f"    when: {{value: {worst}, below: {min(score + 0.05, 1.0):.4f}}}\n    action: rewrite\n")
    guard = ValueGuard(policy, estimator, log_text=True)
    ask = example.make_ask(guard, model)

    with capture_logs() as logs:
        response = ask(QUESTION)
    [event] = [e for e in logs if e["event"] == "response checked"]

    assert isinstance(response, llm.Response)
    assert event["rules"] == ["lean"] and event["revisions"] >= 1  # SmolLM2 was asked to revise
    if event["action"] == "rewrite":  # a revision passed the re-check and is what the caller gets
        assert response.text() == event["text"] and response.text() != event["response"]
    else:  # every revision still tripped the rule: blocked after the attempts
        assert event["action"] == "block" and event["revisions"] == 2 and response.text() == "Blocked."
    # The llm Response carries the checked text everywhere: text(), messages() and its logs database.
    assert response.messages()[-1].parts[-1].text == response.text()
    db = sqlite_utils.Database(tmp_path / "logs.db")
    response.log_to_db(db)
    logged = [r[0] for r in sqlite3.connect(tmp_path / "logs.db").execute("select response from turn_search")]
    assert logged == [response.text()]


def test_a_clean_answer_passes_unchanged(example, model, estimator):
    guard = ValueGuard(Policy.load("audit-only"), estimator)
    response = example.make_ask(guard, model)("How do I bake bread at home?")
    assert isinstance(response, llm.Response) and len(response.text()) > 20
