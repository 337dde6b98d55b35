"""ValueIndex: the reference store (valueguard/index/) together with its fitted read-out, built, saved and loaded
as one folder. The manifest names the read-out (`readout`), and READOUTS (readout/__init__.py) gives its class."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from valueguard.config import data_dir
from valueguard.embedders.base import Embedder
from valueguard.estimation.readout import READOUTS, BenignAnchors, ReadOut, ReadOutFit, ReferenceArrays, readout_class
from valueguard.index.manifest import (
    KEPT_FILES, STORE_FILES, Manifest, TextForm, ValueIndexError, format_text, rebuild_hint,
)
from valueguard.index.store import ReferenceIndex, RowInfo, embed_texts
from valueguard.reference.benign import anchors_sha256, default_anchor_turns
from valueguard.reference.dataset import ReferenceSet
from valueguard.values.polarity import polarity


def _owner(name: str) -> str | None:
    """The registered read-out whose files include the top-level entry `name`."""
    top = name.split("/", 1)[0]
    return next((r for r in READOUTS if top in readout_class(r).files), None)


def reference_arrays(store: ReferenceIndex) -> ReferenceArrays:
    """The store's labels as a read-out reads them (values, polarity masks, label kinds)."""
    against, upholds = polarity(store.values, store.label_kinds)
    return ReferenceArrays(store.values, against, upholds, np.array(store.label_kinds))


def fit_data(reference: ReferenceSet, store: ReferenceIndex, embedder: Embedder, *, reads_prompt: bool,
             batch_size: int = 64, anchors: Sequence[tuple[str, str]] = ()) -> ReadOutFit:
    """What a read-out is fitted on at index build: the store's rows, their embeddings and (when it reads them)
    their prompts' embeddings, from the index's embedder; and the benign (prompt, response) `anchors`, embedded
    the same way."""
    prompt_emb = np.zeros((len(reference), 0), np.float32)
    if reads_prompt:
        # The prompt's embedding beside the response's; prompts repeat, embed each once.
        prompts = list(dict.fromkeys(r.prompt for r in reference))
        at = {p: i for i, p in enumerate(prompts)}
        prompt_emb = embed_texts(embedder, prompts, batch_size)[[at[r.prompt] for r in reference]]
    return ReadOutFit([r.response for r in reference], [r.prompt for r in reference], store.embeddings(), prompt_emb,
                      reference_arrays(store), model_id=embedder.model_id,
                      anchors=embed_anchors(embedder, anchors, store.text_form, batch_size))


def embed_anchors(embedder: Embedder, anchors: Sequence[tuple[str, str]], text_form: TextForm,
                  batch_size: int = 64) -> BenignAnchors | None:
    """(prompt, response) anchors with their embeddings (responses in the index's text form); None for none."""
    if not anchors:
        return None
    prompts, responses = [p for p, _ in anchors], [r for _, r in anchors]
    texts = [format_text(r, p, text_form) for p, r in anchors]
    return BenignAnchors(prompts, responses, embed_texts(embedder, texts, batch_size),
                         embed_texts(embedder, prompts, batch_size))


def benign_anchors(readout: str) -> list[tuple[str, str]]:
    """DATA_DIR's benign anchors (valueguard.reference.benign: what `index build` fits with) for a read-out that
    learns from them; none for the others, or when the file is not there."""
    if not readout_class(readout).learns_from_anchors:
        return []
    return default_anchor_turns(data_dir())


