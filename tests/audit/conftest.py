"""Shared by the audit tests: a real `llm` logs.db written by the local SmolLM2 model (once per session).

SmolLM2 runs in a child process: a native crash in llama.cpp then fails the tests that need this database, with the
signal's name and the rebuild command, and never the whole suite.
"""

import json
from dataclasses import dataclass

import pytest

from valueguard.integrations.local_llm import crash_message, run_child

_WRITE_DB = """
import json, sys
import llm, sqlite_utils
path, first_question, second_question = sys.argv[1:4]
model = llm.get_model("SmolLM2")
db = sqlite_utils.Database(path)
first = model.prompt(first_question)
first.text()
first.log_to_db(db)
follow_up = first.reply(second_question)
follow_up.text()
follow_up.log_to_db(db)
db.close()
print(json.dumps([{"id": r.id, "text": r.text()} for r in (first, follow_up)]))
"""


@dataclass(frozen=True)
class LoggedTurn:
    """One response the child logged: its id in logs.db and its text."""

    id: str
    text: str


@pytest.fixture(scope="session")
def smollm2_db(tmp_path_factory, shared_data):
    """A real logs.db: SmolLM2 answers a SafeRLHF question, then a follow-up in the same conversation."""
    with (shared_data / "saferlhf" / "test_questions.jsonl").open(encoding="utf-8") as f:
        questions = [json.loads(next(f))["prompt"] for _ in range(2)]
    path = tmp_path_factory.mktemp("db") / "logs.db"
    # LLM_USER_PATH keeps llm's config out of ~.
    result = run_child(["-c", _WRITE_DB, str(path), *questions], timeout=600,
                       env={"LLM_USER_PATH": str(tmp_path_factory.mktemp("llm"))})
    if result.returncode != 0:
        pytest.fail(crash_message("SmolLM2 writing logs.db", result), pytrace=False)
    turns = [LoggedTurn(**t) for t in json.loads(result.stdout.strip().splitlines()[-1])]
    return path, questions, turns
