"""The FAISS index kinds a reference store can be: exact `flat`, and the approximate `ivf` and `hnsw` for large
reference sets (docs/scale.md has the benchmark that chose the default and the search parameters).

Every kind searches by inner product over unit vectors (cosine), holds the vectors themselves (so `embeddings()`
reads them back exactly, and `index add` can refit a read-out) and is written with faiss.write_index. The kind and
its parameters are recorded in the manifest (`index_type`, `index_params`) and checked against the FAISS file on
load.
"""

from __future__ import annotations

import math
from typing import Any, Literal, get_args

import numpy as np

IndexType = Literal["flat", "ivf", "hnsw"]
INDEX_TYPES: tuple[str, ...] = get_args(IndexType)
# Below this many rows an exact search is cheap enough (24-46 ms a query at 100k rows on one busy core) and nothing
# is approximate; at and above it the default is HNSW (docs/scale.md: recall@30 0.98 at 100k rows at under 1 ms p50,
# where IVF needs a quarter of its lists for the same recall).
FLAT_BELOW_ROWS = 100_000
DEFAULT_LARGE: IndexType = "hnsw"
# HNSW: M links a node (memory: M * 8 bytes a row on top of the vectors), ef_construction the build's beam,
# ef_search the query's (at least k; FAISS searches max(k, ef_search)). Measured at 10k-1M rows: docs/scale.md.
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 80, 96
# IVF: 2 * sqrt(rows) lists (each trained on >= 39 points, FAISS's minimum; k-means on at most 64 points a list, 16
# rounds, so a 1M-row build trains in about a minute), searched `nprobe` lists at a time: at least 16 (a small
# index is then searched nearly whole), and 1/32 of the lists of a large one (docs/scale.md).
IVF_LISTS_PER_SQRT_ROW, IVF_MIN_PROBE, IVF_PROBE_FRACTION = 2, 16, 1 / 32
IVF_TRAIN_POINTS_PER_LIST, IVF_TRAIN_ROUNDS = 64, 16


def default_index_type(rows: int) -> IndexType:
    """The kind `index build` picks for `rows` rows when none is named."""
    return "flat" if rows < FLAT_BELOW_ROWS else DEFAULT_LARGE


def default_params(kind: str, rows: int) -> dict[str, int]:
    """The build and search parameters of `kind` for `rows` rows (empty for flat)."""
    if kind == "ivf":
        nlist = max(1, min(int(IVF_LISTS_PER_SQRT_ROW * math.sqrt(rows)), rows // 39))
        return {"nlist": nlist, "nprobe": min(nlist, max(IVF_MIN_PROBE, math.ceil(nlist * IVF_PROBE_FRACTION)))}
    if kind == "hnsw":
        return {"M": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION, "ef_search": HNSW_EF_SEARCH}
    return {}


def new_index(kind: str, vectors: np.ndarray, params: dict[str, int]) -> Any:
    """A FAISS index of `kind` holding `vectors` ((n, d) float32 unit rows), built with `params`."""
    import faiss

    d = vectors.shape[1]
    index: Any
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.max_points_per_centroid, index.cp.niter = IVF_TRAIN_POINTS_PER_LIST, IVF_TRAIN_ROUNDS
        index.train(vectors)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
    else:
        raise ValueError(f"unknown index type {kind!r}: one of {', '.join(INDEX_TYPES)}")
    index.add(vectors)
    prepare(index, kind, params)
    return index


def prepare(index: Any, kind: str, params: dict[str, int]) -> None:
    """Set the search parameters the manifest records, and let an IVF index give its rows back by number."""
    import faiss

    if kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = params["nprobe"]
        ivf.make_direct_map()
    elif kind == "hnsw":
        index.hnsw.efSearch = params["ef_search"]


def kind_of(index: Any) -> str:
    """The kind a FAISS index read from disk is ('flat', 'ivf', 'hnsw'), or its class name when none of them."""
    import faiss

    for kind, cls in (("hnsw", faiss.IndexHNSWFlat), ("ivf", faiss.IndexIVFFlat), ("flat", faiss.IndexFlat)):
        if isinstance(index, cls):
            return kind
    return type(index).__name__


def describe_add(kind: str, params: dict[str, int], added: int) -> str:
    """What adding `added` rows did to the FAISS index of `kind` (what `index add` says): nothing is retrained."""
    if kind == "ivf":
        return (f"FAISS ivf: {added:,} row(s) put in their nearest of the {params['nlist']:,} lists trained at build "
                "(not retrained: `index build --force` retrains them after large adds)")
    if kind == "hnsw":
        return f"FAISS hnsw: {added:,} row(s) linked into the graph (nothing to retrain)"
    return f"FAISS flat: {added:,} row(s) appended (exact, nothing to retrain)"
