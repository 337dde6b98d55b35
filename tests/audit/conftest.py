"""Shared by the audit tests: a real `llm` logs.db written by the local SmolLM2 model (once per session)."""

import json

import llm
import pytest
import sqlite_utils


@pytest.fixture(scope="session")
def smollm2_db(tmp_path_factory, shared_data):
    """A real logs.db: SmolLM2 answers a SafeRLHF question, then a follow-up in the same conversation."""
    mp = pytest.MonkeyPatch()
    mp.setenv("LLM_USER_PATH", str(tmp_path_factory.mktemp("llm")))  # keep llm's config out of ~
    with (shared_data / "saferlhf" / "test_questions.jsonl").open(encoding="utf-8") as f:
        questions = [json.loads(next(f))["prompt"] for _ in range(2)]
    model = llm.get_model("SmolLM2")
    path = tmp_path_factory.mktemp("db") / "logs.db"
    db = sqlite_utils.Database(path)
    first = model.prompt(questions[0])
    first.text()
    first.log_to_db(db)
    follow_up = first.reply(questions[1])
    follow_up.text()
    follow_up.log_to_db(db)
    db.close()
    yield path, questions, [first, follow_up]
    mp.undo()
