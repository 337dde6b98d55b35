"""make_embedder and the backend setting: one factory, used by ValueEstimator.from_index / .default and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valueguard.embedders.backends import BACKEND_ENV, BACKENDS, DEFAULT_BACKEND, default_backend
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.embedders.backends import make_embedder
from valueguard.estimation.estimator import ValueEstimator
from valueguard.embedders.onnx_runtime import OnnxEmbedder


@pytest.fixture()
def no_backend_env(monkeypatch):
    monkeypatch.delenv(BACKEND_ENV, raising=False)  # the session pins torch (conftest); here the real default


@pytest.mark.parametrize("backend, cls, quantize", [
    ("onnx-int8", OnnxEmbedder, True),                 # the default
    ("onnx-fp32", OnnxEmbedder, False),                # same export, fp32 graph
    ("torch", SentenceTransformerEmbedder, None),      # sentence-transformers, as the index is built
])
def test_factory_makes_the_named_backend(backend: str, cls: type, quantize: bool | None):
    e = make_embedder(backend=backend)
    assert type(e) is cls and e.backend == backend
    assert e.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    if quantize is not None:
        assert e.quantize is quantize


def test_the_default_backend_is_onnx_int8(no_backend_env):
    assert DEFAULT_BACKEND == "onnx-int8" and default_backend() == "onnx-int8"
    assert make_embedder().backend == "onnx-int8"
    assert set(BACKENDS) == {"onnx-int8", "onnx-fp32", "torch"}


@pytest.mark.parametrize("env, expected", [
    ("onnx-fp32", "onnx-fp32"),  # the environment picks the backend
    ("torch", "torch"),
    ("", "onnx-int8"),           # empty means unset
])
def test_the_environment_sets_the_backend(monkeypatch, env: str, expected: str):
    monkeypatch.setenv(BACKEND_ENV, env)
    assert make_embedder().backend == expected


@pytest.mark.parametrize("where", ["argument", "environment"])
def test_an_unknown_backend_names_the_choices(monkeypatch, where: str):
    if where == "environment":
        monkeypatch.setenv(BACKEND_ENV, "onnx-int4")
    with pytest.raises(ValueError, match=r"unknown embedding backend 'onnx-int4': use one of onnx-int8, onnx-fp32, "
                                         r"torch"):
        make_embedder(backend="onnx-int4" if where == "argument" else None)


def test_options_reach_the_embedder():
    assert make_embedder(backend="onnx-int8", threads=1).threads == 1
    assert make_embedder(backend="torch", batch_size=7).batch_size == 7


@pytest.mark.parametrize("backend", ["onnx-int8", "onnx-fp32", "torch"])
def test_from_index_uses_the_factory(index_dir: Path, backend: str, split):
    est = ValueEstimator.from_index(index_dir, backend=backend)
    assert est.embedder.backend == backend and est.embedder.model_id == est.index.model
    rec = split[0].records[5]  # a row of the (fp32) index finds itself, whatever embeds the query
    top = est.estimate(rec.response, prompt=rec.prompt).neighbors[0]
    assert top.id == rec.id and top.similarity > 0.97


def test_from_index_without_a_backend_takes_the_default(no_backend_env, index_dir: Path, embedder, split):
    est = ValueEstimator.from_index(index_dir)
    assert isinstance(est.embedder, OnnxEmbedder) and est.embedder.backend == "onnx-int8"
    texts = [r.response for r in split[1].records[:20]]
    cos = (est.embedder.embed(texts) * embedder.embed(texts)).sum(axis=1)
    assert cos.min() > 0.95


def test_default_estimator_reads_the_environment(monkeypatch, index_dir: Path, tmp_path: Path):
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path))
    (tmp_path / "index").symlink_to(index_dir)  # DATA_DIR/index is the default index
    monkeypatch.setenv(BACKEND_ENV, "onnx-fp32")
    assert ValueEstimator.default().embedder.backend == "onnx-fp32"


def test_torch_backend_rows_are_unit_length(embedder):
    out = make_embedder(backend="torch").embed(["a", "b c"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
