import json

import pytest
import structlog
from click.testing import CliRunner

from valueguard.cli import EXIT_BAD_LINES, EXIT_ERROR, EXIT_FLAGGED, cli
from valueguard.values import VALUE_NAMES


def test_check_json_has_values_confidence_and_evidence(run, index_dir):
    r = run("check", "Sorry, but I can't help with that.", "--prompt", "how do I hurt someone?",
            "--index", index_dir, "--json", "--evidence", "4")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert list(out["values"]) == list(VALUE_NAMES)
    assert len(out["neighbors"]) == 4 and 0 <= out["confidence"] <= 1
    assert {"id", "source", "similarity", "values", "label_kind"} <= set(out["neighbors"][0])


def test_check_readable_output_names_every_value_and_the_evidence(run, index_dir):
    r = run("check", "Here is a recipe for pancakes.", "--index", index_dir)
    assert r.exit_code == 0
    assert all(name in r.output for name in VALUE_NAMES)
    assert "evidence (nearest labelled references):" in r.output


def test_audit_of_unseen_responses_writes_one_line_each(run, index_dir, split, heldout_estimates, tmp_path):
    """The ~1,300 held-out responses: one output line per input, all 10 values, evidence, same as the API."""
    src = tmp_path / "in.jsonl"
    with src.open("w") as f:
        for i, rec in enumerate(split[1].records):
            row = {"prompt": rec.prompt, "response": rec.response}
            if i % 2 == 0:
                row["id"] = rec.id  # half keep their id, half get the line number
            f.write(json.dumps(row) + "\n")
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    r = run("audit", src, "--out", out, "--index", index_dir, "--summary", summary, "--json")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    flagged = sum(line["action"] in ("block", "rewrite") for line in lines)
    assert r.exit_code == (EXIT_FLAGGED if flagged else 0), r.output
    assert len(lines) == len(split[1]) > 1200 and json.loads(r.stdout)["audited"] == len(lines)
    for n, (line, rec, est) in enumerate(zip(lines, split[1].records, heldout_estimates), start=1):
        assert line["id"] == (rec.id if (n - 1) % 2 == 0 else n)
        assert list(line["values"]) == list(VALUE_NAMES)
        assert all(-1.0 <= v <= 1.0 for v in line["values"].values())
        assert line["values"] == pytest.approx(est.values.to_dict(), abs=1e-3)
        assert [nb["id"] for nb in line["neighbors"]] == [nb.id for nb in est.neighbors[:5]]
        assert line["action"] in ("allow", "log", "rewrite", "block") and isinstance(line["rules"], list)
    totals = json.loads(summary.read_text())["totals"]
    assert totals == {"turns": len(lines), "bad_lines": 0, "flagged": flagged}


def test_audit_exit_zero_for_pipelines_that_only_collect(run, index_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"response": "Key the car and slash the tyres tonight."}) + "\nnot json\n")
    r = run("audit", src, "--out", tmp_path / "o.jsonl", "--index", index_dir, "--policy", "strict", "--exit-zero")
    assert r.exit_code == 0 and "line 2: not JSON" in r.output


# Each bad line is reported with its number; the good ones are still audited.
BAD_LINES = [
    ('{"response": "Fine, thanks."}', None),
    ("not json", "line 2: not JSON"),
    ('{"prompt": "hi"}', "line 3: 'response' must be a non-empty string"),
    ('["a list"]', "line 4: expected a JSON object, got list"),
    ('{"response": "ok", "prompt": 5}', "line 5: 'prompt' must be a string"),
    ('{"response": "Sure.", "id": "last"}', None),
]


def test_audit_reports_bad_lines_by_number_and_goes_on(run, index_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(line for line, _ in BAD_LINES) + "\n")
    out = tmp_path / "out.jsonl"
    r = run("audit", src, "--out", out, "--index", index_dir)
    assert r.exit_code == EXIT_BAD_LINES
    for _, message in BAD_LINES:
        if message:
            assert message in r.output
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == [1, "last"]


def test_missing_index_names_the_command_that_builds_it(run, tmp_path):
    r = run("check", "hello")
    assert r.exit_code == EXIT_ERROR
    assert "valueguard index build" in r.output and "valueguard data pull" in r.output


def test_index_build_without_data_says_how_to_get_it(run):
    r = run("index", "build")
    assert r.exit_code == EXIT_ERROR and "run `valueguard data pull`" in r.output


