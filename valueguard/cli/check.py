"""`valueguard check` and `valueguard info`: one response's estimate, and what is installed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from valueguard import __version__
from valueguard.config import data_dir, default_index_dir, default_model
from valueguard.cli.shared import _emit, _estimator, cli, index_option, json_option


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




def _backend_or_error() -> str:
    from valueguard.embedders.backends import default_backend

    try:
        return default_backend()
    except ValueError as e:  # info still reports everything else
        return f"invalid: {e}"


@cli.command()
@index_option
@json_option
def info(index_dir: Path | None, as_json: bool) -> None:
    """Versions, the data directory's files, and the index's manifest."""
    from importlib.metadata import PackageNotFoundError, version

    from valueguard.estimation.value_index import ValueIndex
    from valueguard.index.manifest import ValueIndexError
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
    payload: dict[str, Any] = {
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
