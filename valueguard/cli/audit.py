"""`valueguard audit`: a policy over chat logs, with a JSONL of flags, a summary and an HTML report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from valueguard.cli.shared import EXIT_BAD_LINES, EXIT_FLAGGED, CliError, _emit, _estimator, _progress, cli, index_option, json_option


FORMATS = ["auto", "openai", "sharegpt", "hh-rlhf", "fulcra", "scored", "plain", "llm-db"]


@cli.command()
@click.argument("inputs", metavar="INPUT...", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Output JSONL: one line per audited turn with id, values, neighbors, action and rules.")
@click.option("--policy", "policy_name", default="default", show_default=True,
              help="A bundled policy name or a YAML path: decides each turn's action.")
@click.option("--summary", "summary_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write the summary JSON here: counts per action, rule and source, value profiles, top flagged.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a self-contained HTML report here (charts, flagged responses with evidence).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="auto", show_default=True,
              help="Input format, detected per file by default.")
@click.option("--exit-zero", is_flag=True, help="Exit 0 when the run completes, flagged or not.")
@click.option("--batch-size", default=64, show_default=True, help="Responses embedded together.")
@click.option("--neighbors", "n_neighbors", default=5, show_default=True, help="Evidence rows kept per response.")
@click.option("--max-line-bytes", default=1_000_000, show_default=True, type=click.IntRange(min=1),
              help="A longer input line (or logs.db value) is a bad line, skipped unparsed.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: Ray Data actors, the same records (pip install 'valueguard[ray]'; "
                   "docs/scale.md).")
@click.option("--ray-address", default=None, help="Ray cluster to join (e.g. ray://head:10001 or auto); default: "
                                                   "start a local Ray of --workers CPUs.")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(min=1),
              help="Ray actors, each holding the model, index and policy once (--engine ray).")
@index_option
@json_option
@click.pass_context
def audit(ctx: click.Context, inputs: tuple[Path, ...], out_path: Path, policy_name: str, summary_path: Path | None,
          report_path: Path | None, fmt: str, exit_zero: bool, batch_size: int, n_neighbors: int,
          max_line_bytes: int, engine: str, ray_address: str | None, workers: int, index_dir: Path | None,
          as_json: bool) -> None:
    """Audit the assistant turns of logs: chat JSONL (OpenAI, ShareGPT), HH-RLHF, FULCRA, plain, llm logs.db.

    Exit code: 0 nothing flagged, 1 responses flagged (block or rewrite), 3 some lines could not be read
    (each reported by number; the rest was audited), 2 an error.
    """
    from valueguard.policy.model import Policy, PolicyError

    try:
        policy = Policy.load(policy_name)
    except PolicyError as e:
        raise CliError(str(e)) from e
    quiet = ctx.obj["quiet"] or not sys.stderr.isatty()
    if engine == "ray":
        result = _audit_on_ray(inputs, out_path, policy_name, fmt, batch_size, n_neighbors, workers, ray_address,
                               not quiet, max_line_bytes, index_dir)
    else:
        result = _audit_here(inputs, out_path, policy, fmt, batch_size, n_neighbors, max_line_bytes, index_dir,
                             quiet)
    _write_outputs(result, summary_path, report_path)
    text = (f"audited {result.audited} responses from {len(inputs)} file(s) -> {out_path}; "
            f"{result.flagged} flagged by policy {policy.name!r} ({result.throughput:.1f} responses/s, {engine})")
    if result.bad_lines:
        shown = "; ".join(f"{Path(b['path']).name} line {b['line']}: {b['reason']}"
                          for b in result.bad_line_examples[:10])
        text += f"\n{result.bad_lines} line(s) could not be read and were skipped: {shown}"
    _emit(as_json, result.to_dict(), text)
    if exit_zero:
        return
    if result.bad_lines:
        ctx.exit(EXIT_BAD_LINES)
    if result.flagged:
        ctx.exit(EXIT_FLAGGED)


def _audit_here(inputs: tuple[Path, ...], out_path: Path, policy: Any, fmt: str, batch_size: int, n_neighbors: int,
                max_line_bytes: int, index_dir: Path | None, quiet: bool) -> Any:
    from valueguard.audit.runner import count_records, run_audit

    estimator = _estimator(index_dir)
    try:
        total = 0 if quiet else sum(count_records(p, fmt, max_line_bytes=max_line_bytes) for p in inputs)
        result = run_audit(estimator, list(inputs), out_path, policy=policy, format=fmt, batch_size=batch_size,
                           neighbors=n_neighbors, progress=_progress(total, "audit", quiet),
                           max_line_bytes=max_line_bytes)
    except ValueError as e:  # an undetectable format, named with its file
        raise CliError(str(e)) from e
    return result


def _audit_on_ray(inputs: tuple[Path, ...], out_path: Path, policy_name: str, fmt: str, batch_size: int,
                  n_neighbors: int, workers: int, address: str | None, progress: bool, max_line_bytes: int,
                  index_dir: Path | None) -> Any:
    from valueguard.audit.ray_engine import run_audit_ray
    from valueguard.config import default_index_dir

    directory = index_dir or default_index_dir()
    _estimator(directory)  # the index is verified here, before any worker starts
    try:
        return run_audit_ray(directory, list(inputs), out_path, policy=policy_name, format=fmt,
                             batch_size=batch_size, neighbors=n_neighbors, workers=workers, address=address,
                             progress=progress, max_line_bytes=max_line_bytes)
    except (ValueError, RuntimeError) as e:
        raise CliError(str(e)) from e


def _write_outputs(result: Any, summary_path: Path | None, report_path: Path | None) -> None:
    if summary_path:
        summary_path.write_text(json.dumps(result.summary, indent=2, ensure_ascii=False), encoding="utf-8")
    if report_path:
        from valueguard.audit.report import render_report

        report_path.write_text(render_report(result.summary), encoding="utf-8")
