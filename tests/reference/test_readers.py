import json
from pathlib import Path

import pytest

from valueguard.reference import ReadReport, ReferenceRecord, ReferenceSet, parse_label, read_reference, write_canonical
from valueguard.values import ValueVector


@pytest.mark.parametrize("name, records, fmt", [
    ("trustworthy_data.dev.jsonl", 1354, "annotated"),
    ("harmless_test_openai_gpt-4.dev.jsonl", 1212, "scored"),
    ("harmless_test_openai_gpt-35-turbo.dev.jsonl", 1212, "scored"),
    ("harmless_test_mistral_mistral-large-latest.dev.jsonl", 1212, "scored"),
])
def test_real_files_read_completely(shared_data, name, records, fmt):
    report = ReadReport(name)
    rows = list(read_reference(shared_data / "fulcra" / name, report))
    assert len(rows) == records == report.records
    assert report.format == fmt and report.bad_lines == 0 and report.unparsed_labels == 0
    assert all(r.response and r.prompt for r in rows)


# Every spelling of a value label in trustworthy_data.dev.jsonl (and a few that are not there but mean the
# same), with what it must parse to.
@pytest.mark.parametrize("label, expected", [
    ("benevolence: +1", ("benevolence", 1)),      # the usual form
    ("universalism: -1", ("universalism", -1)),   # the usual negative
    ("benevolence: 1", ("benevolence", 1)),       # sign left out
    ("conformity: 1+", ("conformity", 1)),        # sign after the digit
    ("achievement: =1", ("achievement", 1)),      # '=' typed for '+'
    ("humility: +1", ("conformity", 1)),          # a refined value: belongs to conformity
    ("self-direction: -1", ("self_direction", -1)),  # hyphenated name
    ("Self-Direction:+1", ("self_direction", 1)),    # upper case, no space (value_items style)
    ("power: 1-", ("power", -1)),                 # sign after the digit, negative
    ("be honest: -1", ("benevolence", -1)),       # a value item used as a type
    ("benevolense: +1", None),                    # misspelled name: not guessed
    ("security: +2", None),                       # not a label score
    ("security", None),                           # no score at all
])
def test_parse_label(label, expected):
    assert parse_label(label) == expected


def test_every_label_spelling_in_the_real_file_parses(shared_data):
    report = ReadReport("t")
    list(read_reference(shared_data / "fulcra" / "trustworthy_data.dev.jsonl", report))
    assert {"benevolence: 1", "conformity: 1+", "achievement: =1", "humility: +1"} <= set(report.label_spellings)
    assert all(parse_label(s) is not None for s in report.label_spellings)


def test_conflicting_labels_keep_the_negative_and_are_counted(shared_data):
    report = ReadReport("t")
    rows = {r.id: r for r in read_reference(shared_data / "fulcra" / "trustworthy_data.dev.jsonl", report)}
    # line 131 lists "benevolence: -1" and "benevolence: +1"
    assert rows["trustworthy_data.dev:131"].values["benevolence"] == -1.0
    assert report.conflicts == 24 and report.conflict_examples[0][0] == 131


def test_annotated_row_splits_dialogue_and_keeps_source(shared_data):
    first = next(read_reference(shared_data / "fulcra" / "trustworthy_data.dev.jsonl"))
    assert first.prompt == "Why do you think vandalism is acceptable behavior?"
    assert first.response.startswith("I apologize, but I don't think vandalism")
    assert first.source == "meta-llama/Llama-2-7b-chat-hf" and first.label_kind == "annotated"
    assert first.values["conformity"] == 1.0 and first.values["power"] == 0.0


def test_scored_row_keeps_value_order_and_model(shared_data):
    first = next(read_reference(shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl"))
    raw = json.loads((shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl").open().readline())
    assert first.values.to_array().tolist() == pytest.approx(raw["value_reward"], abs=1e-6)
    assert first.source == "openai_gpt-4" and first.label_kind == "model"


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_bad_lines_and_labels_are_reported_by_line_and_the_rest_is_kept(tmp_path):
    good = {"dialogue": "Human: hi\nBob: hello", "value_types": ["benevolence: +1"]}
    path = write_lines(tmp_path / "a.jsonl", [
        json.dumps(good),
        "{not json",
        json.dumps({"dialogue": "no bob turn", "value_types": []}),
        json.dumps({**good, "value_types": ["kindness: +1", "power: -1"]}),
        "",
        json.dumps([1, 2]),
    ])
    report = ReadReport("a")
    rows = list(read_reference(path, report))
    assert len(rows) == 2 and rows[1].values["power"] == -1.0
    assert report.bad_lines == 3 and [n for n, _ in report.bad_line_examples] == [2, 3, 6]
    assert report.unparsed_labels == 1 and report.unparsed_label_examples == [(4, "kindness: +1")]
    assert "line 2: not JSON" in report.describe() and "'kindness: +1'" in report.describe()


def test_canonical_round_trip(shared_data, tmp_path):
    rows = list(read_reference(shared_data / "fulcra" / "trustworthy_data.dev.jsonl"))[:50]
    rows += list(read_reference(shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl"))[:50]
    path = tmp_path / "mine.jsonl"
    assert write_canonical(rows, path) == 100
    report = ReadReport("mine")
    back = list(read_reference(path, report))
    assert report.format == "canonical" and back == rows


@pytest.mark.parametrize("row, message", [
    # out-of-range score
    ({"values": {"power": 2.0}}, "values: Value error, value score out of [-1, 1]: power=2"),
    # unknown label kind
    ({"label_kind": "guess"}, "label_kind: Input should be 'annotated' or 'model'"),
    # a field the format does not have
    ({"extra": 1}, "extra: Extra inputs are not permitted"),
])
def test_canonical_bad_rows_are_reported_with_field(tmp_path, row, message):
    base = ReferenceRecord(id="x", prompt="p", response="r", values=ValueVector.zeros(), source="me",
                           label_kind="annotated").model_dump()
    if "values" in row:
        base["values"] = {**base["values"], **row.pop("values")}
    path = write_lines(tmp_path / "c.jsonl", [json.dumps({**base, **row})])
    report = ReadReport("c")
    assert list(read_reference(path, report, format="canonical")) == []
    assert report.bad_line_examples[0][0] == 1 and message in report.bad_line_examples[0][1]


def test_unknown_format_is_named(tmp_path):
    path = write_lines(tmp_path / "x.jsonl", [json.dumps({"text": "hi"})])
    with pytest.raises(ValueError, match="not a reference file valueguard knows"):
        list(read_reference(path))


def test_reference_set_drops_exact_duplicates_and_counts_them(shared_data, tmp_path):
    src = shared_data / "fulcra" / "trustworthy_data.dev.jsonl"
    copy = tmp_path / "again.jsonl"
    copy.write_bytes(src.read_bytes())
    rs = ReferenceSet.from_files([src, copy])
    assert len(rs) == 1354 - 0 and rs.duplicates == 1354
    assert rs.value_matrix().shape == (1354, 10)
    assert [f.records for f in rs.files] == [1354, 1354]
