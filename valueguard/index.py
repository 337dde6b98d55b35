"""ValueIndex: a FAISS index over reference embeddings, the value matrix beside it, and a manifest.

On disk (no pickle anywhere): `manifest.json`, `index.faiss` (FAISS's own format), `values.npy` (rows × 10
float32, read with allow_pickle=False), `rows.jsonl` (id, source, label kind, a snippet of the text) and,
for the default read-out, `value_model.npz` (the fitted ValueModel, read with allow_pickle=False).
The manifest holds the sha256 of those files, so a file changed after the build is refused, and a digest of its
own fields (model, dimension, rows, text form, read-out, value names, file hashes), so an edited manifest is refused
too; what the files themselves say (FAISS's dimension and row count, the value model's shapes) is checked against it.
Every failure to load is a ValueIndexError naming the file and the field (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from valueguard.embedding import Embedder
from valueguard.reference.dataset import ReferenceSet, sha256_file
from valueguard.value_model import ValueModel
from valueguard.values import N_VALUES, VALUE_NAMES

FORMAT_VERSION = 2
TextForm = Literal["dialogue", "response"]
# "model": the fitted ValueModel reads the neighbours (README, "Estimation quality"); "knn": their weighted mean.
Readout = Literal["model", "knn"]
# Evidence shows a snippet of each neighbour; the full text stays in the reference files.
SNIPPET_CHARS = 400
_FILES = ("index.faiss", "values.npy", "rows.jsonl")
MODEL_FILE = "value_model.npz"
MAX_MANIFEST_BYTES = 10_000_000


def format_text(response: str, prompt: str | None, form: TextForm) -> str:
    """The text that is embedded: FULCRA's dialogue form, or the response alone."""
    if form == "response" or not prompt:
        return response if form == "response" else f"Bob: {response}"
    return f"Human: {prompt}\nBob: {response}"


class ValueIndexError(RuntimeError):
    """An index that cannot be used; the message says why and how to rebuild it."""


class IndexNotFoundError(ValueIndexError, FileNotFoundError):
    pass


def rebuild_hint(directory: Path) -> str:
    return f"rebuild it with: valueguard index build --out {directory}"


class ReferenceFileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="File name of the reference file.")
    sha256: str = Field(description="sha256 of the file when the index was built.")
    format: str = Field(description="Reader format: annotated, scored or canonical.")
    records: int = Field(description="Records read from the file.")


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = Field(description="Version of this on-disk layout.")
    model: str = Field(description="Embedding model id the rows were embedded with.")
    dimension: int = Field(description="Embedding dimension.")
    rows: int = Field(description="Number of reference rows.")
    text_form: TextForm = Field(description="What text was embedded: 'dialogue' or 'response'.")
    # A default, so that a format-1 manifest (which has no read-out) still parses and is refused by its version.
    readout: Readout = Field(default="knn",
                             description="How neighbours become values: 'model' (fitted ValueModel) or 'knn'.")
    value_names: list[str] = Field(description="Column order of values.npy.")
    reference_files: list[ReferenceFileEntry] = Field(description="The reference files, hashed.")
    files: dict[str, str] = Field(description="sha256 of index.faiss, values.npy and rows.jsonl.")
    built_at: str = Field(description="UTC time of the build.")
    build_seconds: float = Field(description="How long the build took.")
    digest: str = Field(default="", description="sha256 of the fields above that say what the index is (all but "
                        "the build's time); a manifest edited after the build does not match it.")

    def content_digest(self) -> str:
        fields = self.model_dump(include={"format_version", "model", "dimension", "rows", "text_form", "readout",
                                          "value_names", "files", "reference_files"})
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class RowInfo:
    id: str
    source: str
    label_kind: str
    prompt: str
    response: str


