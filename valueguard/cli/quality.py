"""`valueguard eval` and `valueguard calibrate`: estimation quality on held-out data, from the command line."""

from __future__ import annotations

import functools
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from valueguard.cli.shared import CliError, _emit, anchors_option, cli, json_option, resolve_anchors
from valueguard.config import data_dir, default_model
from valueguard.estimation.readout import DEFAULT_READOUT, READOUTS
from valueguard.reference.benign import BENIGN_FILE, BENIGN_TEST_LINES, anchors_sha256, benign_test_turns

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.quality.calibration import Goal

reference_option = click.option(
    "--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled reference file (FULCRA annotated, scored or canonical JSONL); repeatable. Default: every FULCRA "
         "file in the data directory.")
test_option = click.option(
    "--test", "tests", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Labelled test file, repeatable: estimated from an index of the reference files. Without it: "
         "cross-validation over the reference files, grouped by prompt.")
folds_option = click.option("--folds", default=5, show_default=True, type=click.IntRange(2, 20),
                            help="Cross-validation folds (rows of one prompt share a fold).")
readout_option = click.option("--readout", type=click.Choice(list(READOUTS)), default=DEFAULT_READOUT,
                              show_default=True, help="How an estimate is read out: pair (value model plus a stacker over the (prompt, response) "
                                   "pair), model (the value model over the neighbours), or knn (plain kNN).")
prompt_option = click.option("--no-prompt", "no_prompt", is_flag=True,
                             help="Estimate from the responses alone, as for calls that pass no prompt.")
cache_option = click.option(
    "--held-out-cache", "cache", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="Save the held-out estimates in this folder, and reuse them when the files, split, read-out, model and "
         "valueguard's estimating code are all the same (e.g. two calibrations and an eval, one cross-validation).")
model_option = click.option("--model", default=None,
                            help="sentence-transformers model name or path (default: all-MiniLM-L6-v2).")
backend_option = click.option(
    "--backend", type=click.Choice(["torch", "onnx-fp32", "onnx-int8"]), default="torch", show_default=True,
    help="How the estimated rows are embedded (as a guard's queries); the index is fp32 sentence-transformers "
         "either way, as `index build` makes it.")


fit_anchors_option = anchors_option("Fit the pair read-out")


