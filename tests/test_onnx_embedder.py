"""OnnxEmbedder: the real MiniLM model, exported once per session into a tmp cache dir, against the fp32 model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from valueguard.embedding import Embedder, SentenceTransformerEmbedder
from valueguard.estimator import ValueEstimator
from valueguard.index import format_text
from valueguard.onnx_embedder import OnnxEmbedder

# Measured on all 4,988 FULCRA responses (benchmarks/onnx_quality.py): int8 per-channel mean cosine ~0.992,
# min ~0.97; fp32 ONNX matches to ~1e-6.
INT8_MIN_COS = 0.95
FP32_MIN_COS = 0.99


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("onnx-cache")


@pytest.fixture(scope="module")
def onnx_int8(onnx_cache: Path) -> OnnxEmbedder:
    before = OnnxEmbedder.exports
    e = OnnxEmbedder(cache_dir=onnx_cache)
    e.embed(["warm up"])  # runs the one export of this module
    assert OnnxEmbedder.exports == before + 1
    return e


@pytest.fixture(scope="module")
def onnx_fp32(onnx_cache: Path, onnx_int8: OnnxEmbedder) -> OnnxEmbedder:
    return OnnxEmbedder(cache_dir=onnx_cache, quantize=False)


@pytest.fixture(scope="module")
def responses(reference_full) -> list[str]:
    rng = np.random.default_rng(3)
    recs = reference_full.records
    return [format_text(recs[i].response, None, "response") for i in rng.choice(len(recs), 120, replace=False)]


def test_interface(onnx_int8: OnnxEmbedder, onnx_fp32: OnnxEmbedder, embedder: SentenceTransformerEmbedder):
    assert isinstance(onnx_int8, Embedder)
    assert onnx_int8.model_id == onnx_fp32.model_id == embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (onnx_int8.backend, onnx_fp32.backend) == ("onnx-int8", "onnx-fp32")
    assert onnx_int8.dimension == 384
    assert onnx_int8.max_seq_length == 256


@pytest.mark.parametrize("which", ["onnx_int8", "onnx_fp32"])
def test_shape_dtype_unit_norm(request, which: str):
    e = request.getfixturevalue(which)
    out = e.embed(["one", "two words", "a somewhat longer third sentence about honesty"])
    assert out.shape == (3, 384) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    empty = e.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


def test_order_and_batching_do_not_change_rows(onnx_fp32: OnnxEmbedder, onnx_int8: OnnxEmbedder,
                                               responses: list[str]):
    """fp32: padding and order change nothing. int8: dynamic quantisation scales activations per batch,
    so a row moves a little with its batch-mates, but stays close to itself."""
    texts = responses[:40]
    together = onnx_fp32.embed(texts)
    alone = np.vstack([onnx_fp32.embed([t]) for t in texts[:8]])
    np.testing.assert_allclose(together[:8], alone, atol=1e-5)
    np.testing.assert_allclose(together, onnx_fp32.embed(texts[::-1])[::-1], atol=1e-5)
    q_together = onnx_int8.embed(texts)
    q_alone = np.vstack([onnx_int8.embed([t]) for t in texts[:8]])
    assert (q_together[:8] * q_alone).sum(axis=1).min() > 0.95  # measured min 0.965 (one of 8), typical 0.99
    np.testing.assert_allclose(q_together, onnx_int8.embed(texts[::-1])[::-1], atol=1e-5)  # same batches


def test_cosine_against_fp32_model(onnx_int8, onnx_fp32, embedder, responses):
    ref = embedder.embed(responses)
    cos_fp32 = (onnx_fp32.embed(responses) * ref).sum(axis=1)
    cos_int8 = (onnx_int8.embed(responses) * ref).sum(axis=1)
    assert cos_fp32.min() > FP32_MIN_COS
    assert cos_fp32.mean() > 0.9999
    assert cos_int8.min() > INT8_MIN_COS
    assert cos_int8.mean() > 0.98


def test_export_is_cached(onnx_cache: Path, onnx_int8: OnnxEmbedder):
    files = sorted(onnx_int8.export_dir.iterdir())
    assert {f.name for f in files} >= {"model-fp32.onnx", "model-int8.onnx", "tokenizer.json", "meta.json"}
    mtimes = {f.name: f.stat().st_mtime_ns for f in files}
    before = OnnxEmbedder.exports
    again = OnnxEmbedder(cache_dir=onnx_cache)
    again.embed(["no second export"])
    assert OnnxEmbedder.exports == before
    assert {f.name: f.stat().st_mtime_ns for f in again.export_dir.iterdir()} == mtimes
    assert list(onnx_cache.iterdir()) == [onnx_int8.export_dir]  # one export dir, no leftover temp dirs


def test_cache_dir_is_keyed_by_model_and_version(onnx_int8: OnnxEmbedder):
    name = onnx_int8.export_dir.name
    assert name.startswith("sentence-transformers__all-MiniLM-L6-v2-v")


def test_fp32_index_loads_with_onnx_embedder(index_dir: Path, estimator: ValueEstimator, onnx_int8, split):
    onnx_est = ValueEstimator.from_index(index_dir, embedder=onnx_int8)
    assert onnx_est.embedder is onnx_int8
    # One window each: with longer texts a different window may decide, which is not what this compares.
    heldout = [r for r in split[1].records if len(r.response) < 900][:60]
    resp, prompts = [r.response for r in heldout], [r.prompt for r in heldout]
    ref, got = estimator.estimate_batch(resp, prompts), onnx_est.estimate_batch(resp, prompts)
    overlap = np.mean([len({n.id for n in a.neighbors} & {n.id for n in b.neighbors}) / len(a.neighbors)
                       for a, b in zip(ref, got)])
    assert overlap > 0.8
    for a, b in zip(ref, got):
        assert abs(a.neighbors[0].similarity - b.neighbors[0].similarity) < 0.05
        diff = np.abs(np.array(list(a.values.values())) - np.array(list(b.values.values())))
        assert diff.mean() < 0.1


def test_long_text_is_truncated_like_the_fp32_model(onnx_fp32, onnx_int8, embedder, responses):
    long_text = " ".join(responses)  # far past 256 tokens
    assert len(long_text) > 20_000
    head = long_text[: len(long_text) // 2]  # same first 256 tokens, different tail
    ref = embedder.embed([long_text])[0]
    out = onnx_fp32.embed([long_text, head])
    assert float(out[0] @ ref) > 0.9999
    np.testing.assert_allclose(out[0], out[1], atol=1e-5)  # only the first max_seq_length tokens count
    assert float(onnx_int8.embed([long_text])[0] @ ref) > INT8_MIN_COS


def test_missing_onnxruntime_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install 'valueguard\[onnx\]'"):
        OnnxEmbedder()
