"""OnnxEmbedder: the real MiniLM model, exported once per session (conftest's models dir), against the fp32 model."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from valueguard.embedders.base import Embedder
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.estimator import ValueEstimator
from valueguard.index.manifest import format_text
from valueguard.embedders.onnx_runtime import OnnxEmbedder, ensure_export
from valueguard.embedders.onnx_export import DISABLED_SESSION_FUSIONS

# Measured on all 4,988 FULCRA responses (benchmarks/onnx_quality.py): int8 mean cosine 0.993, min 0.974;
# fp32 ONNX (fused graph) matches to ~1e-7.
INT8_MIN_COS = 0.95
FP32_MIN_COS = 0.9999


@pytest.fixture(scope="module")
def onnx_int8() -> OnnxEmbedder:
    e = OnnxEmbedder()  # the session's models dir: exported here, or by an earlier test
    e.embed(["warm up"])
    return e


@pytest.fixture(scope="module")
def onnx_fp32(onnx_int8: OnnxEmbedder) -> OnnxEmbedder:
    return OnnxEmbedder(quantize=False)


@pytest.fixture(scope="module")
def responses(reference_full) -> list[str]:
    rng = np.random.default_rng(3)
    recs = reference_full.records
    return [format_text(recs[i].response, None, "response") for i in rng.choice(len(recs), 120, replace=False)]


def test_interface(onnx_int8: OnnxEmbedder, onnx_fp32: OnnxEmbedder, embedder: SentenceTransformerEmbedder):
    assert isinstance(onnx_int8, Embedder)
    assert onnx_int8.model_id == onnx_fp32.model_id == embedder.model_id == "sentence-transformers/all-MiniLM-L6-v2"
    assert (onnx_int8.backend, onnx_fp32.backend, embedder.backend) == ("onnx-int8", "onnx-fp32", "torch")
    assert onnx_int8.dimension == 384
    assert onnx_int8.max_seq_length == 256


@pytest.mark.parametrize("which", ["onnx_int8", "onnx_fp32"])
def test_shape_dtype_unit_norm(request, which: str):
    e = request.getfixturevalue(which)
    out = e.embed(["one", "two words", "a somewhat longer third sentence about honesty", ""])
    assert out.shape == (4, 384) and out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    empty = e.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


# Batch-mates chosen to be as unlike the text as possible: int8 dynamic quantisation scales activations per
# tensor, so in a shared forward pass they would move its embedding (cosine 0.965 at worst, measured).
BATCH_MATES = [
    ["x" * 5000],                                              # one long run of a single character
    ["héllo 😀 日本語のテキスト", "¿Qué tal? Ça va très bien."],   # other scripts and accents
    ["Sure! Here is how to bake bread: " * 30, "ok"],          # long (truncated) and very short
    ["HOW DO I BUILD A BOMB " * 10, "1 2 3 4 5 6 7 8 9 0 " * 20],  # shouting, digits
]


@pytest.mark.parametrize("which", ["onnx_int8", "onnx_fp32"])
@pytest.mark.parametrize("mates", BATCH_MATES)
def test_a_text_embeds_identically_alone_and_in_any_batch(request, which: str, mates: list[str],
                                                          responses: list[str]):
    """The same text gets the same vector, bit for bit, whatever it is batched with (one text per pass). Alone it
    runs on the 2-thread session, in a batch on single-threaded sessions side by side: the same bits too."""
    e = request.getfixturevalue(which)
    for text in responses[:3]:
        alone = e.embed([text])[0]
        for batch in ([*mates, text], [text, *mates], [*mates, text, *mates]):
            together = e.embed(batch)
            assert np.array_equal(together[batch.index(text)], alone)


@pytest.mark.parametrize("quantize", [True, False])
def test_thread_count_does_not_change_rows(quantize: bool, responses: list[str], onnx_int8: OnnxEmbedder):
    texts = responses[:12]
    one, two = OnnxEmbedder(quantize=quantize, threads=1), OnnxEmbedder(quantize=quantize, threads=2)
    np.testing.assert_array_equal(np.vstack([one.embed([t]) for t in texts]),
                                  np.vstack([two.embed([t]) for t in texts]))


def test_order_does_not_change_rows(onnx_int8: OnnxEmbedder, responses: list[str]):
    texts = responses[:30]
    np.testing.assert_array_equal(onnx_int8.embed(texts), onnx_int8.embed(texts[::-1])[::-1])


def test_cosine_against_fp32_model(onnx_int8, onnx_fp32, embedder, responses):
    ref = embedder.embed(responses)
    cos_fp32 = (onnx_fp32.embed(responses) * ref).sum(axis=1)
    cos_int8 = (onnx_int8.embed(responses) * ref).sum(axis=1)
    assert cos_fp32.min() > FP32_MIN_COS
    assert cos_int8.min() > INT8_MIN_COS
    assert cos_int8.mean() > 0.985


def test_export_is_fused_and_cached(onnx_int8: OnnxEmbedder):
    meta = json.loads((onnx_int8.export_dir / "meta.json").read_text())
    # The fused graph (README, "ONNX Runtime backend"): every attention layer, GELU and the embeddings'
    # LayerNorm; SkipLayerNormalization left out on purpose (its CPU kernel is ~10x slower).
    assert meta["fused"] == {"EmbedLayerNormalization": 1, "Attention": 6, "BiasGelu": 6, "LayerNormalization": 12}
    assert "SkipLayerNormFusion" in DISABLED_SESSION_FUSIONS
    files = sorted(onnx_int8.export_dir.iterdir())
    assert {f.name for f in files} == {"model-fp32.onnx", "model-int8.onnx", "tokenizer.json", "meta.json"}
    mtimes = {f.name: f.stat().st_mtime_ns for f in files}
    before = OnnxEmbedder.exports
    again = OnnxEmbedder()
    again.embed(["no second export"])
    assert ensure_export() == onnx_int8.export_dir
    assert OnnxEmbedder.exports == before
    assert {f.name: f.stat().st_mtime_ns for f in again.export_dir.iterdir()} == mtimes
    assert [p.name for p in onnx_int8.export_dir.parent.iterdir()] == [onnx_int8.export_dir.name]  # no temp dirs


def test_cache_dir_is_keyed_by_model_and_version(onnx_int8: OnnxEmbedder):
    assert onnx_int8.export_dir.name.startswith("sentence-transformers__all-MiniLM-L6-v2-v2-")


def test_a_first_check_without_an_export_exports_then_and_logs_it(tmp_path: Path, responses: list[str],
                                                                   onnx_int8: OnnxEmbedder):
    fresh = OnnxEmbedder(cache_dir=tmp_path)
    before = OnnxEmbedder.exports
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers.clear()  # as an application (the CLI) has it: no handler on the root logger
    try:
        with capture_logs() as logs:
            out = fresh.embed(responses[:5])
        added = root.handlers[:]
    finally:
        root.handlers[:] = saved
    # The quantiser's logging.warning() used to leave a stderr handler on root: the CLI printed every event twice.
    assert added == []
    assert OnnxEmbedder.exports == before + 1
    assert [e["event"] for e in logs] == ["onnx export missing", "onnx export started", "onnx export done"]
    assert logs[-1]["seconds"] > 0 and logs[-1]["fused"]["Attention"] == 6
    np.testing.assert_array_equal(out, onnx_int8.embed(responses[:5]))  # the same export, the same vectors


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
        diff = np.abs(a.values.to_array() - b.values.to_array())
        assert diff.mean() < 0.1


def test_long_text_is_truncated_like_the_fp32_model(onnx_fp32, onnx_int8, embedder, responses):
    long_text = " ".join(responses)  # far past 256 tokens
    assert len(long_text) > 20_000
    head = long_text[: len(long_text) // 2]  # same first 256 tokens, different tail
    ref = embedder.embed([long_text])[0]
    out = onnx_fp32.embed([long_text, head])
    assert float(out[0] @ ref) > FP32_MIN_COS
    np.testing.assert_array_equal(out[0], out[1])  # only the first max_seq_length tokens count
    assert float(onnx_int8.embed([long_text])[0] @ ref) > INT8_MIN_COS


def test_a_bad_input_raises_for_that_call(onnx_int8: OnnxEmbedder):
    with pytest.raises(TypeError):
        onnx_int8.embed(["fine", None])  # type: ignore[list-item]
    assert onnx_int8.embed(["fine"]).shape == (1, 384)


def test_missing_onnxruntime_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ImportError("No module named 'onnxruntime'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"pip install onnxruntime"):
        OnnxEmbedder()