class ValueIndex:
    """A searchable reference set and the read-out fitted on it: what a ValueEstimator reads."""

    def __init__(self, store: ReferenceIndex, readout: ReadOut) -> None:
        self.store, self.readout = store, readout
        self.reference = reference_arrays(store)

    # The store's parts, as an estimator and the CLI read them.
    faiss_index = property(lambda self: self.store.faiss_index)
    values = property(lambda self: self.store.values)
    rows: Any = property(lambda self: self.store.rows)
    manifest: Any = property(lambda self: self.store.manifest)
    model = property(lambda self: self.store.model)
    version = property(lambda self: self.store.version)
    text_form = property(lambda self: self.store.text_form)

    def __len__(self) -> int:
        return len(self.store)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and row numbers of the k nearest rows of each query (rows best first)."""
        return self.store.search(queries, k)

    @classmethod
    def build(cls, reference: ReferenceSet, embedder: Embedder, *, text_form: TextForm = "response",
              readout: str = "model", index_type: str | None = None, batch_size: int = 64,
              progress: Callable[[int], None] | None = None,
              anchors: Sequence[tuple[str, str]] = ()) -> ValueIndex:
        """Embed every reference row (in batches; `progress(n)` after each), index it in a FAISS index of
        `index_type` (None: chosen by size), fit the read-out. `anchors`: benign (prompt, response) turns for a
        read-out that learns from them (none unless given; `benign_anchors(readout)` gives the data directory's,
        which `index build` fits with and the shipped stacker was trained with)."""
        readout_cls = readout_class(readout)
        store = ReferenceIndex.build(reference, embedder, text_form=text_form, readout=readout,
                                     index_type=index_type, batch_size=batch_size, progress=progress)
        fitted = readout_cls.fit(fit_data(reference, store, embedder, reads_prompt=readout_cls.reads_prompt,
                                          batch_size=batch_size,
                                          anchors=anchors if readout_cls.learns_from_anchors else ()))
        return cls(store, fitted)

    def save(self, directory: str | Path) -> Path:
        """Write the read-out's files and the store's; files another read-out left there are removed first."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for name in READOUTS:
            if name != self.manifest.readout:
                for entry in readout_class(name).files:
                    path = directory / entry
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        return self.store.save(directory, self.readout.save(directory))

    read_manifest = staticmethod(ReferenceIndex.read_manifest)

    @classmethod
    def verified_manifest(cls, directory: str | Path, *, model: str | None = None) -> Manifest:
        """ReferenceIndex.verified_manifest, and a read-out this valueguard knows whose files are all there."""
        directory = Path(directory)
        m = ReferenceIndex.verified_manifest(directory, model=model)
        where, hint = directory / "manifest.json", rebuild_hint(directory)
        if m.readout not in READOUTS:
            raise ValueIndexError(f"{where}: field readout: {m.readout!r} is not a read-out this valueguard knows "
                                  f"({', '.join(READOUTS)}); {hint}")
        for name in m.files:
            if name.startswith("/") or ".." in Path(name).parts:
                raise ValueIndexError(f"{where}: field files: {name!r} is not inside the index folder; {hint}")
        own = readout_class(m.readout).files
        extra = [n for n in m.files if n not in (*STORE_FILES, *KEPT_FILES)]
        foreign = [n for n in extra if n.split("/", 1)[0] not in own]
        foreign += [n for r in READOUTS if r != m.readout for n in readout_class(r).files
                    if (directory / n).exists() and n not in foreign]
        if foreign:
            raise ValueIndexError(f"{where}: field readout: {m.readout!r}, but the index has the files of read-out "
                                  f"{_owner(foreign[0])!r} ({', '.join(foreign)}); {hint}")
        for name in own:
            if not any(n == name or n.startswith(name + "/") for n in extra):
                raise ValueIndexError(f"index at {directory} is missing {name}; {hint}")
        return m

    @classmethod
    def load(cls, directory: str | Path, *, model: str | None = None, dimension: int | None = None) -> ValueIndex:
        """Load and verify. `model`/`dimension`: what the caller's embedder produces; a mismatch is refused."""
        directory = Path(directory)
        m = cls.verified_manifest(directory, model=model)
        store = ReferenceIndex.load(directory, m, dimension=dimension)
        return cls(store, readout_class(m.readout).load(directory, m))

    def is_current(self, reference_paths: Sequence[str | Path], model: str, text_form: TextForm,
                   readout: str = "model", anchors: Sequence[tuple[str, str]] = ()) -> bool:
        """True when this index was built from exactly these files (by content), model, text form and read-out,
        and its read-out would be fitted the same (the same benign `anchors`, the same shipped weights)."""
        if not self.store.is_current(reference_paths, model, text_form, readout):
            return False
        return self.readout.is_current(anchors_sha256(list(anchors) if readout_class(readout).learns_from_anchors
                                                      else []))


@dataclass
class BuildResult:
    """What `build_cached` did: the index, whether it was built now, and what reading the references found."""

    index: ValueIndex
    built: bool  # False: an up-to-date index was already there
    reports: list = field(default_factory=list)  # ReadReport of each reference file read
    duplicates: int = 0


def build_cached(reference_paths: Sequence[str | Path], out: str | Path, embedder: Embedder, *,
                 text_form: TextForm = "response", readout: str = "model", index_type: str | None = None,
                 force: bool = False,
                 progress_factory: Callable[[int], Callable[[int], None]] | None = None,
                 anchors: Sequence[tuple[str, str]] = ()) -> BuildResult:
    """Build the index at `out`, unless one built from the same files, model, text form, read-out and FAISS
    index kind (`index_type`; None: whatever kind is there), fitted the same way (`anchors`, as ValueIndex.build
    reads them), is there already.

    A present index that fails verification is rebuilt, never trusted.
    """
    out = Path(out)
    if not force and (out / "manifest.json").is_file():
        try:
            existing = ValueIndex.load(out, model=embedder.model_id)
            if (existing.is_current(reference_paths, embedder.model_id, text_form, readout, anchors)
                    and index_type in (None, existing.manifest.index_type)):
                return BuildResult(existing, built=False)
        except ValueIndexError:
            pass
    reference = ReferenceSet.from_files(reference_paths)
    progress = progress_factory(len(reference)) if progress_factory else None
    index = ValueIndex.build(reference, embedder, text_form=text_form, readout=readout, index_type=index_type,
                             progress=progress, anchors=anchors)
    index.save(out)
    return BuildResult(index, True, reference.reports, reference.duplicates)


__all__ = ["BuildResult", "RowInfo", "ValueIndex", "build_cached"]
