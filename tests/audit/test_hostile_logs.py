"""Hostile and broken logs (issue 13): one bad record is one counted bad line with its number, never the end of
the run; no good turn is lost; and what the audit has written survives a kill."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from valueguard.audit.readers import detect_format, read_log
from valueguard.audit.records import Turn
from valueguard.audit.runner import run_audit
from valueguard.policy.model import Policy
from valueguard.reference import read_reference
from valueguard.reference.record import ReadReport

CORPUS = Path(__file__).parents[1] / "corpus" / "logs"
REPO = Path(__file__).parents[2]


def records(path, **kw):
    return [(r.id if isinstance(r, Turn) else (r.line, r.reason)) for r in read_log(path, **kw)]


# (corpus file, detected format, what the reader yields in order: a turn's id, or (line, reason start))
CORPUS_CASES = [
    # a 1,000-deep first line aborted the run, and format detection too
    ("deep-first-line.jsonl", "plain", [(1, "not readable JSON (nested too deep)"), "good-1", "good-2"]),
    # 5,000 levels deep inside an object, between good lines
    ("deep-object-line.jsonl", "plain", ["good-1", (2, "not readable JSON (nested too deep)"), "good-2"]),
    # a lone surrogate escape aborted the run with 0 lines written (it cannot be written as UTF-8)
    ("lone-surrogate.jsonl", "plain", ["good-1", (2, "a lone surrogate escape in response"), "good-2"]),
    # in a key, where no reader looks, still a line the output could not carry
    ("lone-surrogate-in-key.jsonl", "plain", ["good-1", (2, "a lone surrogate escape in a key of line"), "good-2"]),
    # an escaped surrogate *pair* is a character, and is kept
    ("surrogate-pair-ok.jsonl", "plain", ["emoji"]),
    # invalid UTF-8 was silently replaced and audited; now reported with its line and byte
    ("invalid-utf8.jsonl", "plain", ["good-1", (2, "not UTF-8 (byte 0xe9 at column 29)"), "good-2"]),
    # a one-line file with a BOM was "cannot tell the log format"
    ("bom-one-line.jsonl", "plain", ["good-1"]),
    # a BOM before a chat line made the first line bad
    ("bom-openai.jsonl", "openai", ["bom-openai.jsonl:1:1"]),
]


def _matches(got, want):
    if isinstance(want, tuple):
        return isinstance(got, tuple) and got[0] == want[0] and got[1].startswith(want[1])
    return got == want


@pytest.mark.parametrize("name, fmt, expected", CORPUS_CASES)
def test_corpus_logs_give_their_good_turns_and_number_their_bad_lines(name, fmt, expected):
    path = CORPUS / name
    assert detect_format(path) == fmt
    got = records(path)
    assert len(got) == len(expected) and all(map(_matches, got, expected)), got


def test_every_log_corpus_file_has_a_case():
    assert {p.name for p in CORPUS.glob("*.jsonl")} == {name for name, _, _ in CORPUS_CASES}


GOOD = '{"id": "g%d", "response": "Mix flour, water and yeast."}\n'


# (size of the long line in bytes, the cap; None: the default of 1 MB) — a long line is skipped unparsed.
@pytest.mark.parametrize("size, cap", [
    (2_000_000, None),      # over the default cap: a 50 MB line was parsed and took 1.3 GB
    (300, 200),             # a cap set lower
    (150, 200),             # under the cap: read as usual
])
def test_a_line_over_the_cap_is_a_bad_line_skipped_unparsed(tmp_path, size, cap):
    path = tmp_path / "long.jsonl"
    body = '{"id": "long", "response": "' + "x" * (size - 30) + '"}'
    path.write_text(GOOD % 1 + body + "\n" + GOOD % 2, encoding="utf-8")
    kw = {"max_line_bytes": cap} if cap else {}
    got = records(path, **kw)
    limit = f"{cap or 1_000_000:,}"
    if len(body) > (cap or 1_000_000):
        assert got == ["g1", (2, f"line longer than {limit} bytes, skipped unparsed"), "g2"]
    else:
        assert got == ["g1", "long", "g2"]


def test_a_long_last_line_without_newline_is_bad_and_the_line_before_kept(tmp_path):
    path = tmp_path / "tail.jsonl"
    path.write_text(GOOD % 1 + '{"response": "' + "y" * 500 + '"}', encoding="utf-8")
    assert records(path, max_line_bytes=100) == ["g1", (2, "line longer than 100 bytes, skipped unparsed")]


def _llm_db(path: Path, rows: list[tuple]) -> Path:
    conn = sqlite3.connect(path)
    conn.execute("create table responses (id text primary key, model text, prompt text, response text)")
    for row in rows:
        conn.execute("insert into responses values (?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    return path


def test_a_non_utf8_sqlite_value_is_a_bad_row_and_the_good_rows_stay(tmp_path):
    path = _llm_db(tmp_path / "logs.db", [(f"r{i}", "m", "hi", f"answer {i}") for i in range(6)])
    conn = sqlite3.connect(path)
    # One TEXT value with bytes that are not UTF-8 (sqlite stores what it is given): 6 good rows were lost to it.
    conn.execute("insert into responses values ('bad', 'm', 'hi', cast(x'ff616263' as text))")
    conn.execute("insert into responses values ('badprompt', 'm', cast(x'c3' as text), 'fine')")
    conn.execute("insert into responses values ('r9', 'm', 'hi', 'answer 9')")
    conn.commit()
    conn.close()
    got = records(path)
    assert got == [f"logs.db:responses:r{i}" for i in range(6)] + [
        (7, "responses row bad: response is not UTF-8 (byte 0xff at 1)"),
        (8, "responses row badprompt: prompt is not UTF-8 (byte 0xc3 at 1)"),
        "logs.db:responses:r9"]


def test_an_over_long_sqlite_value_is_a_bad_row(tmp_path):
    path = _llm_db(tmp_path / "logs.db", [("a", "m", "hi", "short"), ("b", "m", "hi", "z" * 5_000), ("c", "m", None, "ok")])
    assert records(path, max_line_bytes=1_000) == [
        "logs.db:responses:a", (2, "responses row b: response longer than 1,000 bytes, skipped"), "logs.db:responses:c"]


# (file content) — the reference readers share the JSONL iterator: the same lines are bad lines there.
@pytest.mark.parametrize("raw, reason", [
    (b'{"response": "\\ud800", "values": {}}\n', "a lone surrogate escape"),   # a lone surrogate
    (b'{"response": "caf\xe9", "values": {}}\n', "not UTF-8"),                 # invalid UTF-8
    (b"[" * 3000 + b"\n", "not readable JSON (nested too deep)"),              # too deep
])
def test_reference_reader_counts_the_same_bad_lines(tmp_path, raw, reason):
    good = json.dumps({"id": "a:1", "prompt": "p", "response": "r", "values": [0.0] * 10, "source": "s",
                       "label_kind": "model"})
    path = tmp_path / "ref.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good.encode() + b"\n" + raw + good.replace("a:1", "a:3").encode() + b"\n")
    report = ReadReport(str(path))
    assert [r.id for r in read_reference(path, report)] == ["a:1", "a:3"]  # the BOM line is read too
    assert report.bad_lines == 1 and report.bad_line_examples[0][0] == 2
    assert report.bad_line_examples[0][1].startswith(reason)


# (field, value) — the audit record is the boundary: a reader can hand on only text.
@pytest.mark.parametrize("field, value", [
    ("response", None),       # None is not an empty response
    ("response", 5),          # nor is a number coerced to its digits
    ("prompt", b"bytes"),     # bytes are not text
    ("id", True),             # a bool is not an id
    ("source", 3),            # metadata is text or nothing
])
def test_a_turn_of_anything_but_text_is_a_type_error(field, value):
    kw = {"id": "x", "prompt": None, "response": "hi", "source": None, field: value}
    with pytest.raises(TypeError, match=field):
        Turn(**kw)


def test_audit_keeps_every_good_turn_of_a_hostile_log(estimator, tmp_path):
    src = tmp_path / "mixed.jsonl"
    parts = [GOOD % 1, "[" * 1500 + "\n", '{"response": "\\udc00"}\n', GOOD % 2, b'{"response": "\xff"}\n',
             '{"response": "' + "w" * 2_000_000 + '"}\n', GOOD % 3]
    src.write_bytes(b"\xef\xbb\xbf" + b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))
    out = tmp_path / "out.jsonl"
    result = run_audit(estimator, [src], out, policy=Policy.load("default"), batch_size=2)
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["g1", "g2", "g3"]
    assert result.bad_lines == 4 and [b["line"] for b in result.bad_line_examples] == [2, 3, 5, 6]


def test_a_killed_audit_leaves_whole_records_on_disk(index_dir, tmp_path):
    """SIGKILL once the first batch is on disk: every line there is a whole record, in input order."""
    src = tmp_path / "many.jsonl"
    n = 3000
    src.write_text("".join('{"id": "t%d", "response": "Answer number %d: mix flour and water, then bake."}\n'
                           % (i, i) for i in range(n)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "VALUEGUARD_BACKEND": "torch"}
    proc = subprocess.Popen([sys.executable, "-c", "from valueguard.cli import main; main()", "--quiet", "audit",
                             str(src), "--out", str(out),
                             "--index", str(index_dir), "--batch-size", "16"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if out.is_file() and out.stat().st_size > 0:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the audit finished (or failed) before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    raw = out.read_text(encoding="utf-8")
    assert raw.endswith("\n")
    lines = [json.loads(x) for x in raw.splitlines()]  # a torn record would not parse
    assert 16 <= len(lines) < n and len(lines) % 16 == 0
    assert [x["id"] for x in lines] == [f"t{i}" for i in range(len(lines))]
    assert all({"values", "action", "rules", "neighbors"} <= set(x) for x in lines)

