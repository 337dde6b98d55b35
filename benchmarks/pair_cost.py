"""The pair read-out's extra cost (docs/quality.md, "The pair read-out"): p50 of each forward pass a guarded call
with a prompt makes, against one bare fp32 sentence-transformers embedding of the same dialogue, in one run.

    .venv/bin/python benchmarks/pair_cost.py [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from valueguard.embedders.onnx_runtime import OnnxEmbedder
from valueguard.embedders.sentence_transformers import SentenceTransformerEmbedder
from valueguard.estimation.readout.pair import PAIR_MAX_TOKENS
from valueguard.reference import ReferenceSet, fulcra_files

SHORTER = 128  # the shorter pair pass measured against the whole pair (docs/quality.md)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    rows = [r for r in ReferenceSet.from_files(fulcra_files(args.data)) if 800 < len(r.response) < 1200][:40]
    onnx, torch_st = OnnxEmbedder(), SentenceTransformerEmbedder()
    onnx.embed(["warm"]), onnx.embed_pairs(["warm"], ["up"]), torch_st.embed(["warm"])

    def p50(call) -> float:
        times = []
        for r in rows:
            start = time.perf_counter()
            call(r)
            times.append(time.perf_counter() - start)
        return float(np.median(times) * 1000)

    bare = p50(lambda r: torch_st.embed([f"Human: {r.prompt}\nBob: {r.response}"]))
    response = p50(lambda r: onnx.embed([r.response]))
    prompt = p50(lambda r: onnx.embed([r.prompt]))
    shipped = PAIR_MAX_TOKENS or onnx.max_seq_length
    pair = p50(lambda r: onnx.embed_pair_segments([r.prompt], [r.response], PAIR_MAX_TOKENS))
    short = p50(lambda r: onnx.embed_pair_segments([r.prompt], [r.response], SHORTER))
    print(f"{len(rows)} responses of 800-1,200 characters, p50 ms")
    print("| pass | p50 ms |\n|---|---|")
    for name, ms in (("bare fp32 sentence-transformers, dialogue", bare), ("int8 response", response),
                     ("int8 prompt", prompt), (f"int8 pair, {shipped} tokens (the pair read-out's)", pair),
                     (f"int8 pair, its first {SHORTER} tokens (docs/quality.md: not used)", short)):
        print(f"| {name} | {ms:.1f} |")
    print(f"value model's passes {(response + prompt) / bare:.2f}x the bare embedding; pair read-out's "
          f"{(response + prompt + pair) / bare:.2f}x ({(response + prompt + short) / bare:.2f}x with {SHORTER} tokens)")


if __name__ == "__main__":
    main()
