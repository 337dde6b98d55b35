"""The default query backend through the command line, and what `import valueguard` / `--help` load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from valueguard.values import VALUE_NAMES

HEAVY = ("torch", "sentence_transformers", "transformers", "faiss", "onnxruntime", "onnx", "tokenizers")


@pytest.fixture()
def run(run, monkeypatch):
    monkeypatch.delenv("VALUEGUARD_BACKEND", raising=False)  # the real default, onnx-int8
    return run


@pytest.mark.model  # builds an index or embeds from the command line
def test_index_build_exports_the_query_model_and_check_uses_it(run, shared_data, tmp_path):
    small = tmp_path / "small.jsonl"
    small.write_text("".join((shared_data / "fulcra" / "trustworthy_data.dev.jsonl").open().readlines()[:25]))
    built = json.loads(run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json").stdout)
    assert built["query_backend"] == "onnx-int8"
    assert (Path(built["onnx_export"]) / "model-int8.onnx").is_file()
    r = run("check", "Sorry, but I can't help with that.", "--index", tmp_path / "idx", "--json")
    assert r.exit_code == 0, r.output
    assert list(json.loads(r.stdout)["values"]) == list(VALUE_NAMES)


@pytest.mark.model  # builds an index or embeds from the command line
def test_index_build_on_the_torch_backend_exports_nothing(run, shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEGUARD_BACKEND", "torch")
    small = tmp_path / "small.jsonl"
    small.write_text("".join((shared_data / "fulcra" / "trustworthy_data.dev.jsonl").open().readlines()[:5]))
    built = json.loads(run("index", "build", "--reference", small, "--out", tmp_path / "idx", "--json").stdout)
    assert built["query_backend"] == "torch" and "onnx_export" not in built


@pytest.mark.parametrize("code", [
    "import valueguard",                                                     # the package
    "import valueguard; valueguard.ValueVector",                             # a light public name
    "import sys; sys.argv = ['valueguard', '--help']\n"                      # the command's help
    "from valueguard.cli import main\ntry: main()\nexcept SystemExit: pass",
])
def test_import_and_help_load_no_heavy_library(code: str):
    probe = f"{code}\nimport sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
