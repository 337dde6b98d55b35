"""Embedders: a batch of texts in, an L2-normalised float32 matrix out (base.Embedder); backends.py holds the
backend table and `make_embedder`; sentence_transformers.py (torch) and onnx_runtime.py / onnx_export.py (ONNX) are
the backends."""
