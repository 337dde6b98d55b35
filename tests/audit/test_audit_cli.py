"""`valueguard audit` end to end: real HH-RLHF transcripts, a real SmolLM2 logs.db and a plain file at once."""

import json

import pytest
import structlog
from click.testing import CliRunner

from valueguard.cli import EXIT_BAD_LINES, EXIT_ERROR, cli


@pytest.fixture()
def run():
    def invoke(*args):
        return CliRunner().invoke(cli, ["--quiet", *map(str, args)], catch_exceptions=False)

    yield invoke
    structlog.reset_defaults()


def test_audit_of_three_formats_with_summary_and_report(run, index_dir, shared_data, smollm2_db, tmp_path):
    hh = tmp_path / "helpful_300.jsonl"
    with (shared_data / "hh-rlhf" / "helpful_test.jsonl").open(encoding="utf-8") as f:
        hh.write_text("".join(next(f) for _ in range(300)), encoding="utf-8")
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"id": "p1", "response": "Sure, here is a bread recipe.", "model": "m1"}\n{broken\n')
    out, summary_path, report = tmp_path / "out.jsonl", tmp_path / "s.json", tmp_path / "r.html"

    r = run("audit", hh, smollm2_db[0], plain, "--out", out, "--summary", summary_path, "--report", report,
            "--index", index_dir, "--json")

    assert r.exit_code == EXIT_BAD_LINES, r.output  # bad lines outrank flags in the exit code
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    # 1,443 assistant turns in the first 300 HH-RLHF lines, 3 of them empty (line 121); 2 SmolLM2 turns; 1 plain.
    assert len(lines) == 1440 + 2 + 1
    by_id = {line["id"]: line for line in lines}
    assert by_id["helpful_300.jsonl:2:chosen:2"]["prompt"] == "I am in Oregon."
    assert by_id["p1"]["source"] == "m1"
    summary = json.loads(summary_path.read_text())
    assert [(i["format"], i["turns"]) for i in summary["inputs"]] == [("hh-rlhf", 1440), ("llm-db", 2), ("plain", 1)]
    assert summary["totals"]["turns"] == len(lines) and summary["totals"]["bad_lines"] == 4
    assert {"hh-rlhf/chosen", "hh-rlhf/rejected", "SmolLM2", "m1"} <= set(summary["sources"])
    assert sum(summary["actions"].values()) == len(lines)
    assert summary["totals"]["flagged"] == sum(line["action"] in ("block", "rewrite") for line in lines)
    assert any(b["line"] == 2 and b["path"].endswith("plain.jsonl") for b in summary["bad_line_examples"])
    html = report.read_text()
    assert html.count('class="vg-hist"') == 10 and 'class="vg-radar"' in html


def test_audit_with_an_unknown_policy_is_an_error(run, index_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"response": "hi"}\n')
    r = run("audit", src, "--out", tmp_path / "o.jsonl", "--index", index_dir, "--policy", "defualt")
    assert r.exit_code == EXIT_ERROR and "did you mean 'default'" in r.output


def test_audit_of_an_undetectable_file_names_it(run, index_dir, tmp_path):
    src = tmp_path / "odd.jsonl"
    src.write_text('{"text": "hi"}\n')
    r = run("audit", src, "--out", tmp_path / "o.jsonl", "--index", index_dir)
    assert r.exit_code == EXIT_ERROR and "odd.jsonl" in r.output and "--format" in r.output
