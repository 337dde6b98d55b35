"""`valueguard data pull`: the FULCRA reference files, from a mirror or upstream, verified."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from valueguard.config import data_dir
from valueguard.cli.shared import CliError, _emit, cli, json_option


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