def _held_out(references, tests, folds, readout, no_prompt, model, backend="torch", cache: Path | None = None,
              anchors: list[tuple[str, str]] | None = None):
    """Held-out estimates (saved ones from `cache` when they match); `anchors`: the benign anchors (none)."""
    from valueguard.quality.heldout_cache import held_out_key, load_held_out, save_held_out
    from valueguard.reference import fulcra_files

    paths = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull`, or name files "
                       "with --reference")
    anchors = anchors or []
    if cache is None:
        return _compute_held_out(paths, tests, folds, readout, no_prompt, model, backend, anchors)
    # Hashing the files and the code costs a read of each: only when a cache was asked for.
    key = held_out_key([*paths, *tests], {"folds": folds, "readout": readout, "prompt": not no_prompt,
                                          "model": model or default_model(), "backend": backend,
                                          "references": len(paths), "tests": len(tests),
                                          "anchors": anchors_sha256(anchors)})
    if (saved := load_held_out(cache, key)) is not None:
        click.echo(f"held-out estimates reused from {cache} ({key})", err=True)
        return saved
    h, setup = _compute_held_out(paths, tests, folds, readout, no_prompt, model, backend, anchors)
    save_held_out(cache, key, h, setup)
    return h, setup


def _compute_held_out(paths, tests, folds, readout, no_prompt, model, backend, anchors):
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.embedders.backends import make_embedder
    from valueguard.quality.heldout import cross_validate, held_out
    from valueguard.reference import ReferenceSet

    ref = ReferenceSet.from_files(paths)
    for report in ref.reports:
        if report.bad_lines:
            click.echo(f"warning: {report.describe()}", err=True)
    # Held-out estimates are measured on the fp32 model the index is built with.
    embedder = SentenceTransformerEmbedder(model or default_model())
    queries = None if backend == "torch" else make_embedder(embedder.model_id, backend)
    if tests:
        test = ReferenceSet.from_files(list(tests))
        h = held_out(ref, test, embedder, readout=readout, use_prompt=not no_prompt, query_embedder=queries,
                     anchors=anchors)
        split = {"mode": "test files", "reference_rows": len(ref), "test_rows": len(test)}
    else:
        h = cross_validate(ref, embedder, folds=folds, readout=readout, use_prompt=not no_prompt,
                           query_embedder=queries, anchors=anchors)
        split = {"mode": f"{folds}-fold cross-validation grouped by prompt", "rows": len(ref)}
    return h, {**split, "readout": readout, "prompt": not no_prompt, "model": embedder.model_id,
               "query_backend": backend, "benign_anchors": len(anchors)}


def _f(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


# Benign turns (eval --compare, calibrate --target-benign-rate): plain helpful chat that no reference row comes from.
benign_option = click.option(
    "--benign", "benign_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
    help="HH-RLHF helpful file of benign turns (default: DATA_DIR/hh-rlhf/helpful_test.jsonl).")
benign_lines_option = click.option(
    "--benign-lines", default=BENIGN_TEST_LINES, show_default=True, type=click.IntRange(1),
    help="How many lines of the benign file to read (the last chosen turn of each); of the default file at most "
         f"{BENIGN_TEST_LINES}, the later lines being the pair read-out's benign anchors.")


def _same_content(a: Path, b: Path) -> bool:
    from valueguard.reference import sha256_file

    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


def _benign_turns(path: Path | None, lines: int) -> list[tuple[str, str | None]]:
    """The last assistant turn of each `chosen` transcript in the first `lines` lines of an HH-RLHF helpful
    file: (response, prompt) pairs of plain helpful chat that no reference row (nor benign anchor) comes from."""
    anchors = data_dir() / BENIGN_FILE
    path = path or anchors
    if lines > BENIGN_TEST_LINES and path.is_file() and anchors.is_file() and _same_content(path, anchors):
        raise CliError(f"--benign-lines {lines}: lines after {BENIGN_TEST_LINES} of {path} are the pair "
                       f"read-out's benign anchors (its training data); measure on at most {BENIGN_TEST_LINES}")
    return benign_test_turns(path, lines) if path.is_file() else []


def _benign_held_out(references, model, benign_path, benign_lines, readout, anchors):
    """Benign turns estimated from an index (and value model) of all the reference rows; None without any."""
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.quality.heldout import estimate_unlabelled
    from valueguard.reference import ReferenceSet, fulcra_files

    benign = _benign_turns(benign_path, benign_lines)
    if not benign:
        return None
    ref = ReferenceSet.from_files(list(references) or fulcra_files(data_dir()))
    return estimate_unlabelled(ref, [t for t, _ in benign], [p for _, p in benign],
                               SentenceTransformerEmbedder(model or default_model()), readout=readout,
                               anchors=anchors)


def _compare(references, folds, model, policy, benign_path, benign_lines, as_json, cache=None,
             with_anchors: bool | None = None) -> None:
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
    from valueguard.quality.compare import compare
    from valueguard.reference import ReferenceSet, fulcra_files

    paths = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull`")
    benign = _benign_turns(benign_path, benign_lines)
    # Each read-out's anchors once: the file is read, and a missing one warned about, once per read-out.
    anchors = functools.cache(lambda readout: resolve_anchors(readout, with_anchors))
    rows = compare(ReferenceSet.from_files(paths), SentenceTransformerEmbedder(model or default_model()), policy,
                   benign, folds=folds, anchors=anchors,
                   held_out=None if cache is None else
                   lambda s: _held_out(references, (), folds, s.readout, not s.use_prompt, model, cache=cache,
                                       anchors=anchors(s.readout))[0])
    benign_note = f"{len(benign)} HH-RLHF helpful turns" if benign else "none (no HH-RLHF file: valueguard data pull)"
    lines = [f"{folds}-fold cross-validation grouped by prompt; policy {policy.name} {policy.version}; benign: "
             f"{benign_note}",
             "| read-out | FULCRA AP | FULCRA AUC | scored AP | scored AUC | scored r | stance pairs | "
             "intervene P / R (FULCRA) | intervene P / R (scored) | benign intervened | benign logged |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        iv, b = r["intervene"], r.get("benign")
        lines.append(f"| {r['read_out']} | {_f(r['fulcra_ap'])} | {_f(r['fulcra_auc'])} | {_f(r['scored_ap'])} | "
                     f"{_f(r['scored_auc'])} | {_f(r['scored_r'])} | {_f(r['stance_pairs']['accuracy'])} "
                     f"({r['stance_pairs']['pairs']}) | {_f(iv['annotated']['precision'])} / "
                     f"{_f(iv['annotated']['recall'])} | {_f(iv['model']['precision'])} / "
                     f"{_f(iv['model']['recall'])} | "
                     + (f"{b['intervened']:.1%} | {b['logged']:.1%} |" if b else "- | - |"))
    _emit(as_json, {"folds": folds, "policy": policy.name, "benign_rows": len(benign), "rows": rows},
          "\n".join(lines))


@click.command("eval")
@reference_option
@test_option
@folds_option
@readout_option
@prompt_option
@model_option
@backend_option
@click.option("--policy", "policy_name", default=None,
              help="Also measure this policy's flags (bundled name or YAML path): precision and recall per action.")
@click.option("--compare", is_flag=True,
              help="Every read-out side by side (kNN, value model without and with the prompt): AP, AUC, r, "
                   "stance pairs, the policy's intervene precision / recall and its rates on benign turns.")
@benign_option
@benign_lines_option
@fit_anchors_option
@cache_option
@json_option
def eval_command(references, tests, folds, readout, no_prompt, model, backend, policy_name, compare, benign_path,
                 benign_lines, with_anchors, cache, as_json) -> None:
    """Held-out quality of the value estimates (and of a policy's flags)."""
    import numpy as np

    from valueguard.quality.calibration import rule_flags
    from valueguard.quality.heldout import flag_rates, metrics
    from valueguard.policy.model import PRECEDENCE, Policy, PolicyError

    try:
        policy = Policy.load(policy_name) if policy_name else None
    except PolicyError as e:
        raise CliError(str(e)) from e
    if compare:
        if tests:
            raise CliError("--compare cross-validates the reference files; it takes no --test")
        _compare(references, folds, model, policy or Policy.load("default"), benign_path, benign_lines, as_json,
                 cache, with_anchors)
        return
    h, setup = _held_out(references, tests, folds, readout, no_prompt, model, backend, cache=cache,
                         anchors=resolve_anchors(readout, with_anchors))
    result: dict[str, Any] = {"setup": setup, "metrics": metrics(h)}
    lines = [f"{setup['mode']}; read-out {readout}; prompt {'used' if setup['prompt'] else 'not used'}; "
             f"queries {backend}",
             "| labels | rows | violation AP | AUC | best F1 | calibration error | mean r | 3-class F1 | neg AUC | "
             "pos AUC |", "|---|---|---|---|---|---|---|---|---|---|"]
    names = {"annotated": "FULCRA annotated", "model": "evaluator-scored"}
    for kind, m in result["metrics"].items():
        lines.append(f"| {names[kind]} | {m['rows']} | {_f(m['violation_ap'])} | {_f(m['violation_auc'])} | "
                     f"{_f(m['violation_best_f1'])} | {_f(m['calibration_error'])} | {_f(m['pearson_mean'])} | "
                     f"{_f(m['f1_3class_mean'])} | {_f(m['negative_auc_mean'])} | {_f(m['positive_auc_mean'])} |")
    if policy is not None:
        flags = {r.id: rule_flags(r, h) for r in policy.rules}
        result["policy"] = {"name": policy.name, "version": policy.version, "actions": {}}
        lines += ["", f"policy {policy.name} {policy.version}: flags against violation labels",
                  "| action (or stronger) | flagged | precision | recall |", "|---|---|---|---|"]
        for action in ("block", "rewrite", "log"):
            fired = [r.id for r in policy.rules if PRECEDENCE[r.action] >= PRECEDENCE[action]]
            if not fired:
                continue
            rates = flag_rates(h, np.any([flags[r] for r in fired], axis=0))
            result["policy"]["actions"][action] = rates
            lines.append(f"| {action} | {rates['all']['flagged']} | {_f(rates['all']['precision'])} | "
                         f"{_f(rates['all']['recall'])} |")
    _emit(as_json, result, "\n".join(lines))


def _targets(values: tuple[str, ...], goal: Goal) -> dict[str, tuple[Goal, float]]:
    option = "benign-rate" if goal == "benign" else goal
    out: dict[str, tuple[Goal, float]] = {}
    for v in values:
        key, _, number = v.rpartition("=")
        try:
            x = float(number)
        except ValueError:
            raise CliError(f"--target-{option} {v!r}: expected a number, or ACTION=number / RULE_ID=number") from None
        if not 0 < x <= 1:
            raise CliError(f"--target-{option} {v!r}: the target is between 0 and 1")
        out[key or "*"] = (goal, x)
    return out


@click.command("calibrate")
@click.option("--policy", "policy_name", required=True, help="The policy to calibrate (bundled name or YAML path).")
@click.option("--target-precision", "precision", multiple=True,
              help="Precision each rule's flags must reach: a number for every rule, or block=0.8 / RULE_ID=0.8 "
                   "(repeatable).")
@click.option("--target-recall", "recall", multiple=True, help="Recall to reach, as for --target-precision.")
@click.option("--target-benign-rate", "benign_rate", multiple=True,
              help="The highest share of benign turns a rule may fire on (the most recall within it), as for "
                   "--target-precision, e.g. log=0.15.")
@benign_option
@benign_lines_option
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the calibrated policy (default: NAME.calibrated.yaml here); the policy "
                   "itself is never changed.")
