"""Log readers: every format on small realistic files, the real HH-RLHF and FULCRA files, a real llm logs.db
written by the local SmolLM2 model, format detection, bad lines, and streaming."""

import inspect
import json
import re
import shutil
import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest

from valueguard.audit.readers import READERS, detect_format, read_log
from valueguard.audit.records import BadLine, Turn
from valueguard.reference import ReadReport, read_reference


def write_jsonl(path: Path, lines: list) -> Path:
    """Objects are written as JSON, strings as they are (broken lines, blank lines)."""
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines), encoding="utf-8")
    return path


def as_rows(records) -> list[tuple]:
    """Records as plain tuples, without the tmp path a BadLine carries."""
    return [("turn", r.id, r.prompt, r.response, r.source) if isinstance(r, Turn) else ("bad", r.line, r.reason)
            for r in records]


def turns(records) -> list[Turn]:
    return [r for r in records if isinstance(r, Turn)]


def bad(records) -> list[BadLine]:
    return [r for r in records if isinstance(r, BadLine)]


BULLY = "what are some good ways to bully somone?"
REFUSAL = "I can't help with bullying anyone. If someone is bothering you, talking to a trusted adult can help."

# One row per format and per tricky case: (file name, format, lines, expected records in order).
CASES = [
    # openai: the common one-exchange line; the line's own id is kept (with the turn number), model is the source
    pytest.param("chat.jsonl", "openai", [
        {"id": "req-7", "model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": BULLY}, {"role": "assistant", "content": REFUSAL}]},
    ], [("turn", "req-7:1", BULLY, REFUSAL, "gpt-4o")], id="openai-single"),
    # openai: every assistant message is a turn; the prompt is the LAST user message before it, not the first
    pytest.param("chat.jsonl", "openai", [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Tell me a joke"}, {"role": "assistant", "content": "Knock knock."}]},
    ], [("turn", "chat.jsonl:1:1", "Hi", "Hello!", None),
        ("turn", "chat.jsonl:1:2", "Tell me a joke", "Knock knock.", None)], id="openai-multi-turn"),
    # openai: content as a list of parts; the image part is not text and is left out, text parts are joined
    pytest.param("chat.jsonl", "openai", [
        {"model": "gpt-4o", "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant",
             "content": [{"type": "text", "text": "A cat"}, {"type": "text", "text": "on a mat."}]}]},
    ], [("turn", "chat.jsonl:1:1", "What is in this picture?", "A cat\non a mat.", "gpt-4o")], id="openai-parts"),
    # openai: an assistant message that only calls a tool has no text: reported, and the answer after the tool
    # result is still turn 2, with the user's question (not the tool output) as its prompt
    pytest.param("chat.jsonl", "openai", [
        {"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "18C, sunny"},
            {"role": "assistant", "content": "It is 18C and sunny in Paris."}]},
    ], [("bad", 1, "empty assistant turn 1 (tool calls only)"),
        ("turn", "chat.jsonl:1:2", "Weather in Paris?", "It is 18C and sunny in Paris.", None)], id="openai-tool-call"),
    # openai: the wrong shapes are one BadLine each, with the reason; a line with nothing to audit is reported too
    pytest.param("chat.jsonl", "openai", [
        {"messages": "hello"},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "user", "content": 42}]},
        {"messages": [{"role": "user", "content": "anyone there?"}]},
        {"id": {"nested": 1}, "messages": [{"role": "assistant", "content": "Hi"}]},
        {"messages": [{"role": "assistant", "content": "Welcome! How can I help?"}]},
    ], [("bad", 1, "'messages' must be a list"),
        ("bad", 2, "messages[0] must be an object with a string 'role'"),
        ("bad", 3, "messages[0].content must be a string, a list of parts or null"),
        ("bad", 4, "no assistant turn to audit"),
        ("bad", 5, "'id' must be a string or an integer when given"),
        ("turn", "chat.jsonl:6:1", None, "Welcome! How can I help?", None)], id="openai-bad-shapes"),
    # sharegpt: the speaker names of several chat UIs, any case; system is neither prompt nor response
    pytest.param("share.jsonl", "sharegpt", [
        {"id": "conv-1", "model": "vicuna-13b", "conversations": [
            {"from": "system", "value": "Be nice."}, {"from": "human", "value": "Hi"},
            {"from": "GPT", "value": "Hello!"}, {"from": "user", "value": "And you?"},
            {"from": "chatgpt", "value": "Fine."}, {"from": "human", "value": "Bye"},
            {"from": "bard", "value": "Bye!"}]},
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "bing", "value": "A1"},
                           {"from": "model", "value": "A2"}, {"from": "assistant", "value": "   "}]},
    ], [("turn", "conv-1:1", "Hi", "Hello!", "vicuna-13b"), ("turn", "conv-1:2", "And you?", "Fine.", "vicuna-13b"),
        ("turn", "conv-1:3", "Bye", "Bye!", "vicuna-13b"),
        ("turn", "share.jsonl:2:1", "Q", "A1", None), ("turn", "share.jsonl:2:2", "Q", "A2", None),
        ("bad", 2, "empty assistant turn 3")], id="sharegpt-roles"),
    # sharegpt: a value that is not text makes the line one BadLine; the next line is still read
    pytest.param("share.jsonl", "sharegpt", [
        {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": None}]},
        {"conversations": [{"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]},
    ], [("bad", 1, "conversations[1] must be an object with string 'from' and 'value'"),
        ("turn", "share.jsonl:2:1", "Q2", "A2", None)], id="sharegpt-bad-value"),
    # hh-rlhf: both transcripts, every assistant turn, chosen first; ids name the transcript and the turn
    pytest.param("hh.jsonl", "hh-rlhf", [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Help me cheat\n\nAssistant: I won't help with that.",
         "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Help me cheat\n\nAssistant: Sure, here is how."},
    ], [("turn", "hh.jsonl:1:chosen:1", "Hi", "Hello!", "hh-rlhf/chosen"),
        ("turn", "hh.jsonl:1:chosen:2", "Help me cheat", "I won't help with that.", "hh-rlhf/chosen"),
        ("turn", "hh.jsonl:1:rejected:1", "Hi", "Hello!", "hh-rlhf/rejected"),
        ("turn", "hh.jsonl:1:rejected:2", "Help me cheat", "Sure, here is how.", "hh-rlhf/rejected")], id="hh-both"),
    # hh-rlhf: an empty assistant turn (as on line 121 of the real file) is reported, and the turns around it
    # are kept with their own numbers; a transcript without the leading blank line still parses
    pytest.param("hh.jsonl", "hh-rlhf", [
        {"chosen": "Human: Ideas?\n\nAssistant: \n\nHuman: More ideas?\n\nAssistant: The sky's the limit!",
         "rejected": "\n\nHuman: Ideas?\n\nAssistant:"},
    ], [("bad", 1, "'chosen': empty assistant turn 1"),
        ("turn", "hh.jsonl:1:chosen:2", "More ideas?", "The sky's the limit!", "hh-rlhf/chosen"),
        ("bad", 1, "'rejected': empty assistant turn 1")], id="hh-empty-turn"),
    # hh-rlhf: a transcript that is not a string is reported; the other transcript of the line is still audited
    pytest.param("hh.jsonl", "hh-rlhf", [
        {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!", "rejected": None},
    ], [("turn", "hh.jsonl:1:chosen:1", "Hi", "Hello!", "hh-rlhf/chosen"),
        ("bad", 1, "'rejected' must be a transcript string")], id="hh-missing-transcript"),
    # fulcra: the response spans lines; source is response_source; a dialogue with no Bob turn is reported
    pytest.param("trustworthy_data.dev.jsonl", "fulcra", [
        {"dialogue": f"Human: {BULLY}\nBob: No.\nBullying hurts people.", "value_types": ["benevolence: +1"],
         "response_source": "gemini"},
        {"dialogue": "Human: only a question", "value_types": []},
        {"dialogue": "Human: Q\nBob:   ", "value_types": []},
    ], [("turn", "trustworthy_data.dev.jsonl:1", BULLY, "No.\nBullying hurts people.", "gemini"),
        ("bad", 2, "dialogue has no '\\nBob:' turn"), ("bad", 3, "empty response")], id="fulcra"),
    # scored: the model is named by the file name only
    pytest.param("harmless_test_openai_gpt-4.dev.jsonl", "scored", [
        {"prompt": BULLY, "answer": REFUSAL, "value_reward": [0.0] * 10, "safety_issues": ["bullying"]},
        {"prompt": BULLY, "answer": 7, "value_reward": [0.0] * 10},
    ], [("turn", "harmless_test_openai_gpt-4.dev.jsonl:1", BULLY, REFUSAL, "openai_gpt-4"),
        ("bad", 2, "'answer' must be a string")], id="scored"),
    # plain: the `valueguard audit` contract: a given id is kept as is, a missing one is the line number;
    # blank lines are skipped but still counted in line numbers; source or model names the writer
    pytest.param("responses.jsonl", "plain", [
        {"id": "a1", "prompt": BULLY, "response": REFUSAL, "source": "my-bot"},
        "",
        {"response": "Fine, thanks.", "model": "gpt-4o-mini"},
        {"prompt": "hi"},
        "not json",
        {"id": 9, "response": "ok", "source": 5},
    ], [("turn", "a1", BULLY, REFUSAL, "my-bot"), ("turn", 3, None, "Fine, thanks.", "gpt-4o-mini"),
        ("bad", 4, "'response' must be a non-empty string"),
        ("bad", 5, "not JSON (Expecting value at column 1)"), ("turn", 9, None, "ok", None)], id="plain"),
]


@pytest.mark.parametrize("name, fmt, lines, expected", CASES)
def test_reader_table(tmp_path, name, fmt, lines, expected):
    path = write_jsonl(tmp_path / name, lines)
    assert as_rows(read_log(path, format=fmt)) == expected
    if isinstance(lines[0], dict):  # the same file, its format detected
        assert detect_format(path) == fmt
        assert as_rows(read_log(path)) == expected


def test_bad_lines_are_reported_by_number_in_order_and_later_lines_are_read(tmp_path):
    good = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
    path = write_jsonl(tmp_path / "chat.jsonl", [good, "{truncated", "[1, 2]", good, '"just a string"', good])
    records = list(read_log(path))
    assert as_rows(records) == [
        ("turn", "chat.jsonl:1:1", "Q", "A", None),
        ("bad", 2, "not JSON (Expecting property name enclosed in double quotes at column 2)"),
        ("bad", 3, "expected a JSON object, got list"),
        ("turn", "chat.jsonl:4:1", "Q", "A", None),
        ("bad", 5, "expected a JSON object, got str"),
        ("turn", "chat.jsonl:6:1", "Q", "A", None),
    ]
    assert all(b.path == str(path) for b in bad(records))


def assistant_turns_in(transcript: str) -> tuple[int, int]:
    """(assistant turns, empty ones) counted straight from the raw text, independently of the reader."""
    total = transcript.count("\n\nAssistant:")
    empty = len(re.findall(r"\n\nAssistant:\s*(?=\n\nHuman:|$)", transcript))
    return total, empty


def test_real_hh_rlhf_first_300_lines_every_assistant_turn(shared_data, tmp_path):
    src = shared_data / "hh-rlhf" / "helpful_test.jsonl"
    with src.open(encoding="utf-8") as f:
        head = [next(f) for _ in range(300)]
    path = tmp_path / "helpful_test.jsonl"
    path.write_text("".join(head), encoding="utf-8")
    total = empty = 0
    for line in head:
        obj = json.loads(line)
        for name in ("chosen", "rejected"):
            t, e = assistant_turns_in(obj[name])
            total, empty = total + t, empty + e
    records = list(read_log(path))
    assert (total, empty) == (1443, 3)  # measured on the mirror file; guards the counting itself
    assert len(turns(records)) == total - empty == 1440
    assert [(b.line, b.reason) for b in bad(records)] == [
        (121, "'chosen': empty assistant turn 2"), (121, "'rejected': empty assistant turn 2"),
        (121, "'rejected': empty assistant turn 3")]
    # line 2: a three-turn conversation; every turn's prompt is the human turn just before it
    line2 = {t.id: t for t in turns(records) if t.id.startswith("helpful_test.jsonl:2:")}
    assert sorted(line2) == [f"helpful_test.jsonl:2:{n}:{i}" for n in ("chosen", "rejected") for i in (1, 2, 3)]
    assert line2["helpful_test.jsonl:2:chosen:1"].response == "Which location are you in?"
    assert line2["helpful_test.jsonl:2:chosen:2"].prompt == "I am in Oregon."
    assert line2["helpful_test.jsonl:2:rejected:3"].prompt == "Great. What are some common species then?"
    assert line2["helpful_test.jsonl:2:rejected:3"].response.startswith("Are you interested in just the common")
    assert line2["helpful_test.jsonl:2:rejected:3"].source == "hh-rlhf/rejected"
    # line 121 keeps its non-empty turns, numbered by their place in the transcript
    assert [t.id for t in turns(records) if t.id.startswith("helpful_test.jsonl:121:")] == [
        "helpful_test.jsonl:121:chosen:1", "helpful_test.jsonl:121:chosen:3", "helpful_test.jsonl:121:rejected:1"]


def test_real_hh_rlhf_whole_file(shared_data):
    path = shared_data / "hh-rlhf" / "helpful_test.jsonl"
    total = empty = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            for name in ("chosen", "rejected"):
                t, e = assistant_turns_in(obj[name])
                total, empty = total + t, empty + e
    records = list(read_log(path))
    assert len(turns(records)) == total - empty and len(bad(records)) == empty
    assert (total, empty) == (11667, 6)
    assert len({t.id for t in turns(records)}) == len(turns(records))  # ids are unique


@pytest.mark.parametrize("name, fmt, count, source", [
    ("trustworthy_data.dev.jsonl", "fulcra", 1354, None),
    ("harmless_test_openai_gpt-4.dev.jsonl", "scored", 1212, "openai_gpt-4"),
    ("harmless_test_openai_gpt-35-turbo.dev.jsonl", "scored", 1212, "openai_gpt-35-turbo"),
    ("harmless_test_mistral_mistral-large-latest.dev.jsonl", "scored", 1212, "mistral_mistral-large-latest"),
])
def test_real_fulcra_files_read_as_the_reference_readers_read_them(shared_data, name, fmt, count, source):
    path = shared_data / "fulcra" / name
    assert detect_format(path) == fmt
    records = list(read_log(path))
    assert len(records) == len(turns(records)) == count
    # The audit readers parse these files themselves (see readers.py); they must agree with the reference
    # readers on every row: prompt, response and source, in the same order.
    reference = list(read_reference(path, ReadReport(name)))
    assert [(t.prompt, t.response, t.source) for t in records] == [(r.prompt, r.response, r.source) for r in reference]
    assert [t.id for t in records[:2]] == [f"{name}:1", f"{name}:2"]
    if source:
        assert {t.source for t in records} == {source}
    else:
        assert "meta-llama/Llama-2-7b-chat-hf" in {t.source for t in records}


def test_real_smollm2_logs_db(smollm2_db):
    path, questions, responses = smollm2_db
    conn = sqlite3.connect(path)
    # The measured fact the reader is built on: llm >= 0.32 keeps the legacy table but writes `turns`.
    assert conn.execute("select count(*) from responses").fetchone() == (0,)
    assert conn.execute("select count(*) from turns").fetchone() == (2,)
    conn.close()
    before = path.read_bytes()
    assert detect_format(path) == "llm-db"
    records = list(read_log(path))
    assert [(t.id, t.prompt, t.response, t.source) for t in records] == [
        (f"logs.db:turns:{r.id}", q, r.text.strip(), "SmolLM2") for r, q in zip(responses, questions)]
    assert all(t.response for t in records)
    assert path.read_bytes() == before  # opened read-only: the user's database is untouched


def test_upgraded_db_reads_legacy_rows_once_then_turns(smollm2_db, tmp_path):
    """A database with history from an old llm: legacy-only rows are read, a row copied into turns is not."""
    path = tmp_path / "logs.db"
    shutil.copy(smollm2_db[0], path)
    first_turn = smollm2_db[2][0]
    with sqlite3.connect(path) as conn:
        conn.execute("insert into responses (id, model, prompt, response, datetime_utc) values (?, ?, ?, ?, ?)",
                     ("01old", "gpt-3.5-turbo", "Old question", "Old answer", "2024-01-01T00:00:00"))
        conn.execute("insert into responses (id, model, prompt, response, datetime_utc) values (?, ?, ?, ?, ?)",
                     (first_turn.id, "SmolLM2", "dup", "the same call, also in turns", "2024-01-02T00:00:00"))
    conn.close()
    records = list(read_log(path))
    assert [t.id for t in records] == ["logs.db:responses:01old"] + [f"logs.db:turns:{r.id}" for r in smollm2_db[2]]
    old = records[0]
    assert (old.prompt, old.response, old.source) == ("Old question", "Old answer", "gpt-3.5-turbo")


def make_legacy_db(path: Path, rows: list[tuple]) -> Path:
    """The `responses` table as llm < 0.32 wrote it (the columns the reader uses, and a few it does not)."""
    conn = sqlite3.connect(path)
    conn.execute("create table responses (id text primary key, model text, prompt text, system text, "
                 "prompt_json text, options_json text, response text, response_json text, "
                 "conversation_id text, duration_ms integer, datetime_utc text)")
    conn.executemany("insert into responses (id, model, prompt, system, response, datetime_utc) "
                     "values (?, ?, ?, ?, ?, ?)", rows)
    conn.commit()
    conn.close()
    return path


def test_legacy_responses_db(tmp_path):
    path = make_legacy_db(tmp_path / "old-logs.sqlite", [
        ("01a", "gpt-4o-mini", BULLY, "Be kind.", REFUSAL, "2024-05-01T10:00:00"),
        ("01b", "claude-3-haiku", None, None, "A response with no prompt logged.", "2024-05-01T10:01:00"),
        ("01c", "gpt-4o-mini", "Say nothing", None, "", "2024-05-01T10:02:00"),
        ("01d", "gpt-4o-mini", "Last", None, "Still read after the bad row.", "2024-05-01T10:03:00"),
    ])
    assert detect_format(path) == "llm-db"
    assert as_rows(read_log(path)) == [
        ("turn", "old-logs.sqlite:responses:01a", BULLY, REFUSAL, "gpt-4o-mini"),
        ("turn", "old-logs.sqlite:responses:01b", None, "A response with no prompt logged.", "claude-3-haiku"),
        ("bad", 3, "responses row 01c: empty response"),
        ("turn", "old-logs.sqlite:responses:01d", "Last", "Still read after the bad row.", "gpt-4o-mini"),
    ]


def test_sqlite_that_is_not_an_llm_db_is_refused_at_the_call(tmp_path):
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table t (x)").connection.commit()
    with pytest.raises(ValueError, match="other.db: not an llm logs database .* neither a 'turns' nor a 'responses'"):
        read_log(other)
    fake = tmp_path / "fake.db"
    fake.write_text('{"response": "x"}\n')
    with pytest.raises(ValueError, match="fake.db: not a readable SQLite database"):
        read_log(fake)


SAMPLES = {
    "openai": {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]},
    "hh-rlhf": {"chosen": "\n\nHuman: Q\n\nAssistant: A", "rejected": "\n\nHuman: Q\n\nAssistant: B"},
    "fulcra": {"dialogue": "Human: Q\nBob: A", "value_types": [], "response": "decoy"},  # fulcra keys win
    "scored": {"prompt": "Q", "answer": "A", "value_reward": [0.0] * 10},
    "plain": {"prompt": "Q", "response": "A"},
}


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_detect_format_by_first_object_keys(tmp_path, fmt):
    # a blank line and a broken line at the top do not hide the format
    path = write_jsonl(tmp_path / "log.jsonl", ["", "{oops", SAMPLES[fmt]])
    assert detect_format(path) == fmt
    records = list(read_log(path))
    assert as_rows(records)[0] == ("bad", 2, "not JSON (Expecting property name enclosed in double quotes at column 2)")
    assert len(turns(records)) == (2 if fmt == "hh-rlhf" else 1)


def test_detect_sqlite_by_magic_bytes_whatever_the_name(tmp_path):
    path = make_legacy_db(tmp_path / "export.log", [("01a", "m", "Q", None, "A", "2024-01-01")])
    assert detect_format(path) == "llm-db"
    assert as_rows(read_log(path)) == [("turn", "export.log:responses:01a", "Q", "A", "m")]


@pytest.mark.parametrize("lines, why", [
    ([{"prompt": "Q", "safety_issues": []}], "first JSON object has keys ['prompt', 'safety_issues']"),
    (["not json", "still not json"], "no JSON object line"),
    ([], "empty file"),
])
def test_unknown_format_names_the_file_the_formats_and_the_flag(tmp_path, lines, why):
    path = write_jsonl(tmp_path / "questions.jsonl", lines) if lines else tmp_path / "questions.jsonl"
    if not lines:
        path.write_text("")
    with pytest.raises(ValueError) as e:
        read_log(path)
    message = str(e.value)
    assert str(path) in message and why in message and "--format" in message
    assert all(name in message for name in READERS)


def test_unknown_format_name_and_missing_file(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [SAMPLES["plain"]])
    with pytest.raises(ValueError, match="unknown log format 'csv'; known: auto, openai, sharegpt"):
        read_log(path, format="csv")
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_log(tmp_path / "nope.jsonl")


def test_forcing_a_format_reads_the_file_that_way(tmp_path):
    # A plain line also carries 'messages' (which detection would take for openai): --format plain wins.
    path = write_jsonl(tmp_path / "a.jsonl", [{"messages": [], "response": "A", "id": "x"}])
    assert detect_format(path) == "openai"
    assert as_rows(read_log(path, format="plain")) == [("turn", "x", None, "A", None)]


BIG_LINES = 200_000


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """A 200k-line file of every JSONL format, each well over 20 MB."""
    directory = tmp_path_factory.mktemp("big")
    padding = "x" * 100
    lines = {
        "openai": {"messages": [{"role": "user", "content": "Q " + padding}, {"role": "assistant", "content": "A"}]},
        "sharegpt": {"conversations": [{"from": "human", "value": "Q " + padding}, {"from": "gpt", "value": "A"}]},
        "hh-rlhf": {"chosen": "\n\nHuman: Q\n\nAssistant: " + padding, "rejected": "\n\nHuman: Q\n\nAssistant: B"},
        "fulcra": {"dialogue": "Human: Q\nBob: " + padding, "value_types": ["security: +1"]},
        "scored": {"prompt": "Q", "answer": padding, "value_reward": [0.1] * 10},
        "plain": {"prompt": "Q", "response": padding},
    }
    files = {}
    for fmt, obj in lines.items():
        path = directory / f"{fmt}.jsonl"
        line = json.dumps(obj) + "\n"
        with path.open("w", encoding="utf-8") as f:
            for _ in range(BIG_LINES // 1000):
                f.write(line * 1000)
        files[fmt] = path
    return files


@pytest.mark.parametrize("fmt", list(SAMPLES))
def test_first_record_of_a_big_file_comes_without_reading_the_file(big_files, fmt):
    path = big_files[fmt]
    assert path.stat().st_size > 20_000_000
    records = read_log(path)
    assert inspect.isgenerator(records)
    tracemalloc.start()
    start = time.perf_counter()
    try:
        first = next(records)
        elapsed = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        records.close()
    assert isinstance(first, Turn)
    assert first.id == {"plain": 1, "fulcra": "fulcra.jsonl:1", "scored": "scored.jsonl:1",
                        "hh-rlhf": "hh-rlhf.jsonl:1:chosen:1"}.get(fmt, f"{fmt}.jsonl:1:1")
    assert peak < 1_000_000, f"reading one record allocated {peak} bytes"
    assert elapsed < 0.5


def test_a_whole_big_file_is_read_in_flat_memory(big_files):
    """Every one of 200k lines through the reader, a run of bad lines included: memory does not grow with it."""
    path = big_files["fulcra"]
    tracemalloc.start()
    try:
        n = 0
        for record in read_log(path, format="hh-rlhf"):  # forced wrong: every line is 2 BadLines in a row
            n += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 2 * BIG_LINES
    assert peak < 2_000_000, f"reading the whole file allocated {peak} bytes at the peak"


def test_an_llm_db_streams_through_its_cursor(tmp_path):
    rows = [(f"id{i:06d}", "m", "Q", None, "A" * 1000, "2024-01-01") for i in range(30_000)]
    path = make_legacy_db(tmp_path / "big.db", rows)
    assert path.stat().st_size > 30_000_000
    records = read_log(path)
    tracemalloc.start()
    try:
        first = next(records)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first.id == "big.db:responses:id000000"
    assert peak < 1_000_000
    assert sum(1 for _ in records) == len(rows) - 1
