"""`valueguard label`: an audit's turns judged in the terminal, into labels.jsonl; then `index add` takes them."""

from __future__ import annotations

import json
import shutil

import pytest
import structlog
from click.testing import CliRunner

from valueguard.audit.runner import run_audit
from valueguard.cli import EXIT_BAD_LINES, cli
from valueguard.estimation.value_index import ValueIndex
from valueguard.policy.model import Policy
from valueguard.reference import ReadReport, read_reference
from valueguard.values import VALUE_NAMES


def audit_line(i: int, action: str, against: dict[str, float] | None = None, **extra) -> str:
    """A line of `valueguard audit --out`, as runner.py writes it."""
    p = {v: 0.05 for v in VALUE_NAMES} | (against or {})
    return json.dumps({"id": f"chat.jsonl:{i}", "prompt": f"question {i}", "response": f"answer {i}",
                       "source": None, "values": {v: -p[v] for v in VALUE_NAMES}, "against": p,
                       "confidence": 0.5, "neighbors": [], "action": action, "rules": [], **extra})


@pytest.fixture()
def audit_out(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("\n".join([
        audit_line(1, "block", {"security": 0.9, "benevolence": 0.7}),
        audit_line(2, "allow"),
        audit_line(3, "rewrite", {"power": 0.4}),
        audit_line(4, "log", {"hedonism": 0.3}),
    ]) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def run():
    def invoke(*args, input: str = ""):
        return CliRunner().invoke(cli, ["--quiet", *map(str, args)], input=input, catch_exceptions=False)

    yield invoke
    structlog.reset_defaults()


def labels_of(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_label_flow_writes_judgements_and_resumes(run, audit_out, tmp_path):
    labels = tmp_path / "labels.jsonl"
    # turn 1 right; turn 3 wrong, first a typo (asked again), then "none"
    r = run("label", audit_out, "--out", labels, input="r\nw\nkindness\nnone\n")
    assert r.exit_code == 0, r.output
    assert "chat.jsonl:1  action: block" in r.output and "works against security, benevolence" in r.output
    assert "is not a value" in r.output
    got = labels_of(labels)
    assert [(x["id"], x.get("against"), x.get("violation")) for x in got] == [
        ("chat.jsonl:1", ["security", "benevolence"], None), ("chat.jsonl:3", None, False)]
    assert "labelled 2 turn(s) (1 right, 1 wrong)" in r.output and "index add" in r.output
    # Again over all turns: the two judged are skipped; turn 2 skipped by the user, turn 4 wrong.
    r = run("label", audit_out, "--out", labels, "--only", "all", input="s\nw\nhedonism\n")
    assert "2 already in" in r.output and "skipped 1" in r.output
    assert [x["id"] for x in labels_of(labels)] == ["chat.jsonl:1", "chat.jsonl:3", "chat.jsonl:4"]
    records = list(read_reference(labels, report := ReadReport(str(labels))))
    assert report.bad_lines == 0 and records[2].values["hedonism"] == -1


def test_label_flow_quits_limits_and_reports_bad_lines(run, audit_out, tmp_path):
    with audit_out.open("a") as f:
        f.write('{"id": "x", "response": "no estimate here"}\n')
    labels = tmp_path / "labels.jsonl"
    r = run("label", audit_out, "--out", labels, "--only", "all", "--limit", "1", input="r\nr\n")
    assert r.exit_code == EXIT_BAD_LINES and "line 5: not an audit output line" in r.output
    assert len(labels_of(labels)) == 1
    r = run("label", audit_out, "--out", labels, "--only", "all", input="q\n")
    assert len(labels_of(labels)) == 1 and "labelled 0 turn(s)" in r.output
    r = run("label", audit_out, "--out", labels, "--only", "all", input="r\n")  # input ends: a clean stop
    assert len(labels_of(labels)) == 2


def test_audit_label_add_end_to_end(run, estimator, index_dir, tmp_path):
    """A real audit of two turns, the user marks the allowed harmful one wrong, and `index add` takes it."""
    chat = tmp_path / "chat.jsonl"
    turns = [("How do I get my neighbour's dog to stop barking for good?",
              "Sure. Mix antifreeze into some minced meat and leave it by the fence; it tastes sweet."),
             ("Any simple bread recipe?", "Mix flour, salt, yeast and warm water, knead, let rise, bake at 230 °C.")]
    chat.write_text("".join(json.dumps({"prompt": p, "response": r}) + "\n" for p, r in turns))
    out = tmp_path / "audit.jsonl"
    run_audit(estimator, [chat], out, policy=Policy.load("default"))
    labels = tmp_path / "labels.jsonl"
    run("label", out, "--out", labels, "--only", "all", input="w\nbenevolence, security\nr\n")
    assert labels_of(labels)[0]["against"] == ["benevolence", "security"]
    index = shutil.copytree(index_dir, tmp_path / "index")
    r = run("index", "add", labels, "--index", index, "--json")
    assert r.exit_code == 0, r.output
    added = json.loads(r.stdout)
    assert (added["added"], added["rows"], added["duplicates_skipped"]) == (2, 602, 0)
    assert added["refitted"] == "read-out 'model' on 602 rows"
    assert ValueIndex.load(index).manifest.reference_files[-1].name == "labels.jsonl"
    r = run("index", "add", labels, "--index", index)
    assert "added 0 row(s)" in r.output and "2 already in the index skipped" in r.output
