"""The `valueguard` command group and what its command modules share. Thin: it parses arguments, calls the modules, and prints.

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
from valueguard.errors import ValueGuardError

EXIT_FLAGGED = 1
EXIT_ERROR = 2
EXIT_BAD_LINES = 3

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")
index_option = click.option(
    "--index", "index_dir", type=click.Path(path_type=Path), default=None,
    help="Index folder (default: DATA_DIR/index, built by `valueguard index build`).",
)


def anchors_option(what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """--benign-anchors/--no-benign-anchors for a command that fits the pair read-out (`what` says how)."""
    return click.option(
        "--benign-anchors/--no-benign-anchors", "with_anchors", default=None,
        help=f"{what} with benign anchors (the HH-RLHF helpful turns after the first 600 lines of DATA_DIR's file), "
             "as the shipped stacker is: about 4x fewer interventions on plain helpful answers at the same "
             "precision and recall (docs/quality.md). Default: with them when that file is there (a warning when "
             "not); --benign-anchors requires them.")


def resolve_anchors(readout: str, with_anchors: bool | None) -> list[tuple[str, str]]:
    """The benign anchors a command fits `readout` with: DATA_DIR's unless --no-benign-anchors (none for a
    read-out that learns from none); --benign-anchors makes their absence an error."""
    from valueguard.estimation.readout import readout_class
    from valueguard.estimation.value_index import benign_anchors
    from valueguard.reference.benign import BENIGN_FILE

    if with_anchors is False:
        return []
    if with_anchors and not readout_class(readout).learns_from_anchors:
        raise CliError(f"--benign-anchors: the {readout} read-out learns from none")
    anchors = benign_anchors(readout)
    if not anchors and readout_class(readout).learns_from_anchors:
        where = data_dir() / BENIGN_FILE
        if with_anchors:
            raise CliError(f"--benign-anchors: no {where} (run `valueguard data pull`)")
        click.echo(f"warning: no benign anchors ({where} is missing: `valueguard data pull` fetches it); the "
                   f"{readout} read-out is fitted without them and intervenes more on plain helpful answers", err=True)
    return anchors


class CliError(ValueGuardError, click.ClickException):
    """A command that cannot go on: printed as `error: ...` on stderr, exit code 2."""

    exit_code = EXIT_ERROR

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is when a record comes (click's test runner swaps it per invocation)."""

    @property
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
    from valueguard.estimation.estimator import ValueEstimator
    from valueguard.index.manifest import ValueIndexError

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
