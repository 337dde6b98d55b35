"""FAISS index kinds at scale (docs/scale.md): flat, ivf and hnsw at 10k, 100k and 1M rows of synthetic unit vectors
(384-d float32), then on the real FULCRA rows.

Per size and kind: build time, memory (the process's resident-set growth while the index is built, the index's own
bytes), search p50/p99 at k=30 (one query a call, one FAISS thread: what a guard does), recall@30 against flat.
The synthetic rows lie near a low-dimensional subspace, as sentence embeddings do (uniform random 384-d vectors have
no neighbours worth finding: every row is almost equally far from a query; well separated clusters are too easy). The real part builds each kind over the FULCRA rows outside
a held-out prompt group and compares the held-out violation AP with flat's (the estimates the guard acts on).

    nice -n 15 .venv/bin/python benchmarks/index_scale.py [--max-rows 100000] [--no-real] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
from pathlib import Path

import faiss
import numpy as np

from valueguard.index import kinds

K, DIM = 30, 384
SIZES = (10_000, 100_000, 1_000_000)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def synthetic_rows(n: int, seed: int, basis: np.ndarray, noise: float = 0.3) -> np.ndarray:
    """n unit rows near a `basis.shape[0]`-dimensional subspace of R^384 (Gaussian in it, plus isotropic noise),
    normalised: with a 24-d subspace a query's 1st and 30th neighbours are at cosine ~0.70 and ~0.59 at 100k rows,
    near what the real FULCRA rows show (printed by the real part)."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, DIM), np.float32)
    scale = noise * np.sqrt(basis.shape[0] / DIM)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        x = rng.standard_normal((m, basis.shape[0]), dtype=np.float32) @ basis
        x += rng.standard_normal((m, DIM), dtype=np.float32) * scale
        out[i:i + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def index_bytes(index) -> int:
    """What faiss.write_index writes: the vectors, the lists or the graph."""
    return int(faiss.serialize_index(index).nbytes)


def timed_search(index, queries: np.ndarray) -> tuple[float, float, np.ndarray]:
    faiss.omp_set_num_threads(1)
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        _, idx = index.search(q[None, :], K)
        times.append(time.perf_counter() - start)
        found.append(idx[0])
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), np.array(found)


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(found, exact)]))


def search_sweep(kind: str, params: dict[str, int]) -> list[dict[str, int]]:
    """The kind's default search parameters and the larger ones tried beside them."""
    if kind == "ivf":
        return [params] + [dict(params, nprobe=min(params["nlist"], params["nprobe"] * f)) for f in (4, 16)]
    if kind == "hnsw":
        return [params] + [dict(params, ef_search=ef) for ef in (192, 384)]
    return [params]


def synthetic(sizes: list[int], n_queries: int, threads: int, latent: int) -> list[dict]:
    basis = np.linalg.qr(np.random.default_rng(0).standard_normal((DIM, latent)))[0].T.astype(np.float32)
    results = []
    for n in sizes:
        rows = synthetic_rows(n, 1, basis)
        queries = synthetic_rows(n_queries, 2, basis)
        faiss.omp_set_num_threads(threads)
        flat = faiss.IndexFlatIP(DIM)
        flat.add(rows)
        sims, exact = flat.search(queries, K)  # the truth, batched
        print(f"<!-- {n:,} rows: a query's 1st / 30th neighbour at cosine {sims[:, 0].mean():.2f} / "
              f"{sims[:, -1].mean():.2f} -->", flush=True)
        del flat
        for kind in kinds.INDEX_TYPES:
            gc.collect()
            faiss.omp_set_num_threads(threads)
            params = kinds.default_params(kind, n)
            before, start = rss_bytes(), time.perf_counter()
            index = kinds.new_index(kind, rows, params)
            build = time.perf_counter() - start
            grown, size = rss_bytes() - before, index_bytes(index)
            # An exact search of 1M rows takes a quarter second: fewer single queries time it as well.
            timed = queries if kind != "flat" or n < 1_000_000 else queries[:50]
            for search in search_sweep(kind, params):
                kinds.prepare(index, kind, search)
                p50, p99, found = timed_search(index, timed)
                r = dict(rows=n, kind=kind, params=search, build_s=build, rss_mb=grown / 2**20,
                         index_mb=size / 2**20, p50_ms=p50, p99_ms=p99, recall=recall(found, exact[: len(timed)]))
                print(row_line(r), flush=True)
                results.append(r)
            del index
    return results


