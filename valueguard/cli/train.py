"""`valueguard train`: fit the pair read-out's stacker (what `make train` runs; the package ships its result)."""

from __future__ import annotations

from pathlib import Path

import click

from valueguard.cli.shared import CliError, _emit, anchors_option, cli, json_option, resolve_anchors
from valueguard.config import data_dir, default_model


@cli.command("train")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Reference file; repeatable. Default: every FULCRA file in the data directory.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for pair_stacker.npz and its manifest (default: the package's trained/ folder, which "
                   "`index build` reads).")
@click.option("--model", default=None, help="sentence-transformers model name or path (default: all-MiniLM-L6-v2).")
@anchors_option("Fit")
@json_option
def train(references: tuple[Path, ...], out: Path | None, model: str | None, with_anchors: bool | None,
          as_json: bool) -> None:
    """Fit the pair read-out's stacker on the reference data: five value-model fits out of fold and one
    (prompt, response) encoding per row; a few minutes on two cores."""
    from valueguard.embedders.backends import make_index_embedder
    from valueguard.estimation.train import train_pair_stacker
    from valueguard.reference import ReferenceSet, fulcra_files

    paths = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull`, or name files "
                       "with --reference")
    anchors = resolve_anchors("pair", with_anchors)
    result = train_pair_stacker(ReferenceSet.from_files(paths), make_index_embedder(model or default_model()), out,
                                anchors)
    payload = {"directory": str(result.directory), "rows": result.rows, "data_sha256": result.data_sha256,
               "sha256": result.sha256, "seconds": result.seconds}
    _emit(as_json, payload, f"trained the pair stacker on {result.rows} rows in {result.seconds:.0f} s: "
                            f"{result.directory}/pair_stacker.npz (sha256 {result.sha256[:12]})")
