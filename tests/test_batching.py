"""MicroBatcher: concurrent callers coalesce into one embed call, each gets its own rows or its own exception."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from valueguard.batching import MicroBatcher
from valueguard.embedding import Embedder, make_embedder
from valueguard.estimator import ValueEstimator


@pytest.fixture(scope="module")
def int8():
    return make_embedder(backend="onnx-int8")


@pytest.fixture(scope="module")
def texts(split) -> list[str]:
    return [r.response for r in split[1].records[:48]]


def run_concurrently(fn, args: list, *, start_together: bool = True) -> list:
    """Each arg on its own thread, all released at once; returns results (or the exception raised) in order."""
    out: list = [None] * len(args)
    barrier = threading.Barrier(len(args))

    def work(i: int) -> None:
        if start_together:
            barrier.wait()
        try:
            out[i] = fn(args[i])
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[i] = e

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


@pytest.mark.parametrize("backend, callers, per_call, max_wait_ms", [
    ("onnx-int8", 8, 1, 20.0),   # the default backend: one text each, a window long enough to coalesce
    ("onnx-int8", 6, 3, 0.0),    # several texts a call, no window (batches form while one runs)
    ("torch", 8, 2, 20.0),       # a backend that really batches: padding changes rows by ~1e-7 only
])
def test_each_caller_gets_its_own_rows(int8, texts, embedder, backend, callers, per_call, max_wait_ms):
    inner = int8 if backend == "onnx-int8" else embedder
    batcher = MicroBatcher(inner, max_batch=64, max_wait_ms=max_wait_ms)
    assert isinstance(batcher, Embedder) and batcher.model_id == inner.model_id and batcher.backend == backend
    calls = [texts[i * per_call:(i + 1) * per_call] for i in range(callers)]
    got = run_concurrently(batcher.embed, calls)
    for call, rows in zip(calls, got):
        expected = inner.embed(call)
        assert rows.shape == (per_call, 384)
        if backend == "onnx-int8":
            np.testing.assert_array_equal(rows, expected)  # batch-invariant: bit for bit
        else:
            np.testing.assert_allclose(rows, expected, atol=1e-5)
    assert batcher.requests == callers and batcher.calls < callers  # at least two calls were coalesced


def test_max_batch_bounds_each_call(int8, texts):
    sizes = []

    class Sizes:  # the real embedder, with the size of each call it gets noted
        model_id, backend = int8.model_id, int8.backend

        def embed(self, batch):
            sizes.append(len(batch))
            return int8.embed(batch)

    batcher = MicroBatcher(Sizes(), max_batch=3, max_wait_ms=20.0)
    got = run_concurrently(lambda t: batcher.embed([t]), texts[:9])
    assert all(isinstance(r, np.ndarray) for r in got) and max(sizes) <= 3 and sum(sizes) == 9


def test_an_exception_reaches_only_the_caller_whose_texts_raised(int8, texts):
    batcher = MicroBatcher(int8, max_batch=64, max_wait_ms=30.0)
    calls = [[texts[0]], [texts[1], None], [texts[2]], [None], [texts[3], texts[4]]]  # None: tokenizer TypeError
    got = run_concurrently(batcher.embed, calls)
    for call, result in zip(calls, got):
        if None in call:
            assert isinstance(result, TypeError)
        else:
            np.testing.assert_array_equal(result, int8.embed(call))


def test_empty_and_sequential_calls(int8, texts):
    batcher = MicroBatcher(int8)
    assert batcher.embed([]).shape == (0, 384)
    for t in texts[:3]:  # a lone caller leads at once: one call each, nothing waits
        np.testing.assert_array_equal(batcher.embed([t]), int8.embed([t]))
    assert batcher.calls == 3 and batcher.dimension == 384  # the wrapped embedder's attributes pass through


def test_bad_max_batch_is_refused(int8):
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(int8, max_batch=0)


def test_an_estimator_over_a_batcher_gives_the_same_estimates(index_dir, int8, split):
    """Concurrent guarded calls through a batcher: same values and evidence as one call at a time."""
    plain = ValueEstimator.from_index(index_dir, embedder=int8, cache_size=0)
    batched = ValueEstimator.from_index(index_dir, embedder=MicroBatcher(int8, max_wait_ms=10.0), cache_size=0)
    recs = split[1].records[100:112]
    got = run_concurrently(lambda r: batched.estimate(r.response, r.prompt), recs)
    for rec, est in zip(recs, got):
        ref = plain.estimate(rec.response, rec.prompt)
        np.testing.assert_array_equal(est.values.to_array(), ref.values.to_array())
        assert [n.id for n in est.neighbors] == [n.id for n in ref.neighbors]