class ValueIndex:
    def __init__(self, faiss_index, values: np.ndarray, rows: list[RowInfo], manifest: Manifest,
                 value_model: ValueModel | None = None) -> None:
        self.faiss_index = faiss_index
        self.values = values
        self.rows = rows
        self.manifest = manifest
        self.value_model = value_model

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def model(self) -> str:
        return self.manifest.model

    @property
    def version(self) -> str:
        """A short id of this index's content, logged with every decision."""
        digest = "".join(self.manifest.files.get(n, "") for n in (*_FILES, MODEL_FILE)) or self.manifest.built_at
        return hashlib.sha256(digest.encode()).hexdigest()[:12]

    @property
    def text_form(self) -> TextForm:
        return self.manifest.text_form

    @classmethod
    def build(
        cls,
        reference: ReferenceSet,
        embedder: Embedder,
        *,
        text_form: TextForm = "response",
        readout: Readout = "model",
        batch_size: int = 64,
        progress: Callable[[int], None] | None = None,
    ) -> ValueIndex:
        """Embed every reference row (in batches; `progress(n)` after each), index it, fit the read-out."""
        import faiss

        if len(reference) == 0:
            raise ValueError("cannot build an index from an empty reference set")
        start = time.perf_counter()
        texts = [format_text(r.response, r.prompt, text_form) for r in reference]
        chunks = []
        for i in range(0, len(texts), batch_size):
            chunks.append(embedder.embed(texts[i : i + batch_size]))
            if progress:
                progress(len(chunks[-1]))
        emb = np.ascontiguousarray(np.vstack(chunks), dtype=np.float32)
        value_model = None
        if readout == "model":
            # The model reads the prompt's embedding beside the response's; prompts repeat, embed each once.
            prompts = list(dict.fromkeys(r.prompt for r in reference))
            pemb = np.vstack([embedder.embed(prompts[i : i + batch_size]) for i in range(0, len(prompts), batch_size)])
            at = {p: i for i, p in enumerate(prompts)}
            value_model = ValueModel.fit(emb, pemb[[at[r.prompt] for r in reference]], reference.value_matrix(),
                                         [r.label_kind for r in reference], [r.prompt for r in reference])
        index = faiss.IndexFlatIP(emb.shape[1])
        index.add(emb)
        rows = [
            RowInfo(r.id, r.source, r.label_kind, r.prompt[:SNIPPET_CHARS], r.response[:SNIPPET_CHARS])
            for r in reference
        ]
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=embedder.model_id,
            dimension=int(emb.shape[1]),
            rows=len(rows),
            text_form=text_form,
            readout=readout,
            value_names=list(VALUE_NAMES),
            reference_files=[ReferenceFileEntry(**vars(f)) for f in reference.files],
            files={},
            built_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            build_seconds=round(time.perf_counter() - start, 2),
        )
        return cls(index, reference.value_matrix(), rows, manifest, value_model)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and row numbers of the k nearest rows of each query (rows best first)."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.manifest.dimension:
            raise ValueError(f"queries must be (n, {self.manifest.dimension}), got {q.shape}")
        return self.faiss_index.search(q, min(k, len(self)))

    def save(self, directory: str | Path) -> Path:
        import faiss

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.faiss_index, str(directory / "index.faiss"))
        np.save(directory / "values.npy", self.values.astype(np.float32), allow_pickle=False)
        with open(directory / "rows.jsonl", "w", encoding="utf-8") as f:
            for row in self.rows:
                f.write(json.dumps(vars(row), ensure_ascii=False) + "\n")
        names = list(_FILES)
        if self.value_model is not None:
            self.value_model.save(directory / MODEL_FILE)
            names.append(MODEL_FILE)
        else:  # a value model left by an earlier build would contradict this index's read-out
            (directory / MODEL_FILE).unlink(missing_ok=True)
        self.manifest.files = {name: sha256_file(directory / name) for name in names}
        self.manifest.digest = self.manifest.content_digest()
        tmp = directory / "manifest.json.tmp"
        tmp.write_text(self.manifest.model_dump_json(indent=2), encoding="utf-8")
        # The manifest goes last: a build cut short leaves no manifest, so no half-written index loads.
        os.replace(tmp, directory / "manifest.json")
        return directory

    @staticmethod
    def read_manifest(directory: str | Path) -> Manifest:
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
        if m.readout == "knn" and ((directory / MODEL_FILE).exists() or MODEL_FILE in m.files):
            raise ValueIndexError(f"{where}: field readout: 'knn', but the index has a value model ({MODEL_FILE}); "
                                  f"{rebuild_hint(directory)}")
        return m

    @classmethod
    def load(
        cls, directory: str | Path, *, model: str | None = None, dimension: int | None = None
    ) -> ValueIndex:
        """Load and verify. `model`/`dimension`: what the caller's embedder produces; a mismatch is refused."""
        import faiss

        # One OpenMP thread for searching: a guard searches 1-5 queries at a time, where more threads gain
        # nothing on an idle machine (1 query: 0.27 ms either way) and lose badly when another process holds a
        # core (5 queries: 12 ms with 2 threads, 1.4 ms with 1). README, "Benchmarks". (FAISS's own OpenMP only.)
        faiss.omp_set_num_threads(1)
        directory = Path(directory)
        m = cls.verified_manifest(directory, model=model)
        if dimension is not None and dimension != m.dimension:
            raise ValueIndexError(
                f"index at {directory} has dimension {m.dimension}, the embedder gives {dimension}; "
                f"{rebuild_hint(directory)}"
            )
        names = (*_FILES, MODEL_FILE) if m.readout == "model" else _FILES
        for name in names:
            path = directory / name
            if not path.is_file():
                raise ValueIndexError(f"index at {directory} is missing {name}; {rebuild_hint(directory)}")
            if sha256_file(path) != m.files.get(name):
                raise ValueIndexError(
                    f"index file {path} does not match its manifest (changed after the build, or damaged); "
                    f"refusing to load it. {rebuild_hint(directory)}"
                )
        index, values, rows, value_model = load_files(directory, m, faiss)
        return cls(index, values, rows, m, value_model)

    def is_current(self, reference_paths: Sequence[str | Path], model: str, text_form: TextForm,
                   readout: Readout = "model") -> bool:
        """True when this index was built from exactly these files (by content), model, text form and read-out."""
        wanted = sorted((Path(p).name, sha256_file(p)) for p in reference_paths)
        have = sorted((f.name, f.sha256) for f in self.manifest.reference_files)
        m = self.manifest
        return wanted == have and m.model == model and m.text_form == text_form and m.readout == readout



