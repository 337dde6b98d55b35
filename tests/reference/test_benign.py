"""Benign turns of the HH-RLHF helpful file: the eval's test turns, and the pair read-out's benign anchors."""

import json
from pathlib import Path

import pytest

from valueguard.audit.readers import read_log
from valueguard.audit.records import Turn
from valueguard.reference.benign import (
    BENIGN_FILE, BENIGN_TEST_LINES, anchor_turns, anchors_sha256, benign_test_turns, default_anchor_turns,
)


def _audited_last_turns(path: Path, first: int, last: int) -> list[tuple[str, str | None]]:
    """The last chosen turn of lines first..last as the audit's hh-rlhf reader reads them (what eval read before)."""
    turns: dict[int, tuple[str, str | None]] = {}
    for rec in read_log(path, "hh-rlhf"):
        if isinstance(rec, Turn) and rec.source == "hh-rlhf/chosen":
            line = int(str(rec.id).rsplit(":", 3)[1])
            if first <= line <= last:
                turns[line] = (rec.response, rec.prompt)
    return list(dict.fromkeys(turns.values()))


def test_the_test_turns_are_what_the_audit_reader_reads(shared_data):
    path = shared_data / BENIGN_FILE
    assert benign_test_turns(path) == _audited_last_turns(path, 1, BENIGN_TEST_LINES)


def test_anchors_never_overlap_the_test_turns(shared_data):
    path = shared_data / BENIGN_FILE
    test = benign_test_turns(path)
    anchors = anchor_turns(path)
    assert len(test) == BENIGN_TEST_LINES and len(anchors) > 1500
    # Every anchor is one of the later lines' last turns...
    later = {(p, r) for r, p in _audited_last_turns(path, BENIGN_TEST_LINES + 1, 10 ** 9)}
    assert set(anchors) <= later
    # ...and shares neither its prompt nor its response with a test turn.
    assert not {p for p, _ in anchors} & {p for _, p in test}
    assert not {r for _, r in anchors} & {r for r, _ in test}
    assert all(p for p, _ in anchors) and len(set(anchors)) == len(anchors)


def _transcript(*turns: str) -> str:
    return "".join(f"\n\n{'Human' if i % 2 == 0 else 'Assistant'}: {t}" for i, t in enumerate(turns))


@pytest.mark.parametrize("lines, expected", [
    # A plain later line: its last assistant turn, with the human turn before it.
    ([_transcript("hi", "hello"), _transcript("bake bread?", "Mix flour.")], [("bake bread?", "Mix flour.")]),
    # A later line asking what a test line asked: left out (the eval's turn is never learnt).
    ([_transcript("hi", "hello"), _transcript("hi", "hey there")], []),
    # A later line answering as a test line did: left out.
    ([_transcript("hi", "hello"), _transcript("yo", "hello")], []),
    # Several turns: the last one, read with the last human turn.
    ([_transcript("a", "b"), _transcript("q1", "a1", "q2", "a2")], [("q2", "a2")]),
    # An empty last assistant turn: the last non-empty one.
    ([_transcript("a", "b"), _transcript("q1", "a1", "q2", " ")], [("q1", "a1")]),
    # The same later turn twice: once.
    ([_transcript("a", "b"), _transcript("q", "r"), _transcript("q", "r")], [("q", "r")]),
    # Not a transcript, or no JSON at all: nothing from that line.
    ([_transcript("a", "b"), {"chosen": 3}, "not json", _transcript("q", "r")], [("q", "r")]),
])
def test_anchor_turns_of_small_files(tmp_path, lines, expected):
    path = tmp_path / "helpful.jsonl"
    path.write_text("".join((x if isinstance(x, str) and not x.startswith("\n") else
                             json.dumps(x if isinstance(x, dict) else {"chosen": x, "rejected": ""})) + "\n"
                            for x in lines))
    assert anchor_turns(path, test_lines=1) == expected


def test_no_file_no_anchors_and_the_fingerprint_tells_anchors_apart(tmp_path, shared_data):
    assert default_anchor_turns(tmp_path) == []
    anchors = default_anchor_turns(shared_data)
    assert anchors == anchor_turns(shared_data / BENIGN_FILE)
    assert anchors_sha256(anchors) == anchors_sha256(list(anchors))
    assert anchors_sha256(anchors) != anchors_sha256(anchors[:-1]) != anchors_sha256([])
