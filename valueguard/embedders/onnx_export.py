"""One-time export of a sentence-transformers model to ONNX: fp32 (graph fused) and int8 (dynamic quantisation).

Runs at `valueguard index build` (or, when no export is there yet, at the first check, logged); the result is
cached under `models_dir()/<slug>` keyed by the source model and EXPORT_VERSION. Export time needs torch,
sentence-transformers, onnx and onnxruntime; run time (OnnxEmbedder) needs onnxruntime and tokenizers only.

Steps, each measured (README, "ONNX Runtime backend"):
1. torch.onnx.export of the transformer with *eager* attention: the SDPA graph of transformers >= 5 hides the
   attention pattern from onnxruntime's fusions (0 of 6 layers fused), the eager graph fuses fully.
2. onnxruntime.transformers.optimizer (model_type bert): Attention, EmbedLayerNormalization and BiasGelu fused,
   but not SkipLayerNormalization: its CPU kernel in onnxruntime 1.32 takes ~510 us on a 219x384 input where
   Add + LayerNormalization take ~55 us, which is ~6 ms of a 22 ms forward pass. The fused graph is checked
   against the torch model (cosine > 0.9999) and dropped for the plain export if it ever disagrees.
3. quantize_dynamic: int8 weights per output channel (per-tensor weight scales lose too much: mean cosine
   0.95 against 0.99), activations quantised at run time (QAttention, DynamicQuantizeMatMul).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np

from valueguard.config import DEFAULT_MODEL
from valueguard.embedders.sentence_transformers import bundled_model_path, quiet_transformers

EXPORT_VERSION = 2
OPSET = 17
# Model types whose graphs onnxruntime's BERT fusions are known to match (others get the plain export).
FUSABLE = {"bert"}
# The session must not re-create what step 2 left out on purpose.
DISABLED_SESSION_FUSIONS = ["SkipLayerNormFusion", "BiasSkipLayerNormFusion"]
_CHECK_TEXTS = ["a sample", "Another, longer sample text: with punctuation, numbers (42) and UPPER case.",
                "Sorry, I can't help with that request because it could hurt someone."]


def resolve_source(model_id: str) -> str:
    if model_id == DEFAULT_MODEL and (bundled := bundled_model_path()) is not None:
        return str(bundled)
    return model_id


def export_slug(model_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id.replace("/", "__"))
    key = hashlib.sha256(f"{model_id}\x00{resolve_source(model_id)}\x00{EXPORT_VERSION}".encode()).hexdigest()[:10]
    return f"{safe}-v{EXPORT_VERSION}-{key}"


def _pooling_mode(pooling) -> str:
    config = pooling.get_config_dict()
    if "pooling_mode" in config:  # sentence-transformers >= 6
        mode = config["pooling_mode"]
        return mode if isinstance(mode, str) else "+".join(mode)
    active = [k.removeprefix("pooling_mode_").removesuffix("_tokens") for k, v in config.items()
              if k.startswith("pooling_mode_") and v]
    return "+".join(active)


def _load_eager(source: str, local_files_only: bool = False):
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(source, device="cpu", model_kwargs={"attn_implementation": "eager"},
                                   local_files_only=local_files_only)
    except (TypeError, ValueError):  # an older sentence-transformers, or a model without eager attention
        return SentenceTransformer(source, device="cpu", local_files_only=local_files_only)


def _wrap(auto_model, names: list[str]):
    import torch

    class Encoder(torch.nn.Module):
        """The graph's single output is last_hidden_state; pooling stays in numpy."""

        def __init__(self) -> None:
            super().__init__()
            self.model = auto_model

        def forward(self, *inputs):
            return self.model(**dict(zip(names, inputs)), return_dict=True).last_hidden_state

    return Encoder().eval()


def _pooled(path: Path, tokenizer, names: list[str], texts: list[str]) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"],
                                   disabled_optimizers=DISABLED_SESSION_FUSIONS)
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="np")
    hidden = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
    mask = enc["attention_mask"][..., None].astype(np.float32)
    pooled = (hidden * mask).sum(axis=1) / mask.sum(axis=1)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def _fuse(raw: Path, out: Path, config, reference: np.ndarray, tokenizer, names: list[str]) -> dict:
    """Fused fp32 graph at `out` (or the plain one when fusion is not possible); returns what was fused."""
    if config.model_type in FUSABLE:
        try:
            from onnxruntime.transformers import optimizer
            from onnxruntime.transformers.fusion_options import FusionOptions

            options = FusionOptions("bert")
            options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = False
            fused = optimizer.optimize_model(str(raw), model_type="bert", num_heads=config.num_attention_heads,
                                             hidden_size=config.hidden_size, opt_level=0,
                                             optimization_options=options)
            fused.save_model_to_file(str(out))
            stats = {k: v for k, v in fused.get_fused_operator_statistics().items() if v}
            cos = (_pooled(out, tokenizer, names, _CHECK_TEXTS) * reference).sum(axis=1)
            if cos.min() > 0.9999:
                return stats
        except Exception:  # noqa: BLE001 - any failure here falls back to the plain graph, which was verified
            pass
    shutil.copyfile(raw, out)
    return {}


