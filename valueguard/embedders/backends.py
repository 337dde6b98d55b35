"""The backend table: how queries are embedded. Adding a backend is one factory here (and its module).

Query embeddings come from onnx-int8 by default because it holds quality (violation AP within 0.01 of fp32) at
about half the latency: README, "ONNX Runtime backend". The index is always built in fp32. The ONNX backends
answer to the same model id as the torch model, so they query an index built in fp32 by torch.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from valueguard.config import default_model
from valueguard.embedders.base import Embedder

BACKEND_ENV = "VALUEGUARD_BACKEND"
DEFAULT_BACKEND = "onnx-int8"


def _torch(model: str | None, **options: Any) -> Embedder:
    from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(model, **options)


def _onnx(quantize: bool) -> Callable[..., Embedder]:
    def make(model: str | None, **options: Any) -> Embedder:
        from valueguard.embedders.onnx_runtime import OnnxEmbedder

        return OnnxEmbedder(model, quantize=quantize, **options)
    return make


# name -> factory(model, **options); the first is the default's place in help texts, not the default itself.
BACKEND_FACTORIES: dict[str, Callable[..., Embedder]] = {
    "onnx-int8": _onnx(True),
    "onnx-fp32": _onnx(False),
    "torch": _torch,
}
BACKENDS = tuple(BACKEND_FACTORIES)


def check_backend(backend: str) -> str:
    """`backend` when it is one of BACKENDS; a ValueError naming them otherwise."""
    if backend not in BACKEND_FACTORIES:
        raise ValueError(f"unknown embedding backend {backend!r}: use one of {', '.join(BACKENDS)} "
                         f"(${BACKEND_ENV} or backend=)")
    return backend


def default_backend() -> str:
    """$VALUEGUARD_BACKEND, else onnx-int8."""
    return check_backend(os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND)


def make_embedder(model: str | None = None, backend: str | None = None, **options: Any) -> Embedder:
    """The query embedder for `model` (default: $VALUEGUARD_MODEL or all-MiniLM-L6-v2) on `backend`.

    backend: "onnx-int8" (default; $VALUEGUARD_BACKEND), "onnx-fp32" or "torch" (sentence-transformers).
    `options` go to the embedder (ONNX: cache_dir, threads, spin_us; torch: batch_size, device).
    """
    return BACKEND_FACTORIES[check_backend(backend or default_backend())](model, **options)


def make_index_embedder(model: str | None = None) -> Embedder:
    """The embedder for building an index: fp32, through the model's ONNX export where it has one.

    The export is made at index build anyway (the queries need it), and its fp32 graph gives the vectors of
    sentence-transformers to within 4e-7 while running 2.5x faster on 2 cores (one unpadded pass per text, two
    side by side; docs/benchmarks.md). A model the ONNX backend cannot run is embedded by sentence-transformers.
    """
    from valueguard.embedders.onnx_runtime import OnnxEmbedder, ensure_export

    model = model or default_model()
    try:
        ensure_export(model)
    except ValueError:
        return _torch(model)
    return OnnxEmbedder(model, quantize=False)