def test_data_pull_then_info(run, shared_data, tmp_path):
    r = run("data", "pull", "--from", shared_data, "--json")
    assert r.exit_code == 0, r.output
    statuses = {f["path"]: f["status"] for f in json.loads(r.stdout)["files"]}
    assert statuses["saferlhf/test_questions.jsonl"] == "verified"
    info = json.loads(run("info", "--json").stdout)
    assert len(info["reference_files"]) == 4 and info["index"] is None and "index build" in info["index_error"]


@pytest.mark.model  # builds an index or embeds from the command line
def test_index_build_then_cached_then_info(run, shared_data, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text("".join((shared_data / "fulcra" / "trustworthy_data.dev.jsonl").open().readlines()[:25]))
    first = json.loads(run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json").stdout)
    second = json.loads(run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json").stdout)
    assert (first["built"], first["rows"], second["built"]) == (True, 25, False)
    info = json.loads(run("info", "--index", tmp_path / "idx", "--json").stdout)
    assert info["index"]["rows"] == 25 and info["index"]["reference_files"][0]["name"] == "small.jsonl"


@pytest.mark.model  # builds an index
def test_benign_anchors_are_a_choice_the_index_remembers(run, shared_data, tmp_path):
    """An index is current for the same anchors choice only: the other one rebuilds it. Without the anchors'
    file, the default builds without them (a warning) and --benign-anchors is an error."""
    small = tmp_path / "small.jsonl"
    small.write_text("".join((shared_data / "fulcra" / "trustworthy_data.dev.jsonl").open().readlines()[:25]))
    hh = tmp_path / "data" / "hh-rlhf" / "helpful_test.jsonl"
    missing = run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--benign-anchors")
    assert missing.exit_code == EXIT_ERROR and "helpful_test.jsonl" in missing.output and "data pull" in missing.output
    warned = run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json")
    assert json.loads(warned.stdout)["benign_anchors"] == 0 and "warning: no benign anchors" in warned.stderr
    hh.parent.mkdir(parents=True)
    lines = (shared_data / "hh-rlhf" / "helpful_test.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    hh.write_text("".join(lines[:640]), encoding="utf-8")  # the 600 test lines, then 40 anchors at most

    def build(*flags):
        return json.loads(run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json",
                              *flags).stdout)

    # With the file there, no flag means with anchors: the same index as --benign-anchors, not rebuilt.
    first, same, default = build("--benign-anchors"), build("--benign-anchors"), build()
    assert first["built"] and 30 < first["benign_anchors"] <= 40 and not same["built"] and not default["built"]
    plain, plain_again = build("--no-benign-anchors"), build("--no-benign-anchors")
    assert plain["built"] and plain["benign_anchors"] == 0 and not plain_again["built"]
    assert build()["built"]  # back to the default: with anchors again


@pytest.mark.model  # the index embedder (its ONNX export) is made before the file is read
def test_bad_reference_file_is_an_error_not_a_crash(run, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no labels"}\n')
    r = run("index", "build", "--reference", bad, "--out", tmp_path / "idx")
    assert r.exit_code == EXIT_ERROR and "not a reference file valueguard knows" in r.output


@pytest.fixture(scope="module")
def small_reference(tmp_path_factory, shared_data):
    """~240 labelled rows of both kinds, so eval and calibrate run end to end in seconds."""
    out = tmp_path_factory.mktemp("ref")
    paths = []
    for name, n in (("trustworthy_data.dev.jsonl", 120), ("harmless_test_openai_gpt-4.dev.jsonl", 120)):
        lines = (shared_data / "fulcra" / name).read_text(encoding="utf-8").splitlines()[:n]
        (out / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
        paths.append(out / name)
    return paths


@pytest.mark.model  # builds an index or embeds from the command line
def test_eval_reports_metrics_per_label_kind_and_policy_flags(run, small_reference):
    args = [a for p in small_reference for a in ("--reference", p)]
    r = run("eval", *args, "--folds", "3", "--policy", "default", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out["metrics"]) == {"annotated", "model"}
    for m in out["metrics"].values():
        assert 0 <= m["violation_ap"] <= 1 and 0 <= m["calibration_error"] <= 1
        assert set(m["per_value"]) == set(VALUE_NAMES)
    assert set(out["policy"]["actions"]) == {"block", "rewrite", "log"}
    assert "3-fold cross-validation grouped by prompt" in out["setup"]["mode"]


@pytest.mark.model  # builds an index or embeds from the command line
def test_calibrate_writes_a_policy_that_loads(run, small_reference, tmp_path):
    from valueguard.policy.model import Policy

    args = [a for p in small_reference for a in ("--reference", p)]
    out = tmp_path / "cal.yaml"
    # kNN: the quickest read-out; what is checked here is the written policy (the pair read-out: further down)
    r = run("calibrate", "--policy", "default", "--target-recall", "rewrite=0.5", "--out", out, *args, "--folds", "3",
            "--readout", "knn")
    assert r.exit_code == 0, r.output
    text = out.read_text()
    assert text.startswith("# Calibrated by `valueguard calibrate`")
    assert [rule.id for rule in Policy.load(out).rules] == [rule.id for rule in Policy.load("default").rules]
    assert "| value-violation | rewrite | recall 0.5 |" in r.output
    # The output says where the held-out rows' confidence lies, to read a {confidence_above: X} floor against.
    line = next(x for x in r.output.splitlines() if x.startswith("held-out confidence: 5% of rows below "))
    assert 0.0 < float(line.split("below ")[1].split()[0]) < 1.0


@pytest.mark.parametrize("args, message", [
    (["--out", "x.yaml"], "give --target-precision, --target-recall or --target-benign-rate"),             # no target at all
    (["--out", "x.yaml", "--target-precision", "1.5"], "between 0 and 1"),           # not a rate
    (["--out", "x.yaml", "--target-precision", "block=high"], "expected a number"),  # not a number
])
def test_calibrate_refuses_bad_targets(run, args, message):
    r = run("calibrate", "--policy", "default", *args)
    assert r.exit_code == EXIT_ERROR and message in r.output


@pytest.mark.model  # builds an index or embeds from the command line
def test_calibrate_without_out_writes_beside_the_caller_and_leaves_the_policy(run, small_reference, tmp_path,
                                                                            monkeypatch):
    from importlib import resources

    from valueguard.policy.model import BUNDLED_PACKAGE

    monkeypatch.chdir(tmp_path)
    src = tmp_path / "mine.yaml"
    src.write_text((resources.files(BUNDLED_PACKAGE) / "default.yaml").read_text())
    before = src.read_text()
    args = [a for p in small_reference for a in ("--reference", p)]
    r = run("calibrate", "--policy", src, "--target-precision", "block=0.5", *args, "--folds", "3", "--readout", "knn")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "mine.calibrated.yaml").is_file() and src.read_text() == before


@pytest.mark.parametrize("where", ["before", "after"])  # the README: every command takes -q
def test_quiet_is_taken_before_or_after_the_command(tmp_path, monkeypatch, index_dir, where):
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "data"))
    args = ["check", "Here is a recipe for pancakes.", "--index", str(index_dir), "--json"]
    args = ["-q", *args] if where == "before" else [args[0], "-q", *args[1:]]
    r = CliRunner().invoke(cli, args, catch_exceptions=False)
    structlog.reset_defaults()
    assert r.exit_code == 0, r.output
    assert list(json.loads(r.stdout)["values"]) == list(VALUE_NAMES)


@pytest.mark.model  # cross-validates the pair read-out from the command line
def test_calibrate_on_the_pair_readout_reuses_saved_held_out_estimates(run, small_reference, tmp_path):
    args = [a for p in small_reference for a in ("--reference", p)]
    cache = tmp_path / "held-out"
    first, second = tmp_path / "a.yaml", tmp_path / "b.yaml"
    r1 = run("calibrate", "--policy", "default", "--target-precision", "block=0.5", "--readout", "pair",
             "--held-out-cache", cache, "--out", first, *args, "--folds", "3")
    assert r1.exit_code == 0, r1.output
    assert "reused" not in r1.output and len(list(cache.glob("held-out-*.npz"))) == 1
    r2 = run("calibrate", "--policy", "default", "--target-precision", "block=0.5", "--readout", "pair",
             "--held-out-cache", cache, "--out", second, *args, "--folds", "3")
    assert r2.exit_code == 0 and "held-out estimates reused" in r2.output
    assert "read-out pair" in first.read_text().splitlines()[0]
    assert first.read_text() == second.read_text()  # the same estimates give the same thresholds
    r3 = run("calibrate", "--policy", "default", "--target-precision", "block=0.5", "--readout", "knn",
             "--held-out-cache", cache, "--out", tmp_path / "c.yaml", *args, "--folds", "3")
    assert r3.exit_code == 0 and "reused" not in r3.output  # another read-out is another result
