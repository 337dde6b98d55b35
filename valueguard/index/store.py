"""ReferenceIndex: a FAISS index over reference embeddings, the value matrix beside it, and a manifest.

The store knows nothing of read-outs beyond the manifest's `readout` name and the hashes of the read-out's
files: building, saving and loading an index together with its read-out is valueguard/estimation/value_index.py.
The on-disk layout and what is refused are in valueguard/index/manifest.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from valueguard.embedders.base import Embedder
from valueguard.index import kinds
from valueguard.index.manifest import (
    FORMAT_VERSION, KEPT_FILES, MAX_MANIFEST_BYTES, SNIPPET_CHARS, STORE_FILES, IndexNotFoundError, Manifest,
    ReferenceFileEntry, TextForm, ValueIndexError, file_error, format_text, rebuild_hint,
)
from valueguard.reference.dataset import ReferenceSet, sha256_file
from valueguard.values import VALUE_NAMES


@dataclass(frozen=True)
class RowInfo:
    """One reference row as the index keeps it: ids and a snippet of its texts (the evidence a verdict shows)."""

    id: str
    source: str
    label_kind: str
    prompt: str
    response: str


def embed_texts(embedder: Embedder, texts: Sequence[str], batch_size: int = 64,
                progress: Callable[[int], None] | None = None) -> np.ndarray:
    """(n, d) float32 embeddings of `texts`, in batches (`progress(n)` after each)."""
    chunks = []
    for i in range(0, len(texts), batch_size):
        chunks.append(embedder.embed(list(texts[i : i + batch_size])))
        if progress:
            progress(len(chunks[-1]))
    return np.ascontiguousarray(np.vstack(chunks), dtype=np.float32)


class ReferenceIndex:
    """The searchable reference rows: FAISS over their embeddings, their (n, 10) labels and their snippets."""

    def __init__(self, faiss_index: Any, values: np.ndarray, rows: list[RowInfo], manifest: Manifest) -> None:
        self.faiss_index = faiss_index
        self.values = values
        self.rows = rows
        self.manifest = manifest

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def model(self) -> str:
        return self.manifest.model

    @property
    def version(self) -> str:
        """A short id of this index's content, logged with every decision."""
        names = [*STORE_FILES, *sorted(n for n in self.manifest.files if n not in STORE_FILES)]
        digest = "".join(self.manifest.files.get(n, "") for n in names) or self.manifest.built_at
        return hashlib.sha256(digest.encode()).hexdigest()[:12]

    @property
    def text_form(self) -> TextForm:
        return self.manifest.text_form

    @property
    def label_kinds(self) -> list[str]:
        return [r.label_kind for r in self.rows]

    @property
    def index_type(self) -> str:
        return self.manifest.index_type

    def embeddings(self) -> np.ndarray:
        """(n, d) the rows' embeddings, read back from the FAISS index (every kind keeps them exactly)."""
        return self.faiss_index.reconstruct_n(0, self.faiss_index.ntotal)

    @classmethod
    def build(cls, reference: ReferenceSet, embedder: Embedder, *, text_form: TextForm = "response",
              readout: str = "model", index_type: str | None = None, batch_size: int = 64,
              progress: Callable[[int], None] | None = None) -> ReferenceIndex:
        """Embed every reference row (in batches; `progress(n)` after each) and index it in a FAISS index of
        `index_type` (None: by size, kinds.default_index_type); `readout` is only recorded in the manifest (the
        caller fits it)."""
        kind = index_type or kinds.default_index_type(len(reference))
        if kind not in kinds.INDEX_TYPES:
            raise ValueError(f"unknown index type {kind!r}: one of {', '.join(kinds.INDEX_TYPES)}")
        if len(reference) == 0:
            raise ValueError("cannot build an index from an empty reference set")
        start = time.perf_counter()
        emb = embed_texts(embedder, [format_text(r.response, r.prompt, text_form) for r in reference], batch_size,
                          progress)
        params = kinds.default_params(kind, len(reference))
        index = kinds.new_index(kind, emb, params)
        rows = [RowInfo(r.id, r.source, r.label_kind, r.prompt[:SNIPPET_CHARS], r.response[:SNIPPET_CHARS])
                for r in reference]
        manifest = Manifest(
            format_version=FORMAT_VERSION, model=embedder.model_id, dimension=int(emb.shape[1]), rows=len(rows),
            text_form=text_form, readout=readout, value_names=list(VALUE_NAMES), index_type=kind,  # type: ignore[arg-type]
            index_params=params, reference_files=[ReferenceFileEntry(**vars(f)) for f in reference.files], files={},
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - start, 2),
        )
        return cls(index, reference.value_matrix(), rows, manifest)

    def rebuilt_as(self, index_type: str, params: dict[str, int] | None = None) -> ReferenceIndex:
        """The same rows in a FAISS index of another kind (their vectors read back, nothing embedded again);
        `params`: the kind's parameters (default: kinds.default_params for this many rows)."""
        if index_type not in kinds.INDEX_TYPES:
            raise ValueError(f"unknown index type {index_type!r}: one of {', '.join(kinds.INDEX_TYPES)}")
        params = dict(params if params is not None else kinds.default_params(index_type, len(self)))
        manifest = self.manifest.model_copy(update={"index_type": index_type, "index_params": params, "files": {},
                                                    "digest": ""})
        faiss_index = kinds.new_index(index_type, np.ascontiguousarray(self.embeddings()), params)
        return ReferenceIndex(faiss_index, self.values, self.rows, manifest)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and row numbers of the k nearest rows of each query (rows best first)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.manifest.dimension:
            raise ValueError(f"queries must be (n, {self.manifest.dimension}), got {q.shape}")
        return self.faiss_index.search(q, min(k, len(self)))

    def save(self, directory: str | Path, extra_files: Sequence[str] = ()) -> Path:
        """Write the store's files, hash them and `extra_files` (already written there, e.g. by a read-out)
        into the manifest, and write the manifest last: a build cut short leaves no manifest."""
        import faiss

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.faiss_index, str(directory / "index.faiss"))
        np.save(directory / "values.npy", self.values.astype(np.float32), allow_pickle=False)
        with open(directory / "rows.jsonl", "w", encoding="utf-8") as f:
            for row in self.rows:
                f.write(json.dumps(vars(row), ensure_ascii=False) + "\n")
        self.manifest.files = {name: sha256_file(directory / name) for name in (*STORE_FILES, *extra_files)}
        self.manifest.digest = self.manifest.content_digest()
        tmp = directory / "manifest.json.tmp"
        tmp.write_text(self.manifest.model_dump_json(indent=2), encoding="utf-8")
        os.replace(tmp, directory / "manifest.json")
        return directory

    @staticmethod
    def read_manifest(directory: str | Path) -> Manifest:
        """The manifest as it is (unverified); a missing one is an IndexNotFoundError with the build command."""
        directory = Path(directory)
        path = directory / "manifest.json"
        if not path.is_file():
            raise IndexNotFoundError(
                f"no valueguard index at {directory} (no manifest.json). Build one with: "
                f"valueguard index build --out {directory}   (or `valueguard index build` for the default index)"
            )
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ValueIndexError(f"{path}: over {MAX_MANIFEST_BYTES:,} bytes, not a manifest; {rebuild_hint(directory)}")
        try:
            return Manifest.model_validate_json(path.read_bytes())
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(p) for p in first["loc"]) or "manifest"
            raise ValueIndexError(f"{path}: field {field}: {first['msg']}; {rebuild_hint(directory)}") from None
        except (ValueError, OSError) as e:
            raise ValueIndexError(f"{path} is not a valid manifest ({type(e).__name__}); "
                                  f"{rebuild_hint(directory)}") from None

    @classmethod
    def verified_manifest(cls, directory: str | Path, *, model: str | None = None) -> Manifest:
        """The manifest, refused unless it is of this format, matches its digest and says what this valueguard
        reads; `model`: the caller's embedder, refused up front (before any file is read) when it differs."""
        directory = Path(directory)
        m = cls.read_manifest(directory)
        where = directory / "manifest.json"
        if m.format_version != FORMAT_VERSION:
            raise ValueIndexError(
                f"index at {directory} has format {m.format_version}, this valueguard reads {FORMAT_VERSION}; "
                f"{rebuild_hint(directory)}"
            )
        if not m.digest:
            raise ValueIndexError(f"{where}: field digest: missing (written by an older valueguard); "
                                  f"{rebuild_hint(directory)}")
        if m.digest != m.content_digest():
            raise ValueIndexError(
                f"{where}: its fields (model, dimension, rows, text_form, readout, value_names, files) do not match "
                f"its digest: edited after the build; refusing to load it. {rebuild_hint(directory)}")
        if model is not None and model != m.model:
            raise ValueIndexError(
                f"index at {directory} was built with model {m.model!r}, but the embedder is {model!r}: "
                f"neighbours would be meaningless. Use model {m.model!r}, or {rebuild_hint(directory)} --model {model}"
            )
        if m.value_names != list(VALUE_NAMES):
            raise ValueIndexError(f"{where}: field value_names: not the 10 basic values in this valueguard's order; "
                                  f"{rebuild_hint(directory)}")
        return m

    @classmethod
    def load(cls, directory: str | Path, manifest: Manifest, *, dimension: int | None = None,
             required: Sequence[str] = ()) -> ReferenceIndex:
        """Load the store of a verified `manifest`. Every file it hashes must be there and match (`required`: the
        read-out's files, which must be listed too); `dimension`: what the caller's embedder produces."""
        import faiss

        # One OpenMP thread for searching: a guard searches 1-5 queries at a time, where more threads gain
        # nothing on an idle machine (1 query: 0.27 ms either way) and lose badly when another process holds a
        # core (5 queries: 12 ms with 2 threads, 1.4 ms with 1). README, "Benchmarks". (FAISS's own OpenMP only.)
        faiss.omp_set_num_threads(1)
        directory = Path(directory)
        m = manifest
        if dimension is not None and dimension != m.dimension:
            raise ValueIndexError(
                f"index at {directory} has dimension {m.dimension}, the embedder gives {dimension}; "
                f"{rebuild_hint(directory)}"
            )
        for name in dict.fromkeys((*STORE_FILES, *required, *(n for n in m.files if n not in KEPT_FILES))):
            path = directory / name
            if not path.is_file():
                raise ValueIndexError(f"index at {directory} is missing {name}; {rebuild_hint(directory)}")
            if sha256_file(path) != m.files.get(name):
                raise ValueIndexError(
                    f"index file {path} does not match its manifest (changed after the build, or damaged); "
                    f"refusing to load it. {rebuild_hint(directory)}"
                )
        return cls(*_load_files(directory, m, faiss), m)

    def is_current(self, reference_paths: Sequence[str | Path], model: str, text_form: TextForm,
                   readout: str = "model") -> bool:
        """True when this index was built from exactly these files (by content), model, text form and read-out."""
        wanted = sorted((Path(p).name, sha256_file(p)) for p in reference_paths)
        have = sorted((f.name, f.sha256) for f in self.manifest.reference_files)
        m = self.manifest
        return wanted == have and m.model == model and m.text_form == text_form and m.readout == readout


