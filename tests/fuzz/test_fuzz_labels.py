"""Fuzz the two readers of teaching: a labels file and an audit's output (for `valueguard label`). Any bytes give
records and numbered bad lines, never an exception; every non-blank line is accounted for; a good line among junk
is kept."""

import json
import tempfile
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.profiles import PROFILE
from tests.fuzz.test_fuzz_readers import JSON
from valueguard.audit.records import BadLine
from valueguard.reference.labels import read_labels
from valueguard.reference.record import ReadReport
from valueguard.audit.teach import AuditedTurn, audited_turns
from valueguard.values import VALUE_NAMES

WORK = Path(tempfile.mkdtemp(prefix="vg-fuzz-labels-"))
LABEL_KEYS = ["prompt", "response", "against", "upholds", "violation", "id", "note", "source", "values", "action"]
LABEL_JSON = st.dictionaries(st.sampled_from(LABEL_KEYS),
                             JSON | st.lists(st.sampled_from([*VALUE_NAMES, "humility", "nope", ""]), max_size=3),
                             max_size=6)
JUNK = st.one_of(st.binary(max_size=60), JSON.map(lambda v: json.dumps(v).encode()),
                 LABEL_JSON.map(lambda v: json.dumps(v).encode()), st.integers(1, 3000).map(lambda n: b"[" * n))
GOOD_LABEL = b'{"prompt": "q", "response": "G", "against": ["power"]}'
GOOD_TURN = json.dumps({"id": "G", "response": "a", "action": "block", "values": {v: 0.0 for v in VALUE_NAMES},
                        "against": {v: 0.6 for v in VALUE_NAMES}}).encode()


def write(lines: list[tuple[bool, bytes]], good: bytes) -> tuple[Path, int, int]:
    raw = [good if is_good else junk.replace(b"\n", b" ").replace(b"\r", b" ") for is_good, junk in lines]
    path = WORK / "in.jsonl"
    path.write_bytes(b"\n".join(raw) + b"\n")
    return path, sum(1 for r in raw if r.strip()), sum(is_good for is_good, _ in lines)


@given(st.lists(st.tuples(st.booleans(), JUNK), max_size=10))
@PROFILE
def test_labels_reader_on_any_lines(lines):
    path, non_blank, good = write(lines, GOOD_LABEL)
    report = ReadReport(str(path))
    records = list(read_labels(path, report))
    assert len(records) + report.bad_lines == non_blank
    assert sum(r.response == "G" for r in records) >= good
    for r in records:
        json.dumps(r.model_dump(), ensure_ascii=False).encode("utf-8")


@given(st.lists(st.tuples(st.booleans(), JUNK), max_size=10))
@PROFILE
def test_audit_output_reader_on_any_lines(lines):
    path, non_blank, good = write(lines, GOOD_TURN)
    got = list(audited_turns(path, "all"))
    assert all(isinstance(t, (AuditedTurn, BadLine)) for t in got) and len(got) == non_blank
    assert sum(isinstance(t, AuditedTurn) and t.id == "G" for t in got) >= good
    for t in got:
        if isinstance(t, AuditedTurn):
            t.claimed_against()  # whatever numbers came in, the claim is computed
