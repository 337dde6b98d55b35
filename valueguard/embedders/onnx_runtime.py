"""OnnxEmbedder: query embeddings through onnxruntime, int8 (the default backend) or fp32.

It answers to the same `model_id` as the sentence-transformers model it was exported from, so an index built
with `SentenceTransformerEmbedder` (fp32 vectors) loads with it; only the queries go through ONNX. The export
(valueguard/embedders/onnx_export.py) happens once, normally at `valueguard index build`.

One text per forward pass, always. int8 dynamic quantisation scales activations per tensor, so in a padded
batch a text's embedding would depend on its batch-mates (cosine 0.965 at worst, measured); alone, it depends
on the text only, and a guard gives the same verdict for the same text however calls arrive. Batching would
not be faster anyway: on this 2-core CPU 16 texts in one batch took 1.5x as long as 16 single passes (padding,
and activations that outgrow the L2 cache). Several texts in one call run as single-threaded passes side by side,
one per core; one text runs on all cores. Pooling is what sentence-transformers does: mean over the tokens,
then L2 normalisation, with the same tokenizer truncating to the same max_seq_length.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from valueguard.config import default_model, default_threads, models_dir
from valueguard.embedders.base import normalize_rows
from valueguard.logs import get_logger

INSTALL_HINT = "the ONNX backend needs onnxruntime: pip install onnxruntime (a dependency of valueguard)"
log = get_logger("valueguard.onnx")
_export_lock = threading.Lock()
# An idle pool thread spins this long before it sleeps. Measured at 1,000 characters (embed p50, idle machine /
# another process busy on one core): never 15.1 / 18.1 ms, 10 us 13.4 / 17.8, 20 us 12.9 / 22.8, 1 ms 12.9 / 30.6.
# A guard shares its machine with the app it guards, so the setting that holds up under load wins.
SPIN_US = 10


def _import_ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return onnxruntime


def export_dir(model_id: str, cache_dir: str | Path | None = None) -> Path:
    from valueguard.embedders.onnx_export import export_slug

    return (Path(cache_dir) if cache_dir is not None else models_dir()) / export_slug(model_id)


def ensure_export(model_id: str | None = None, cache_dir: str | Path | None = None, *,
                  offline: bool = False) -> Path:
    """The export folder of `model_id`, exporting it first when it is not there (minutes of torch work).
    `offline`: export from local files only (the bundled model, the hub's cache), never the network."""
    model_id = model_id or default_model()
    out = export_dir(model_id, cache_dir)
    with _export_lock:
        if (out / "meta.json").is_file():
            return out
        from valueguard.embedders.onnx_export import export_model

        log.info("onnx export started", model=model_id, dir=str(out))
        start = time.perf_counter()
        meta = export_model(model_id, out, local_files_only=offline)
        OnnxEmbedder.exports += 1
        log.info("onnx export done", model=model_id, seconds=round(time.perf_counter() - start, 1),
                 fused=meta.get("fused"))
    return out


class OnnxEmbedder:
    """Embedder over the ONNX export of a sentence-transformers model. `quantize=True` (default): int8.

    `threads`: onnxruntime intra-op threads for one forward pass (default: physical cores, or
    $VALUEGUARD_THREADS). `spin_us`: how long an idle pool thread spins before it sleeps (0: never spins)."""

    exports = 0  # how many exports this process ran (the tests check the cache with it)

    def __init__(self, model: str | None = None, *, quantize: bool = True, cache_dir: str | Path | None = None,
                 threads: int | None = None, spin_us: int = SPIN_US) -> None:
        _import_ort()
        self.model_id = model or default_model()
        self.quantize = quantize
        self.backend = "onnx-int8" if quantize else "onnx-fp32"
        self.threads = threads or default_threads()
        self.spin_us = spin_us
        self.export_dir = export_dir(self.model_id, cache_dir)
        self._cache_dir = cache_dir
        self._session: Any = None
        self._pool: Any = None  # (thread pool, single-threaded session) for several texts, made on first use
        self._single: Any = None
        self._tokenizer: Any = None
        self._meta: dict = {}
        self._short_tokenizers: dict[int, Any] = {}  # max tokens -> a tokenizer truncating there (pairs only)
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        return self.export_dir / ("model-int8.onnx" if self.quantize else "model-fp32.onnx")

    def _load(self):
        if self._session is not None:  # the common case, without the lock
            return self._session
        with self._lock:
            if self._session is not None:
                return self._session
            if not (self.export_dir / "meta.json").is_file():
                log.warning("onnx export missing", model=self.model_id, hint="valueguard index build exports it")
                # At check time: never the network (docs/reliability.md); `index build` exports with it.
                ensure_export(self.model_id, self._cache_dir, offline=True)
            meta = json.loads((self.export_dir / "meta.json").read_text())
            tok = self._new_tokenizer(meta["max_seq_length"])
            self._session = self._new_session(self.threads)
            self._tokenizer, self._meta = tok, meta
            return self._session

    def _new_session(self, threads: int):
        ort = _import_ort()
        from valueguard.embedders.onnx_export import DISABLED_SESSION_FUSIONS

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.spin_us:
            opts.add_session_config_entry("session.intra_op.spin_duration_us", str(self.spin_us))
        else:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"],
                                    disabled_optimizers=DISABLED_SESSION_FUSIONS)

    @property
    def dimension(self) -> int:
        self._load()
        return int(self._meta["dimension"])

    @property
    def max_seq_length(self) -> int:
        self._load()
        return int(self._meta["max_seq_length"])

    def tokenize(self, text: str, pair: str | None = None) -> dict[str, np.ndarray]:
        """The model's inputs for one text (same preprocessing as sentence-transformers), or for a pair of texts
        as one input of two segments (token types 0 and 1), truncated longest first."""
        return self._inputs(self._encode(text, pair))

    def _encode(self, text: str, pair: str | None, max_tokens: int | None = None):
        self._load()
        if self._meta.get("do_lower_case"):
            text, pair = text.lower(), pair.lower() if pair is not None else None
        tok = self._tokenizer if max_tokens is None else self._short_tokenizer(max_tokens)
        return tok.encode(text) if pair is None else tok.encode(text, pair)

    def _new_tokenizer(self, max_length: int):
        """The export's tokenizer, truncating at `max_length` tokens, unpadded."""
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(self.export_dir / "tokenizer.json"))
        tok.enable_truncation(max_length=max_length)
        tok.no_padding()
        return tok

    def _short_tokenizer(self, max_tokens: int):
        """A tokenizer of its own for a shorter truncation: the shared one is never re-configured, because
        threads may be encoding with it."""
        max_tokens = min(int(max_tokens), int(self._meta["max_seq_length"]))
        tok = self._short_tokenizers.get(max_tokens)  # the common case, without the lock (as in _load)
        if tok is None:
            with self._lock:
                tok = self._short_tokenizers.get(max_tokens)
                if tok is None:
                    tok = self._short_tokenizers[max_tokens] = self._new_tokenizer(max_tokens)
        return tok

    def _inputs(self, enc) -> dict[str, np.ndarray]:
        arrays = {
            "input_ids": np.array([enc.ids], dtype=np.int64),
            "attention_mask": np.array([enc.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([enc.type_ids], dtype=np.int64),
        }
        return {n: arrays[n] for n in self._meta["input_names"]}

    def _pooled(self, session, text: str, pair: str | None = None, segments: bool = False,
                max_tokens: int | None = None) -> np.ndarray:
        """One forward pass, one text, no padding: the row depends on this text only. Mean-pooled, not normed;
        `segments` (a pair only): each segment's tokens pooled on their own, the first segment's mean then the
        second's (the tokenizer's token types say which token is whose, whatever inputs the model takes)."""
        enc = self._encode(text, pair, max_tokens)
        hidden = session.run(["last_hidden_state"], self._inputs(enc))[0][0]
        if not segments:
            return hidden.mean(axis=0)
        types = np.asarray(enc.type_ids)
        return np.concatenate([hidden[types == 0].mean(axis=0), hidden[types == 1].mean(axis=0)])

    def _workers(self):
        """For several texts: `threads` single-threaded passes side by side (182 texts/s against 150 for one
        2-thread pass after another, measured). Same bits as the 2-thread session (checked on 300 texts)."""
        with self._lock:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="valueguard-onnx")
                self._single = self._new_session(threads=1)
            return self._pool, self._single

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return normalize_rows(self._embed_all([(t, None) for t in texts]))

    def embed_pairs(self, firsts: Sequence[str], seconds: Sequence[str]) -> np.ndarray:
        """Each (first, second) read as one input of two segments, as a cross-encoder reads a (prompt, response)
        pair: (n, d) unit rows."""
        return normalize_rows(self._embed_all(_pairs(firsts, seconds)))

    def embed_pair_segments(self, firsts: Sequence[str], seconds: Sequence[str],
                            max_tokens: int | None = None) -> np.ndarray:
        """Each pair read as `embed_pairs` reads it (one input, the segments attending to each other), then each
        segment's tokens pooled on their own: (n, 2d) rows, the first segment's unit vector then the second's.
        `max_tokens`: truncate each pair there (longest segment first) instead of at the model's maximum."""
        rows = self._embed_all(_pairs(firsts, seconds), segments=True, max_tokens=max_tokens)
        d = self.dimension
        return np.hstack([normalize_rows(rows[:, :d]), normalize_rows(rows[:, d:])])

    def _embed_all(self, items: Sequence[tuple[str, str | None]], segments: bool = False,
                   max_tokens: int | None = None) -> np.ndarray:
        """Each item's pooled row (see `_pooled`), not normed."""
        session = self._load()
        out = np.zeros((len(items), self.dimension * (2 if segments else 1)), dtype=np.float32)
        if len(items) > 1 and self.threads > 1:
            pool, single = self._workers()
            rows = pool.map(lambda item: self._pooled(single, item[0], item[1], segments, max_tokens), items)
        else:
            rows = (self._pooled(session, item[0], item[1], segments, max_tokens) for item in items)
        for i, row in enumerate(rows):
            out[i] = row
        return out

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.model_id!r}, backend={self.backend!r}, threads={self.threads})"


def _pairs(firsts: Sequence[str], seconds: Sequence[str]) -> list[tuple[str, str | None]]:
    if len(firsts) != len(seconds):
        raise ValueError("firsts and seconds must have the same length")
    return list(zip(firsts, seconds))