def _load_files(directory: Path, m: Manifest, faiss: Any) -> tuple[Any, np.ndarray, list[RowInfo]]:
    """The store's hashed files, read; anything they hold that the manifest contradicts (or that will not read at
    all) is a ValueIndexError naming the file and the manifest's field."""
    path = directory / "index.faiss"
    try:
        index = faiss.read_index(str(path))
    except Exception as e:  # FAISS raises RuntimeError with a C++ trace; the cause is the file
        raise file_error(path, "index", f"not a readable FAISS index ({type(e).__name__})") from None
    found = kinds.kind_of(index)
    if found != m.index_type:
        raise file_error(path, "index_type", f"the FAISS index is {found}, the manifest says {m.index_type}")
    try:
        kinds.prepare(index, m.index_type, m.index_params)
    except KeyError as e:
        raise file_error(path.parent / "manifest.json", "index_params", f"{m.index_type} needs {e}") from None
    if index.d != m.dimension:
        raise file_error(path, "dimension", f"the FAISS index has dimension {index.d}, the manifest says {m.dimension}")
    if index.ntotal != m.rows:
        raise file_error(path, "rows", f"the FAISS index has {index.ntotal} rows, the manifest says {m.rows}")
    path = directory / "values.npy"
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy: ValueError, EOFError, UnpicklingError...
        raise file_error(path, "values", f"not a readable numpy array ({type(e).__name__})") from None
    if values.ndim != 2 or values.shape[0] != m.rows:
        raise file_error(path, "rows", f"holds shape {values.shape}, the manifest says {m.rows} rows")
    if values.shape[1] != len(m.value_names) or values.dtype.kind != "f":
        raise file_error(path, "value_names", f"holds {values.shape[1]} {values.dtype} columns, the manifest names "
                         f"{len(m.value_names)} values")
    path = directory / "rows.jsonl"
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            try:
                rows.append(RowInfo(**json.loads(line)))
            except (ValueError, TypeError, RecursionError) as e:
                raise file_error(path, f"line {n}", f"not a row ({type(e).__name__})") from None
    if len(rows) != m.rows:
        raise file_error(path, "rows", f"has {len(rows)} rows, the manifest says {m.rows}")
    return index, values.astype(np.float32), rows
