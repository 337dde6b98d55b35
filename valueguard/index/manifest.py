"""The index's manifest and its errors: what an index folder is, and what is refused when it lies.

On disk (no pickle anywhere): `manifest.json`, `index.faiss` (FAISS's own format), `values.npy` (rows x 10
float32, read with allow_pickle=False), `rows.jsonl` (id, source, label kind, a snippet of the text) and the files
of the index's read-out (for the default one, `value_model.npz`; valueguard/estimation/readout/).
The manifest holds the sha256 of those files, so a file changed after the build is refused, and a digest of its
own fields (model, dimension, rows, text form, read-out, FAISS index kind, value names, file hashes), so an edited manifest is refused
too; what the files themselves say (FAISS's dimension and row count, the read-out's shapes) is checked against it.
Every failure to load is a ValueIndexError naming the file and the field (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from valueguard.errors import ValueGuardError
from valueguard.index.kinds import IndexType
from valueguard.index.openers import strip_opener
from valueguard.index.typography import plain_typography

# 3: a response is embedded without its compliant opener (openers.py): a format-2 index embedded "Sure." with it.
# 4: typographic punctuation is embedded in its ASCII form (typography.py): a format-3 index embedded ’ as itself.
FORMAT_VERSION = 4
TextForm = Literal["dialogue", "response"]
# Evidence shows a snippet of each neighbour; the full text stays in the reference files.
SNIPPET_CHARS = 400
# The store's own files; a read-out adds its own beside them.
STORE_FILES = ("index.faiss", "values.npy", "rows.jsonl")
# Optional files an index may list beside them: hashed in the manifest, but verified by the code that reads them
# (not at load, which does not read them): the rows' prompt vectors `index add` keeps (estimation/index_add.py).
KEPT_FILES = ("prompt_embeddings.npy",)
MAX_MANIFEST_BYTES = 10_000_000


def format_text(response: str, prompt: str | None, form: TextForm) -> str:
    """The text that is embedded: FULCRA's dialogue form, or the response alone; either without the response's
    compliant opener (openers.py) and with ASCII punctuation (typography.py)."""
    response = strip_opener(plain_typography(response))
    if form == "response" or not prompt:
        return response if form == "response" else f"Bob: {response}"
    return f"Human: {plain_typography(prompt)}\nBob: {response}"


class ValueIndexError(ValueGuardError, RuntimeError):
    """An index that cannot be used; the message says why and how to rebuild it."""


class IndexNotFoundError(ValueIndexError, FileNotFoundError):
    """No index at the folder (no manifest.json); the message gives the build command."""


def rebuild_hint(directory: Path) -> str:
    """The command that rebuilds the index at `directory` (every ValueIndexError ends with it)."""
    return f"rebuild it with: valueguard index build --out {directory}"


def file_error(path: Path, field: str, why: str) -> ValueIndexError:
    """A file of the index that contradicts the manifest's `field` (or does not read at all)."""
    return ValueIndexError(f"{path}: {field}: {why}; {rebuild_hint(path.parent)}")


class ReferenceFileEntry(BaseModel):
    """One reference file an index was built from, hashed (so a changed file means a rebuild)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="File name of the reference file.")
    sha256: str = Field(description="sha256 of the file when the index was built.")
    format: str = Field(description="Reader format: annotated, scored, canonical or labels.")
    records: int = Field(description="Records read from the file.")


class Manifest(BaseModel):
    """manifest.json: what the index is (model, form, read-out, files and their hashes) and its own digest."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = Field(description="Version of this on-disk layout.")
    model: str = Field(description="Embedding model id the rows were embedded with.")
    dimension: int = Field(description="Embedding dimension.")
    rows: int = Field(description="Number of reference rows.")
    text_form: TextForm = Field(description="What text was embedded: 'dialogue' or 'response'.")
    # A default, so that a format-1 manifest (which has no read-out) still parses and is refused by its version.
    # Any registered read-out's name (valueguard/estimation/readout/__init__.py); an unknown one is refused at load.
    readout: str = Field(default="knn", max_length=100,
                         description="How neighbours become values: 'model' (fitted ValueModel), 'knn', or another "
                         "registered read-out.")
    value_names: list[str] = Field(description="Column order of values.npy.")
    # A default, so that a manifest from before the kinds (always a flat index) loads as what it is.
    index_type: IndexType = Field(default="flat", description="FAISS index kind of index.faiss: 'flat' (exact), "
                                  "'ivf' (IndexIVFFlat) or 'hnsw' (IndexHNSWFlat), all inner product.")
    index_params: dict[str, int] = Field(default_factory=dict, description="The kind's build and search "
                                         "parameters: nlist and nprobe for ivf; M, ef_construction and ef_search "
                                         "for hnsw; none for flat.")
    reference_files: list[ReferenceFileEntry] = Field(description="The reference files, hashed.")
    files: dict[str, str] = Field(description="sha256 of index.faiss, values.npy, rows.jsonl and the read-out's files.")
    built_at: str = Field(description="UTC time of the build.")
    build_seconds: float = Field(description="How long the build took.")
    digest: str = Field(default="", description="sha256 of the fields above that say what the index is (all but "
                        "the build's time); a manifest edited after the build does not match it.")

    def content_digest(self) -> str:
        """sha256 of the fields that say what the index is."""
        fields = self.model_dump(include={"format_version", "model", "dimension", "rows", "text_form", "readout",
                                          "value_names", "files", "reference_files"})
        # A flat index's digest is the one written before the kinds existed, so those manifests still verify.
        if self.index_type != "flat" or self.index_params:
            fields.update(index_type=self.index_type, index_params=self.index_params)
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
