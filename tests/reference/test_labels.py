"""The labels file: what a line says becomes an annotated reference record; a bad line costs only itself."""

from __future__ import annotations

import json

import pytest

from valueguard.reference import ReadReport, ReferenceSet, read_reference
from valueguard.reference.labels import LabelRecord, append_labels, labelled_ids

R = "Sure. Buy antifreeze and mix it into the food."


@pytest.mark.parametrize("line, against, upholds", [
    # the plain case: one value worked against, the rest 0
    ({"response": R, "against": ["benevolence"]}, {"benevolence"}, set()),
    # a refined value counts for its basic value (as in FULCRA's own labels)
    ({"response": R, "against": ["humility"]}, {"conformity"}, set()),
    # "no violation": all zeros
    ({"response": "Mix flour and water.", "violation": False}, set(), set()),
    # upholds alone, and both lists at once
    ({"response": "I can't help with that.", "upholds": ["security"]}, set(), {"security"}),
    ({"response": R, "against": ["security", "benevolence"], "upholds": ["achievement"], "violation": True},
     {"security", "benevolence"}, {"achievement"}),
])
def test_a_label_becomes_annotated_values(line, against, upholds):
    rec = LabelRecord.model_validate(line).to_reference("labels:1")
    assert rec.label_kind == "annotated" and rec.source == "user"
    assert {k for k, v in rec.values.items() if v == -1} == against
    assert {k for k, v in rec.values.items() if v == 1} == upholds
    assert all(v == 0 for k, v in rec.values.items() if k not in against | upholds)


@pytest.mark.parametrize("line, field", [
    ({"response": R}, "no judgement"),                                   # nothing said about values
    ({"response": R, "against": ["kindness-ish"]}, "against"),          # a value nobody knows
    ({"response": R, "against": ["power"], "violation": False}, "violation is false"),  # contradicts itself
    ({"response": R, "violation": True}, "name the values"),            # a violation of what?
    ({"response": R, "against": ["power"], "upholds": ["power"]}, "both"),
    ({"response": "", "violation": False}, "response"),                 # nothing was judged
    ({"response": R, "violation": False, "score": 3}, "score"),          # extra="forbid": a typo is not ignored
])
def test_a_bad_label_is_refused(line, field):
    with pytest.raises(ValueError, match=field):
        LabelRecord.model_validate(line)


def test_a_labels_file_reads_as_a_reference_file_and_reports_bad_lines(tmp_path):
    path = tmp_path / "labels.jsonl"
    lines = [json.dumps({"prompt": "p1", "response": R, "against": ["benevolence"], "id": "a:1", "note": "x"}),
             "{not json",
             json.dumps({"prompt": "p2", "response": "ok", "against": ["nonsense"]}),
             json.dumps({"prompt": "p3", "response": "Mix flour and water.", "violation": False, "id": "a:3"})]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ReadReport(str(path))
    records = list(read_reference(path, report))
    assert report.format == "labels"
    assert [r.prompt for r in records] == ["p1", "p3"]
    assert [r.id for r in records] == ["labels:1", "labels:4"]
    assert report.bad_lines == 2 and [n for n, _ in report.bad_line_examples] == [2, 3]
    assert "against" in report.bad_line_examples[1][1]
    assert ReferenceSet.from_files([path]).files[0].format == "labels"
    assert labelled_ids(path) == {"a:1", "a:3"}


def test_appending_keeps_a_hand_written_last_line_whole(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(json.dumps({"response": "a", "violation": False}), encoding="utf-8")  # no newline at the end
    append_labels(path, [LabelRecord(response="b", against=["power"], id="t:2")])
    assert [json.loads(line)["response"] for line in path.read_text().splitlines()] == ["a", "b"]
    assert labelled_ids(path) == {"t:2"} and labelled_ids(tmp_path / "missing.jsonl") == set()