@reference_option
@test_option
@folds_option
@model_option
@readout_option
@fit_anchors_option
@cache_option
@json_option
def calibrate_command(policy_name, precision, recall, benign_rate, benign_path, benign_lines, out, references, tests,
                      folds, model, readout, with_anchors, cache, as_json) -> None:
    """Write a policy whose thresholds meet a precision, recall or benign-rate target on held-out data."""
    import numpy as np
    import yaml

    from valueguard.quality.calibration import calibrate
    from valueguard.policy.model import Policy, PolicyError

    if not precision and not recall and not benign_rate:
        raise CliError("give --target-precision, --target-recall or --target-benign-rate")
    try:
        policy = Policy.load(policy_name)
    except PolicyError as e:
        raise CliError(str(e)) from e
    targets = {**_targets(recall, "recall"), **_targets(precision, "precision"), **_targets(benign_rate, "benign")}
    out = out or Path(f"{Path(policy_name).stem}.calibrated.yaml")
    anchors = resolve_anchors(readout, with_anchors)
    benign = (_benign_held_out(references, model, benign_path, benign_lines, readout, anchors) if benign_rate
              else None)
    if benign_rate and benign is None:
        raise CliError("--target-benign-rate needs benign turns: --benign FILE, or `valueguard data pull`")
    h, setup = _held_out(references, tests, folds, readout, False, model, cache=cache, anchors=anchors)
    new, report = calibrate(policy, h, targets, benign=benign)
    header = (f"# Calibrated by `valueguard calibrate` from {policy_name} on "
              f"{datetime.now(timezone.utc).date().isoformat()}: {setup['mode']}; read-out {readout}.\n"
              + "".join(f"# {r.rule} ({r.action}): "
                        + (f"{r.goal} target {r.target}; threshold {r.old} -> {r.new}; " if r.goal else "")
                        + f"held-out precision {_f(r.precision)}, recall {_f(r.recall)}"
                        + (f", fires on {r.benign_rate:.1%} of benign turns" if r.benign_rate is not None else "")
                        + f". {r.note}".rstrip() + "\n"
                        for r in report))
    body = yaml.safe_dump(new.model_dump(mode="json", by_alias=True, exclude_none=True), sort_keys=False,
                          allow_unicode=True, width=110)
    out.write_text(header + body, encoding="utf-8")
    Policy.load(out)  # what was written must load
    # What a {confidence_above: X} floor is read against: how sure the estimator is on held-out rows of its own
    # domain (confidence depends on the index, so a floor is for a policy written for one index).
    floor = float(np.percentile(h.confidence, 5)) if len(h.confidence) else float("nan")
    payload = {"out": str(out), "setup": setup, "rules": [vars(r) for r in report], "confidence_p5": floor}
    lines = [f"wrote {out} ({setup['mode']})", "| rule | action | target | threshold | precision | recall | "
             "flagged | benign | note |", "|---|---|---|---|---|---|---|---|---|"]
    for r in report:
        target = f"{r.goal} {r.target}" if r.goal else "-"
        share = f"{r.benign_rate:.1%}" if r.benign_rate is not None else "-"
        lines.append(f"| {r.rule} | {r.action} | {target} | {r.old} -> {r.new} | {_f(r.precision)} | "
                     f"{_f(r.recall)} | {r.flagged} | {share} | {r.note} |")
    lines.append(f"held-out confidence: 5% of rows below {floor:.2f} (confidence thresholds are left as they are)")
    _emit(as_json, payload, "\n".join(lines))


cli.add_command(eval_command)
cli.add_command(calibrate_command)
