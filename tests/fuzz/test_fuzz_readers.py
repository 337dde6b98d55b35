"""Fuzz every log reader: any bytes in a file give Turns and BadLines, never an exception; every non-blank line is
accounted for (a turn or a bad line with its number); and a good line among junk keeps its turn."""

import json
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.profiles import PROFILE
from valueguard.audit.readers import READERS, detect_format, read_log
from valueguard.audit.records import BadLine, Turn
from valueguard.reference import read_reference
from valueguard.reference.record import ReadReport

WORK = Path(tempfile.mkdtemp(prefix="vg-fuzz-"))
# A good line of each JSONL format, and the id of its (first) turn.
GOOD = {
    "openai": ('{"id": "G", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}',
               "G:1"),
    "sharegpt": ('{"id": "G", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}',
                 "G:1"),
    "hh-rlhf": ('{"chosen": "\\n\\nHuman: q\\n\\nAssistant: a", "rejected": "\\n\\nHuman: q\\n\\nAssistant: b"}',
                None),
    "fulcra": ('{"dialogue": "Human: q\\nBob: a", "value_types": []}', None),
    "scored": ('{"prompt": "q", "answer": "a", "value_reward": [0,0,0,0,0,0,0,0,0,0]}', None),
    "plain": ('{"id": "G", "response": "a"}', "G"),
}
KEYS = ["messages", "conversations", "chosen", "rejected", "dialogue", "value_types", "answer", "value_reward",
        "response", "prompt", "id", "role", "content", "from", "value", "model", "source", "type", "text"]
JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
              st.sampled_from(["assistant", "user", "gpt", "human", "\n\nHuman: x\n\nAssistant: y", "Human: a\nBob: b"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=5)),
    max_leaves=25)
JUNK = st.one_of(
    st.binary(max_size=60),                                                     # any bytes
    JSON.map(lambda v: json.dumps(v).encode()),                                 # any JSON value
    JSON.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    st.integers(1, 3000).map(lambda n: b"[" * n),                               # deep
    st.sampled_from([b'{"response": "\\ud800"}', b'{"response": "\xff"}', b"\xef\xbb\xbf{}", b"\r", b"{}"]),
)


def lines_of(path: Path, fmt: str, cap: int):
    return list(read_log(path, fmt, max_line_bytes=cap))


@pytest.mark.parametrize("fmt", sorted(GOOD))  # each reader its own target, of PROFILE's cases
@given(lines=st.lists(st.tuples(st.booleans(), JUNK), max_size=12), cap=st.sampled_from([60, 1_000_000]),
       bom=st.booleans())
@PROFILE
def test_jsonl_readers_on_any_lines(fmt, lines, cap, bom):
    good, good_id = GOOD[fmt]
    raw = [good.encode() if is_good else junk.replace(b"\n", b" ") for is_good, junk in lines]
    path = WORK / f"{fmt}.jsonl"
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(raw) + b"\n")
    try:
        detect_format(path)
    except ValueError:
        pass  # an undetectable file is refused with its name, never another error
    records = lines_of(path, fmt, cap)
    assert all(isinstance(r, (Turn, BadLine)) for r in records)
    # Every non-blank line is accounted for by its number, in order.
    numbered = {r.line for r in records if isinstance(r, BadLine)}
    good_lines = {i + 1 for i, (is_good, _) in enumerate(lines) if is_good and len(good) <= cap}
    nonblank = {i + 1 for i, b in enumerate(raw) if b.strip() and not (i == 0 and b.strip() == b"\xef\xbb\xbf")}
    turns = [r for r in records if isinstance(r, Turn)]
    assert len(turns) >= len(good_lines) * (2 if fmt == "hh-rlhf" else 1)
    if good_id is not None and fmt == "plain":
        assert sum(t.id == good_id for t in turns) >= len(good_lines)
    assert numbered <= nonblank
    for r in records:
        json.dumps(vars(r), ensure_ascii=False).encode("utf-8")  # everything read can be written out


SQL_VALUE = st.one_of(st.text(max_size=20), st.binary(max_size=20), st.none(), st.integers(-2**63, 2**63 - 1))


@given(st.lists(st.tuples(SQL_VALUE, SQL_VALUE), max_size=8), st.sampled_from([10, 1_000_000]))
@PROFILE
def test_llm_db_reader_on_any_values(rows, cap):
    path = WORK / "logs.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("create table responses (id text, model text, prompt text, response text)")
    for i, (prompt, response) in enumerate(rows):
        # bytes go in as TEXT, so a value that is not UTF-8 is stored as the text type, as a broken writer would
        p = f"cast(x'{prompt.hex()}' as text)" if isinstance(prompt, bytes) else "?"
        r = f"cast(x'{response.hex()}' as text)" if isinstance(response, bytes) else "?"
        args = [a for a in (prompt, response) if not isinstance(a, bytes)]
        conn.execute(f"insert into responses values ('r{i}', 'm', {p}, {r})", args)
    conn.commit()
    conn.close()
    records = list(READERS["llm-db"](path, max_line_bytes=cap))
    assert len(records) == len(rows)  # one record a row: a turn or a bad row, none lost
    for r in records:
        json.dumps(vars(r), ensure_ascii=False).encode("utf-8")


@given(st.lists(st.tuples(st.booleans(), JUNK), max_size=10), st.booleans())
@PROFILE
def test_reference_reader_on_any_lines(lines, bom):
    good = json.dumps({"id": "G", "prompt": "q", "response": "a", "values": [0.0] * 10, "source": "s",
                       "label_kind": "model"}).encode()
    raw = [good if is_good else junk.replace(b"\n", b" ") for is_good, junk in lines]
    path = WORK / "ref.jsonl"
    path.write_bytes(b"{" + b'"response": "a", "values": [0,0,0,0,0,0,0,0,0,0], "id": "G", "source": "s", '
                     b'"label_kind": "model"}\n' if not bom else b"\xef\xbb\xbf" + good + b"\n")
    with open(path, "ab") as f:
        f.write(b"\n".join(raw) + b"\n")
    report = ReadReport(str(path))
    got = [r.id for r in read_reference(path, report)]
    assert got.count("G") >= 1 + sum(is_good for is_good, _ in lines)
