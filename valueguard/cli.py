"""The `valueguard` command. Thin: it parses arguments, calls the modules, and prints.

Exit codes: 0 done; 1 `audit` flagged responses (block or rewrite); 2 error (bad arguments, missing index or
data, ...); 3 `audit` completed but some input lines could not be read (each reported with its number). Heavy imports happen inside the commands, so
`valueguard --help` stays quick.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from valueguard import __version__
from valueguard.config import data_dir, default_index_dir, default_model

EXIT_FLAGGED = 1
EXIT_ERROR = 2
EXIT_BAD_LINES = 3

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
index_option = click.option(
    "--index", "index_dir", type=click.Path(path_type=Path), default=None,
    help="Index folder (default: DATA_DIR/index, built by `valueguard index build`).",
)


class CliError(click.ClickException):
    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (click's test runner swaps it per invocation)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _configure_logging(quiet: bool) -> None:
    """The CLI is an application: it renders valueguard's log events on stderr (the library itself prints none)."""
    import structlog

    from valueguard.logs import ROOT

    structlog.configure(processors=[structlog.processors.add_log_level, structlog.dev.ConsoleRenderer(colors=False)])
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _CurrentStderr)]:
        logger.removeHandler(handler)
    logger.addHandler(_CurrentStderr())
    logger.setLevel(logging.WARNING if quiet else logging.INFO)


def _quiet_here(ctx: click.Context, _param: click.Parameter, quiet: bool) -> None:
    """-q after a command name (`valueguard check -q TEXT`) means what it means before it."""
    if quiet and not ctx.resilient_parsing:
        ctx.ensure_object(dict)["quiet"] = True
        _configure_logging(True)


class _Group(click.Group):
    """A group whose commands (and nested groups) all take -q/--quiet too."""

    group_class = type  # nested groups are _Group as well

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not any(p.name == "quiet" for p in cmd.params):
            cmd.params.append(click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True,
                                           callback=_quiet_here, help="No progress bars or info logs."))
        super().add_command(cmd, name)


def _emit(as_json: bool, payload: dict[str, Any], text: str) -> None:
    click.echo(json.dumps(payload, indent=2, ensure_ascii=False) if as_json else text)


def _progress(total: int, desc: str, quiet: bool) -> Callable[[int], None]:
    from tqdm import tqdm

    # Rate and ETA come from tqdm; it draws only on a terminal (disable=None), and never with --quiet.
    bar = tqdm(total=total, desc=desc, unit="row", file=sys.stderr, disable=quiet or None, dynamic_ncols=True)

    def advance(n: int) -> None:
        bar.update(n)
        if bar.n >= total:
            bar.close()

    return advance


def _estimator(index_dir: Path | None):
    from valueguard.estimator import ValueEstimator
    from valueguard.index import ValueIndexError

    directory = index_dir or default_index_dir()
    try:
        return ValueEstimator.from_index(directory)
    except ValueIndexError as e:
        hint = "" if index_dir else " (first `valueguard data pull`, if the data directory is empty)"
        raise CliError(f"{e}{hint}") from e


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="valueguard")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or info logs.")
@click.pass_context
def cli(ctx: click.Context, quiet: bool) -> None:
    """valueguard: estimate the Schwartz values an LLM response upholds or works against, with evidence."""
    ctx.ensure_object(dict)["quiet"] = quiet
    _configure_logging(quiet)


@cli.command()
@click.argument("text")
@click.option("--prompt", default=None,
              help="The user turn the response answers (the value model reads it beside the response).")