def export_model(model_id: str, out_dir: Path, *, per_channel: bool = True, local_files_only: bool = False) -> dict:
    """Export `model_id` to out_dir (model-fp32.onnx, model-int8.onnx, tokenizer.json, meta.json), atomically.
    `local_files_only`: from the bundled model or the hub's cache only, never the network (a check-time export).

    Returns the meta written to meta.json."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    source = resolve_source(model_id)
    if Path(source).is_dir():
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never trigger a hub look-up
    quiet_transformers()
    st = _load_eager(source, local_files_only)
    modules = list(st)
    kinds = [type(m).__name__ for m in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Transformer", "Pooling", "Normalize") for k in kinds):
        raise ValueError(f"{model_id}: the ONNX backend supports Transformer -> Pooling [-> Normalize] only, "
                         f"not {kinds}; use backend 'torch'")
    if _pooling_mode(modules[1]) != "mean":
        raise ValueError(f"{model_id}: the ONNX backend supports mean pooling only; use backend 'torch'")
    transformer = modules[0]
    auto_model, tokenizer = transformer.auto_model.eval(), transformer.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{model_id}: the ONNX backend needs a fast tokenizer; use backend 'torch'")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]
    reference = st.encode(_CHECK_TEXTS, normalize_embeddings=True, convert_to_numpy=True)

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".", dir=out_dir.parent))
    # The exporter and quantiser warn about things that do not apply here (tracing a constant padding test,
    # negative indices, "run pre-processing"); the export is checked against the torch model instead.
    quiet = warnings.catch_warnings()
    quiet.__enter__()
    warnings.simplefilter("ignore")
    logging.disable(logging.WARNING)
    # The quantiser warns through logging.warning(), which first gives a root logger without handlers a stderr
    # one (basicConfig) and leaves it there: every later event then printed twice, once by the application's
    # handler and once by root's (`index build` showed "onnx export done" twice). A NullHandler for the duration
    # leaves the root logger as the application had it.
    keep_root = logging.NullHandler()
    if not logging.root.handlers:
        logging.root.addHandler(keep_root)
    try:
        sample = tokenizer(["a sample", "another, longer sample text"], padding=True, return_tensors="pt")
        axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
        with torch.no_grad():
            torch.onnx.export(
                _wrap(auto_model, names), tuple(sample[n] for n in names), str(tmp / "raw.onnx"), input_names=names,
                output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True,
                dynamo=False,
            )
        fused = _fuse(tmp / "raw.onnx", tmp / "model-fp32.onnx", auto_model.config, reference, tokenizer, names)
        (tmp / "raw.onnx").unlink()
        # DefaultTensorType: the fused contrib ops carry no type information for the quantiser's shape inference.
        quantize_dynamic(str(tmp / "model-fp32.onnx"), str(tmp / "model-int8.onnx"), weight_type=QuantType.QInt8,
                         per_channel=per_channel, extra_options={"DefaultTensorType": 1})
        tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        dimension = (getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension)()
        meta = {
            "model_id": model_id, "source": source, "export_version": EXPORT_VERSION, "opset": OPSET,
            "max_seq_length": int(st.max_seq_length), "do_lower_case": bool(getattr(transformer, "do_lower_case", False)),
            "pad_token_id": int(tokenizer.pad_token_id), "pad_token": tokenizer.pad_token, "input_names": names,
            "pooling": "mean", "normalize": "Normalize" in kinds, "dimension": int(dimension), "fused": fused,
            "int8": {"weight_type": "QInt8", "per_channel": per_channel, "activations": "dynamic"},
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if out_dir.exists():  # another process won the race; its export is as good as ours
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        logging.root.removeHandler(keep_root)
        logging.disable(logging.NOTSET)
        quiet.__exit__(None, None, None)
    return meta
