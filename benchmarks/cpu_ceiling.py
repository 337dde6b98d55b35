"""What this CPU can do for one forward pass of the embedding model: FLOPs against measured GEMM throughput.

Counts the multiply-adds of one all-MiniLM-L6-v2 forward pass at n tokens (6 layers, d=384, feed-forward
1536, 12 heads), then times the same GEMMs on their own through onnxruntime: int8 (DynamicQuantizeMatMul, what
the int8 graph runs for its projections) and fp32 (MatMul), at 1 and 2 threads. The sum of the GEMM times is a
floor for the forward pass: attention softmax, LayerNorm, GELU and pooling come on top. Writes
bench-results/cpu_ceiling.json.

    .venv/bin/python benchmarks/cpu_ceiling.py [--tokens 219]        (make bench runs it after bench_core.py)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

LAYERS, D, FF, HEADS = 6, 384, 1536, 12
# (K, N) of each projection in one layer: QKV packed (as the fused Attention has it), output, FFN in, FFN out.
SHAPES = [(D, 3 * D), (D, D), (D, FF), (FF, D)]


def flops(n: int) -> dict[str, float]:
    linear = LAYERS * sum(2 * n * k * m for k, m in SHAPES)
    attention = LAYERS * 2 * 2 * n * n * D  # QK^T and AV, all heads
    return {"linear": linear, "attention": attention, "total": linear + attention}


def _session(node, inputs, inits, threads: int):

    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)])
    from valueguard.embedders.onnx_runtime import SPIN_US

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.add_session_config_entry("session.intra_op.spin_duration_us", str(SPIN_US))  # as the embedder runs
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def gemm_ms(n: int, k: int, m: int, kind: str, threads: int, reps: int = 200) -> float:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, k)).astype(np.float32)
    x = helper.make_tensor_value_info("a", TensorProto.FLOAT, [n, k])
    if kind == "int8":
        b = rng.integers(-127, 128, (k, m), dtype=np.int8)
        inits = [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.full(m, 0.01, np.float32), "s"),
                 numpy_helper.from_array(np.zeros(m, np.int8), "z")]
        node = helper.make_node("DynamicQuantizeMatMul", ["a", "b", "s", "z"], ["y"], domain="com.microsoft")
    else:
        inits = [numpy_helper.from_array(rng.standard_normal((k, m)).astype(np.float32), "b")]
        node = helper.make_node("MatMul", ["a", "b"], ["y"])
    session = _session(node, [x], inits, threads)
    for _ in range(10):
        session.run(None, {"a": a})
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        session.run(None, {"a": a})
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=219, help="sequence length (219: the ~1,000-character text)")
    args = ap.parse_args()
    n = args.tokens
    f = flops(n)
    out = {"tokens": n, "flops": f, "gemm": {}}
    print(f"one forward pass at {n} tokens: {f['total'] / 1e9:.2f} GFLOP ({f['linear'] / 1e9:.2f} in the "
          f"projections, {f['attention'] / 1e9:.2f} in attention)\n")
    print("| GEMMs of one forward pass | threads | ms | GFLOP/s (GOP/s for int8) |\n|---|---|---|---|")
    for kind in ("int8", "fp32"):
        for threads in (1, 2):
            ms = LAYERS * sum(gemm_ms(n, k, m, kind, threads) for k, m in SHAPES)
            rate = f["linear"] / ms / 1e6
            out["gemm"][f"{kind}-{threads}"] = {"ms": ms, "gflops": rate}
            print(f"| {kind} projections ({f['linear'] / 1e9:.2f} G) | {threads} | {ms:.2f} | {rate:.0f} |")
    print("\n| the CPU, one large GEMM (2048 x 1536 x 1536) | threads | GFLOP/s (GOP/s for int8) |\n|---|---|---|")
    for kind in ("int8", "fp32"):
        for threads in (1, 2):
            ms = gemm_ms(2048, FF, FF, kind, threads, reps=20)
            rate = 2 * 2048 * FF * FF / ms / 1e6
            out["gemm"][f"large-{kind}-{threads}"] = {"ms": ms, "gflops": rate}
            print(f"| {kind} | {threads} | {rate:.0f} |")
    print("\n| whole forward pass, int8 model, one text | threads | p50 ms |\n|---|---|---|")
    from valueguard.embedders.onnx_runtime import OnnxEmbedder

    text = " ".join(["word"] * (n - 2))  # n tokens with [CLS] and [SEP]
    for threads in (1, 2):
        e = OnnxEmbedder(threads=threads)
        feeds = e.tokenize(text)
        assert feeds["input_ids"].shape[1] == n
        session = e._load()
        for _ in range(5):
            session.run(None, feeds)
        times = []
        for _ in range(60):
            t = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - t)
        out[f"forward-int8-{threads}"] = float(np.median(times) * 1000)
        print(f"| int8 | {threads} | {out[f'forward-int8-{threads}']:.2f} |")
    Path("bench-results").mkdir(exist_ok=True)
    Path("bench-results/cpu_ceiling.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