@click.option("--evidence", "n_evidence", default=3, show_default=True, help="Neighbours to show.")
@index_option
@json_option
def check(text: str, prompt: str | None, n_evidence: int, index_dir: Path | None, as_json: bool) -> None:
    """Estimate the value vector of one response TEXT and show the evidence."""
    est = _estimator(index_dir).estimate(text, prompt=prompt)
    if as_json:
        _emit(True, est.to_dict(neighbors=n_evidence), "")
        return
    lines = [f"confidence {est.confidence:.2f}", f"{'value':>15} {'score':>5} {'':41} P(against)"]
    for name, score in est.values.items():
        bar = ("-" * round(-score * 20)).rjust(20) + "|" + ("+" * round(score * 20)).ljust(20)
        lines.append(f"{name:>15} {score:+.2f} {bar} {est.against[name]:.2f}")
    lines.append("\nevidence (nearest labelled references):")
    for n in est.neighbors[:n_evidence]:
        labelled = ", ".join(f"{k} {v:+.1f}" for k, v in n.values.items() if abs(v) >= 0.5) or "no value"
        snippet = n.response.replace("\n", " ")[:100]
        lines.append(f"  {n.similarity:.2f}  {n.id} [{n.source}, {n.label_kind}]: {labelled}\n        \"{snippet}\"")
    _emit(False, {}, "\n".join(lines))


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
@index_option
@json_option
@click.pass_context
def audit(ctx: click.Context, inputs: tuple[Path, ...], out_path: Path, policy_name: str, summary_path: Path | None,
          report_path: Path | None, fmt: str, exit_zero: bool, batch_size: int, n_neighbors: int,
          max_line_bytes: int, index_dir: Path | None, as_json: bool) -> None:
    """Audit the assistant turns of logs: chat JSONL (OpenAI, ShareGPT), HH-RLHF, FULCRA, plain, llm logs.db.

    Exit code: 0 nothing flagged, 1 responses flagged (block or rewrite), 3 some lines could not be read
    (each reported by number; the rest was audited), 2 an error.
    """
    from valueguard.audit.runner import count_records, run_audit
    from valueguard.policy import Policy, PolicyError

    try:
        policy = Policy.load(policy_name)
    except PolicyError as e:
        raise CliError(str(e)) from e
    estimator = _estimator(index_dir)
    quiet = ctx.obj["quiet"] or not sys.stderr.isatty()
    try:
        total = 0 if quiet else sum(count_records(p, fmt, max_line_bytes=max_line_bytes) for p in inputs)
        result = run_audit(estimator, list(inputs), out_path, policy=policy, format=fmt, batch_size=batch_size,
                           neighbors=n_neighbors, progress=_progress(total, "audit", quiet),
                           max_line_bytes=max_line_bytes)
    except ValueError as e:  # an undetectable format, named with its file
        raise CliError(str(e)) from e
    if summary_path:
        summary_path.write_text(json.dumps(result.summary, indent=2, ensure_ascii=False), encoding="utf-8")
    if report_path:
        from valueguard.audit.report import render_report

        report_path.write_text(render_report(result.summary), encoding="utf-8")
    text = (f"audited {result.audited} responses from {len(inputs)} file(s) -> {out_path}; "
            f"{result.flagged} flagged by policy {policy.name!r}")
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


@cli.group()
def data() -> None:
    """Reference data: the FULCRA files."""


@data.command("pull")
@click.option("--from", "mirror", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Copy from a local mirror folder instead of downloading.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Data directory to fill (default: $VALUEGUARD_DATA_DIR or ~/.local/share/valueguard).")
@json_option
def data_pull(mirror: Path | None, dest: Path | None, as_json: bool) -> None:
    """Fill the data directory from upstream (verified by git blob id) or from a local mirror."""
    from valueguard.reference.pull import DataPullError, pull_from_mirror, pull_from_upstream

    dest = dest or data_dir()
    try:
        if mirror:
            pulled = pull_from_mirror(mirror, dest)
        else:
            pulled = pull_from_upstream(dest, progress=lambda f: click.echo(f"downloading {f.url}", err=True))
    except DataPullError as e:
        raise CliError(str(e)) from e
    payload = {"data_dir": str(dest), "files": [vars(p) for p in pulled]}
    text = "\n".join([f"data directory: {dest}"] + [f"  {p.path}: {p.status}" for p in pulled])
    _emit(as_json, payload, text)


@cli.group()
def index() -> None:
    """The FAISS index over the reference data."""


@index.command("build")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference file (FULCRA annotated, FULCRA scored or canonical JSONL); repeatable. "
                   "Default: every FULCRA file in the data directory.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Index folder (default: DATA_DIR/index).")
@click.option("--model", default=None, help="sentence-transformers model name or path (default: all-MiniLM-L6-v2).")
@click.option("--text-form", type=click.Choice(["response", "dialogue"]), default="response", show_default=True,
              help="What is embedded: the response alone (measured best, see README), or prompt and response "
                   "in FULCRA's dialogue form.")
@click.option("--readout", type=click.Choice(["model", "knn"]), default="model", show_default=True,
              help="How neighbours become values: a value model fitted on the reference data (measured best, see "
                   "README), or the neighbours' weighted mean.")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date index is there.")
