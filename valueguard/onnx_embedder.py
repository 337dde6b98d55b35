"""OnnxEmbedder: a sentence-transformers model exported once to ONNX (fp32 or dynamically quantised int8).

It answers to the same `model_id` as the sentence-transformers model it was exported from, so an index built
with `SentenceTransformerEmbedder` (fp32 vectors) loads with it; only the queries go through ONNX.

The export (torch.onnx.export of the underlying transformer, then onnxruntime's `quantize_dynamic` for int8,
QInt8 weights per channel: per-tensor scales lose too much, mean cosine 0.95 vs 0.99 with fp32 on FULCRA)
runs once and is cached under `data_dir()/models/<slug>`, keyed by the source model and `EXPORT_VERSION`.
Pooling is what the sentence-transformers model does: mean over the attention mask, then L2 normalisation,
with the same tokenizer truncating to the same max_seq_length.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from valueguard.config import DEFAULT_MODEL, data_dir, default_model
from valueguard.embedding import _bundled_model_path, _quiet_transformers, normalize_rows

EXPORT_VERSION = 1
OPSET = 17
INSTALL_HINT = "OnnxEmbedder needs onnxruntime: pip install 'valueguard[onnx]'"


def _import_ort():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return onnxruntime


def physical_cores() -> int:
    """Physical cores among the CPUs this process may run on (hyperthread siblings count once)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, (os.cpu_count() or 2) // 2)
    cores = set()
    for cpu in cpus:
        topo = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            cores.add(("?", str(cpu)))
    return max(1, len(cores))


def _resolve_source(model_id: str) -> str:
    if model_id == DEFAULT_MODEL and (bundled := _bundled_model_path()) is not None:
        return str(bundled)
    return model_id


def _slug(model_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.replace("/", "__"))
    key = hashlib.sha256(f"{model_id}\x00{_resolve_source(model_id)}\x00{EXPORT_VERSION}".encode()).hexdigest()[:10]
    return f"{safe}-v{EXPORT_VERSION}-{key}"


class _Encoder:
    """Wraps the HF model so the ONNX graph's single output is last_hidden_state."""

    @staticmethod
    def make(auto_model, names: list[str]):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = auto_model

            def forward(self, *inputs):
                return self.model(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

        return Wrapped().eval()


def _pooling_mode(pooling) -> str:
    config = pooling.get_config_dict()
    if "pooling_mode" in config:  # sentence-transformers >= 6
        mode = config["pooling_mode"]
        return mode if isinstance(mode, str) else "+".join(mode)
    active = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in config.items()
              if k.startswith("pooling_mode_") and v]
    return "+".join(active)


def export_model(model_id: str, out_dir: Path, *, per_channel: bool = True) -> Path:
    """Export `model_id` to out_dir (model-fp32.onnx, model-int8.onnx, tokenizer.json, meta.json). Atomic."""
    ort = _import_ort()  # fail early, before loading torch
    del ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from sentence_transformers import SentenceTransformer

    source = _resolve_source(model_id)
    if Path(source).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_transformers()
    st = SentenceTransformer(source, device="cpu")
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
        raise ValueError(f"{model_id}: OnnxEmbedder supports Transformer -> Pooling [-> Normalize] only, not {kinds}")
    if _pooling_mode(modules[1]) != "mean":
        raise ValueError(f"{model_id}: OnnxEmbedder supports mean pooling only")
    normalize = "Normalize" in kinds
    transformer = modules[0]
    auto_model, tokenizer = transformer.auto_model.eval(), transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_id}: OnnxEmbedder needs a fast tokenizer")
    max_len = int(st.max_seq_length)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    try:
        sample = tokenizer(["a sample", "another, longer sample text"], padding=True, return_tensors="pt")
        args = tuple(sample[n] for n in names)
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        axes["last_hidden_state"] = {0: "batch", 1: "sequence"}
        with torch.no_grad():
            torch.onnx.export(
                _Encoder.make(auto_model, names), args, str(tmp / "model-fp32.onnx"), input_names=names,
                output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
                dynamo=False,
            )
        quantize_dynamic(str(tmp / "model-fp32.onnx"), str(tmp / "model-int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=per_channel)
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        dimension = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
        meta = {
            "model_id": model_id, "source": source, "export_version": EXPORT_VERSION, "opset": OPSET,
            "max_seq_length": max_len, "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
            "pad_token_id": int(tokenizer.pad_token_id), "pad_token": tokenizer.pad_token, "input_names": names,
            "pooling": "mean", "normalize": normalize, "dimension": int(dimension),
            "int8": {"weight_type": "QInt8", "per_channel": per_channel},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if out_dir.exists():  # another process won the race
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


class OnnxEmbedder:
    """Embedder over an ONNX export of a sentence-transformers model. `quantize=True` (default): int8 weights."""

    exports = 0  # how many exports this process ran (the tests check the cache with it)

    def __init__(self, model: str | None = None, *, quantize: bool = True, cache_dir: str | Path | None = None,
                 batch_size: int = 32, threads: int | None = None) -> None:
        _import_ort()
        self.model_id = model or default_model()
        self.quantize = quantize
        self.backend = "onnx-int8" if quantize else "onnx-fp32"
        self.batch_size = batch_size
        self.threads = threads or physical_cores()
        root = Path(cache_dir) if cache_dir is not None else data_dir() / "models"
        self.export_dir = root / _slug(self.model_id)
        self._session = None
        self._tokenizer = None
        self._meta: dict = {}
        self._lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        return self.export_dir / ("model-int8.onnx" if self.quantize else "model-fp32.onnx")

    def _load(self):
        with self._lock:
            if self._session is not None:
                return self._session
            ort = _import_ort()
            from tokenizers import Tokenizer

            if not (self.export_dir / "meta.json").is_file():
                export_model(self.model_id, self.export_dir)
                type(self).exports += 1
            meta = json.loads((self.export_dir / "meta.json").read_text())
            tok = Tokenizer.from_file(str(self.export_dir / "tokenizer.json"))
            tok.enable_truncation(max_length=meta["max_seq_length"])
            tok.enable_padding(pad_id=meta["pad_token_id"], pad_token=meta["pad_token"])
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self._session = ort.InferenceSession(str(self.model_path), opts, providers=["CPUExecutionProvider"])
            self._tokenizer, self._meta = tok, meta
            return self._session

    @property
    def dimension(self) -> int:
        self._load()
        return int(self._meta["dimension"])

    @property
    def max_seq_length(self) -> int:
        self._load()
        return int(self._meta["max_seq_length"])

    def _embed_batch(self, session, texts: list[str]) -> np.ndarray:
        # Same preprocessing as sentence-transformers: lowercase only when the model says so, then tokenize.
        if self._meta.get("do_lower_case"):
            texts = [t.lower() for t in texts]
        enc = self._tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
        }
        feeds = {n: arrays[n] for n in self._meta["input_names"]}
        hidden = session.run(["last_hidden_state"], feeds)[0]
        mask = arrays["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        return pooled.astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        session = self._load()
        texts = list(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(texts), self.batch_size):
            idx = order[start:start + self.batch_size]
            out[idx] = self._embed_batch(session, [texts[i] for i in idx])
        return normalize_rows(out)

    def __repr__(self) -> str:
        return f"OnnxEmbedder({self.model_id!r}, backend={self.backend!r})"
