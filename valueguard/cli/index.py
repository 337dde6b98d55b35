"""`valueguard index build`: embed the reference files, fit the read-out, write the index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from valueguard.config import data_dir, default_index_dir, default_model
from valueguard.estimation.readout import DEFAULT_READOUT, READOUTS
from valueguard.cli.shared import CliError, _emit, _progress, anchors_option, cli, json_option, resolve_anchors


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
@click.option("--readout", type=click.Choice(list(READOUTS)), default=DEFAULT_READOUT, show_default=True,
              help="How neighbours become values: 'pair' (the value model refined by the (prompt, response) pair "
                   "vector, measured best: docs/quality.md), 'model' (the value model alone) or 'knn' (the "
                   "neighbours' weighted mean).")
@click.option("--index-type", type=click.Choice(["flat", "ivf", "hnsw"]), default=None,
              help="FAISS index kind: 'flat' (exact), 'ivf' or 'hnsw' (approximate, for large reference sets; "
                   "docs/scale.md). Default: flat below 100,000 rows, hnsw from there.")
@anchors_option("Fit the pair read-out's stacker")
@click.option("--force", is_flag=True, help="Rebuild even if an up-to-date index is there.")
@json_option
@click.pass_context
def index_build(ctx: click.Context, references: tuple[Path, ...], out: Path | None, model: str | None,
                text_form: str, readout: str, index_type: str | None, with_anchors: bool | None, force: bool,
                as_json: bool) -> None:
    """Embed the reference data and write a verified index (cached: unchanged inputs are not rebuilt)."""
    from valueguard.embedders.backends import make_index_embedder
    from valueguard.estimation.value_index import build_cached
    from valueguard.reference import fulcra_files

    paths = list(references) or fulcra_files(data_dir())
    if not paths:
        raise CliError(f"no FULCRA files in {data_dir() / 'fulcra'}: run `valueguard data pull` "
                       "(or `valueguard data pull --from MIRROR`), or name files with --reference")
    out = out or default_index_dir()
    anchors = resolve_anchors(readout, with_anchors)
    try:
        result = build_cached(paths, out, make_index_embedder(model or default_model()),
                              text_form=text_form, readout=readout, index_type=index_type,  # type: ignore[arg-type]
                              force=force, anchors=anchors,
                              progress_factory=lambda n: _progress(n, "embedding", ctx.obj["quiet"]))
    except (ValueError, FileNotFoundError) as e:
        raise CliError(str(e)) from e
    m = result.index.manifest
    payload = {"index": str(out), "built": result.built, "rows": m.rows, "model": m.model,
               "text_form": m.text_form, "index_type": m.index_type, "index_params": m.index_params,
               "build_seconds": m.build_seconds, "duplicates_dropped": result.duplicates,
               "benign_anchors": len(anchors),
               "reference_files": [r.to_dict() for r in result.reports], **_export_for_queries(m.model)}
    if result.built:
        text = "\n".join([f"built {out}: {m.rows} rows, {m.model}, {m.text_form} form, "
                          f"{m.index_type} FAISS index, {m.build_seconds:.0f} s"]
                         + [f"  {r.describe()}" for r in result.reports]
                         + ([f"  pair stacker fitted with {len(anchors)} benign anchors"] if anchors else [])
                         + ([f"  {result.duplicates} duplicate pair(s) kept once"] if result.duplicates else []))
    else:
        text = f"index at {out} is up to date ({m.rows} rows, {m.model}, {m.index_type}); nothing to do (--force rebuilds)"
    _emit(as_json, payload, text)


def _export_for_queries(model: str) -> dict[str, Any]:
    """Queries are embedded by the default backend: its ONNX export is made now, so the first check is quick."""
    from valueguard.embedders.backends import default_backend

    backend = default_backend()
    if backend == "torch":
        return {"query_backend": backend}
    from valueguard.embedders.onnx_runtime import ensure_export

    try:
        return {"query_backend": backend, "onnx_export": str(ensure_export(model))}
    except ValueError as e:  # a model the ONNX backend cannot run; the index itself is fine
        click.echo(f"warning: {e} (set VALUEGUARD_BACKEND=torch for this model)", err=True)
        return {"query_backend": backend, "onnx_export": None}