@json_option
@click.pass_context
def index_build(ctx: click.Context, references: tuple[Path, ...], out: Path | None, model: str | None,
                text_form: str, readout: str, force: bool, as_json: bool) -> None:
    """Embed the reference data and write a verified index (cached: unchanged inputs are not rebuilt)."""
    from valueguard.embedding import make_index_embedder
    from valueguard.index import build_cached
    from valueguard.reference import fulcra_files

    paths = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull` "
                       "(or `valueguard data pull --from MIRROR`), or name files with --reference")
    out = out or default_index_dir()
    try:
        result = build_cached(paths, out, make_index_embedder(model or default_model()),
                              text_form=text_form, readout=readout, force=force,  # type: ignore[arg-type]
                              progress_factory=lambda n: _progress(n, "embedding", ctx.obj["quiet"]))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    m = result.index.manifest
    payload = {"index": str(out), "built": result.built, "rows": m.rows, "model": m.model,
               "text_form": m.text_form, "build_seconds": m.build_seconds, "duplicates_dropped": result.duplicates,
               "reference_files": [r.to_dict() for r in result.reports], **_export_for_queries(m.model)}
    if result.built:
        text = "\n".join([f"built {out}: {m.rows} rows, {m.model}, {m.text_form} form, {m.build_seconds:.0f} s"]
                         + [f"  {r.describe()}" for r in result.reports]
                         + ([f"  {result.duplicates} duplicate pair(s) kept once"] if result.duplicates else []))
    else:
        text = f"index at {out} is up to date ({m.rows} rows, {m.model}); nothing to do (--force rebuilds)"
    _emit(as_json, payload, text)


def _backend_or_error() -> str:
    from valueguard.config import default_backend

    try:
        return default_backend()
    except ValueError as e:  # info still reports everything else
        return f"invalid: {e}"


def _export_for_queries(model: str) -> dict[str, Any]:
    """Queries are embedded by the default backend: its ONNX export is made now, so the first check is quick."""
    from valueguard.config import default_backend

    backend = default_backend()
    if backend == "torch":
        return {"query_backend": backend}
    from valueguard.onnx_embedder import ensure_export

    try:
        return {"query_backend": backend, "onnx_export": str(ensure_export(model))}
    except ValueError as e:  # a model the ONNX backend cannot run; the index itself is fine
        click.echo(f"warning: {e} (set VALUEGUARD_BACKEND=torch for this model)", err=True)
        return {"query_backend": backend, "onnx_export": None}


@cli.command()
@index_option
@json_option
def info(index_dir: Path | None, as_json: bool) -> None:
    """Versions, the data directory's files, and the index's manifest."""
    from importlib.metadata import PackageNotFoundError, version

    from valueguard.index import ValueIndex, ValueIndexError
    from valueguard.reference import fulcra_files

    def ver(pkg: str) -> str | None:
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    directory = index_dir or default_index_dir()
    try:
        manifest: dict[str, Any] | None = ValueIndex.read_manifest(directory).model_dump()
        index_error = None
    except ValueIndexError as e:
        manifest, index_error = None, str(e)
    payload = {
        "valueguard": __version__,
        "versions": {p: ver(p) for p in ("sentence-transformers", "onnxruntime", "faiss-cpu", "torch", "numpy")},
        "model": default_model(),
        "backend": _backend_or_error(),
        "data_dir": str(data_dir()),
        "reference_files": [str(p) for p in fulcra_files(data_dir())],
        "index_dir": str(directory),
        "index": manifest,
        "index_error": index_error,
    }
    lines = [f"valueguard {__version__}  ({', '.join(f'{k} {v}' for k, v in payload['versions'].items())})",
             f"default model: {payload['model']}, query backend: {payload['backend']}",
             f"data directory: {payload['data_dir']} ({len(payload['reference_files'])} FULCRA file(s))",
             f"index: {directory}"]
    if manifest:
        lines.append(f"  {manifest['rows']} rows, model {manifest['model']}, dimension {manifest['dimension']}, "
                     f"{manifest['text_form']} form, built {manifest['built_at']}")
        lines += [f"  {f['name']}: {f['records']} records, sha256 {f['sha256'][:12]}"
                  for f in manifest["reference_files"]]
    else:
        lines.append(f"  {index_error}")
    _emit(as_json, payload, "\n".join(lines))


# eval and calibrate live in their own module, which adds them to `cli` (whichever of the two is imported first).
import valueguard.cli_quality  # noqa: E402,F401
import valueguard.cli_server  # noqa: E402,F401  (serve: the guard server; its packages are imported when it runs)
import valueguard.cli_teach  # noqa: E402,F401  (label, index add: a user teaches the guard)


def main() -> None:
    try:
        rc = cli.main(standalone_mode=False)
    except click.ClickException as e:
        e.show()
        sys.exit(EXIT_ERROR)
    except click.exceptions.Abort:
        sys.exit(130)
    except Exception as e:  # an unexpected failure is still an error (2), never "violations found" (1)
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        sys.exit(EXIT_ERROR)
    sys.exit(rc if isinstance(rc, int) else 0)