def _fail(path: Path, field: str, why: str) -> ValueIndexError:
    return ValueIndexError(f"{path}: {field}: {why}; {rebuild_hint(path.parent)}")


def load_files(directory: Path, m: Manifest, faiss) -> tuple:
    """The hashed files, read; anything they hold that the manifest contradicts (or that will not read at all) is
    a ValueIndexError naming the file and the manifest's field."""
    path = directory / "index.faiss"
    try:
        index = faiss.read_index(str(path))
    except Exception as e:  # FAISS raises RuntimeError with a C++ trace; the cause is the file
        raise _fail(path, "index", f"not a readable FAISS index ({type(e).__name__})") from None
    if index.d != m.dimension:
        raise _fail(path, "dimension", f"the FAISS index has dimension {index.d}, the manifest says {m.dimension}")
    if index.ntotal != m.rows:
        raise _fail(path, "rows", f"the FAISS index has {index.ntotal} rows, the manifest says {m.rows}")
    path = directory / "values.npy"
    try:
        values = np.load(path, allow_pickle=False)
    except Exception as e:  # numpy: ValueError, EOFError, UnpicklingError...
        raise _fail(path, "values", f"not a readable numpy array ({type(e).__name__})") from None
    if values.ndim != 2 or values.shape[0] != m.rows:
        raise _fail(path, "rows", f"holds shape {values.shape}, the manifest says {m.rows} rows")
    if values.shape[1] != len(m.value_names) or values.dtype.kind != "f":
        raise _fail(path, "value_names", f"holds {values.shape[1]} {values.dtype} columns, the manifest names "
                    f"{len(m.value_names)} values")
    path = directory / "rows.jsonl"
    rows = []
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            try:
                rows.append(RowInfo(**json.loads(line)))
            except (ValueError, TypeError, RecursionError) as e:
                raise _fail(path, f"line {n}", f"not a row ({type(e).__name__})") from None
    if len(rows) != m.rows:
        raise _fail(path, "rows", f"has {len(rows)} rows, the manifest says {m.rows}")
    value_model = None
    if m.readout == "model":
        path = directory / MODEL_FILE
        try:
            value_model = ValueModel.load(path)
        except Exception as e:  # zipfile.BadZipFile, KeyError of a missing array, ValueError...
            raise _fail(path, "readout", f"not a readable value model ({type(e).__name__}: {str(e)[:100]})") from None
        if (d := value_model.dimension) != m.dimension:
            raise _fail(path, "dimension", f"the value model reads {d}-dimensional embeddings, the manifest says "
                        f"{m.dimension}")
    return index, values.astype(np.float32), rows, value_model


@dataclass
class BuildResult:
    index: ValueIndex
    built: bool  # False: an up-to-date index was already there
    reports: list = field(default_factory=list)  # ReadReport of each reference file read
    duplicates: int = 0


def build_cached(
    reference_paths: Sequence[str | Path],
    out: str | Path,
    embedder: Embedder,
    *,
    text_form: TextForm = "response",
    readout: Readout = "model",
    force: bool = False,
    progress_factory: Callable[[int], Callable[[int], None]] | None = None,
) -> BuildResult:
    """Build the index at `out`, unless one built from the same files, model and text form is there already.

    A present index that fails verification is rebuilt, never trusted.
    """
    from valueguard.reference.dataset import ReferenceSet

    out = Path(out)
    if not force and (out / "manifest.json").is_file():
        try:
            existing = ValueIndex.load(out, model=embedder.model_id)
            if existing.is_current(reference_paths, embedder.model_id, text_form, readout):
                return BuildResult(existing, built=False)
        except ValueIndexError:
            pass
    reference = ReferenceSet.from_files(reference_paths)
    progress = progress_factory(len(reference)) if progress_factory else None
    index = ValueIndex.build(reference, embedder, text_form=text_form, readout=readout, progress=progress)
    index.save(out)
    return BuildResult(index, True, reference.reports, reference.duplicates)