def row_line(r: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in r["params"].items()) or "exact"
    return (f"| {r['rows']:,} | {r['kind']} | {params} | {r['build_s']:.1f} | {r['rss_mb']:.0f} | {r['index_mb']:.0f} "
            f"| {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['recall']:.3f} |")


def real(data: Path, readout: str) -> None:
    """Out-of-fold violation AP on the real FULCRA rows (5 prompt-grouped folds: each row estimated from an index
    without its prompt) with neighbours from each kind, against flat's."""
    from valueguard.embedders.backends import make_index_embedder
    from valueguard.quality.heldout import cross_validate, metrics
    from valueguard.reference import ReferenceSet, fulcra_files

    full = ReferenceSet.from_files(fulcra_files(data))
    embedder = make_index_embedder()
    print(f"\nreal FULCRA rows: {len(full):,}, 5 prompt-grouped folds, read-out {readout!r}, k={K}")
    print("| kind | parameters (at 4/5 of the rows) | annotated AP | model AP | max AP delta vs flat | recall@30 |")
    print("|---|---|---|---|---|---|")
    base_ap: dict[str, float] = {}
    exact: list[np.ndarray] = []
    for kind in kinds.INDEX_TYPES:
        found: list[np.ndarray] = []
        used: dict[str, int] = {}

        def top_k(q: np.ndarray, base: np.ndarray, k: int, kind: str = kind, found: list = found,
                  used: dict = used):
            faiss.omp_set_num_threads(1)
            params = kinds.default_params(kind, len(base))
            used.update(params)
            sims, idx = kinds.new_index(kind, np.ascontiguousarray(base, np.float32), params).search(
                np.ascontiguousarray(q, np.float32), k)
            found.append(idx[:, :K])
            return sims, idx

        m = metrics(cross_validate(full, embedder, folds=5, readout=readout, top_k=top_k))
        ap = {name: m[name]["violation_ap"] for name in m}
        exact = exact or found
        base_ap = base_ap or ap
        delta = max(abs(ap[x] - base_ap[x]) for x in ap)
        rec = np.mean([recall(f, e) for f, e in zip(found, exact)])
        print(f"| {kind} | {', '.join(f'{k}={v}' for k, v in used.items()) or 'exact'} | "
              f"{ap.get('annotated', float('nan')):.4f} | {ap.get('model', float('nan')):.4f} | {delta:.4f} | "
              f"{rec:.3f} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--max-rows", type=int, default=SIZES[-1], help="stop at this size (e.g. 100000)")
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2, help="FAISS threads while building (searching uses 1)")
    ap.add_argument("--latent", type=int, default=24, help="dimension of the synthetic rows' subspace")
    ap.add_argument("--only-real", action="store_true", help="skip the synthetic rows")
    ap.add_argument("--no-real", action="store_true", help="skip the real FULCRA rows")
    ap.add_argument("--readout", default="model")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared" / "data")
    args = ap.parse_args()
    sizes = [n for n in SIZES if n <= args.max_rows]
    print(f"synthetic unit vectors near a {args.latent}-d subspace, {DIM}-d float32, {args.queries} queries, k={K}, "
          f"search on 1 FAISS thread, build on {args.threads}")
    print("| rows | kind | parameters | build s | RSS growth MB | index MB | p50 ms | p99 ms | recall@30 |")
    print("|---|---|---|---|---|---|---|---|---|")
    if not args.only_real:
        synthetic(sizes, args.queries, args.threads, args.latent)
    if not args.no_real:
        real(args.data, args.readout)


if __name__ == "__main__":
    main()
