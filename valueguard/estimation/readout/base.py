"""The ReadOut protocol: how a query's neighbours (and its texts and embeddings) become P(against), P(upholds).

Two read-outs ship: `knn` (the neighbours' weighted shares, knn.py) and `model` (the fitted ValueModel,
value_model.py). A read-out is named in the index's manifest (`readout`), fitted when the index is built, saved as
its own files in the index folder (hashed in the manifest, never pickled), and loaded with the index. The estimator
(valueguard/estimation/estimator.py) and held-out cross-validation (valueguard/quality/heldout.py) both call it
through this protocol, so a read-out is measured by the same code that runs it.

Adding one: a module in this package with a class that satisfies ReadOut, and one line in READOUTS
(valueguard/estimation/readout/__init__.py). Nothing else changes: `valueguard index build --readout NAME` and
`valueguard eval --readout NAME` take any registered name.

What the estimator does around a read-out, for every read-out alike: it searches max(k, neighbours) neighbours,
shows the first k as evidence with softmax(similarity / tau) weights and computes `confidence` from them, calls
`predict`, and sets the estimate's values to `values` when the read-out gives them, else upholds - against,
clipped to [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover  (numpy in annotations only: the CLI reads READOUTS without it)
    import numpy as np
    from typing_extensions import Self

    from valueguard.index.manifest import Manifest


@dataclass(frozen=True)
class ReferenceArrays:
    """The index's labelled rows as arrays, row r of each is reference row r (the row numbers neighbours carry)."""

    values: np.ndarray  # (m, 10) float labels in [-1, 1], in VALUE_NAMES order
    against: np.ndarray  # (m, 10) bool: labelled as working against the value (valueguard.values.polarity)
    upholds: np.ndarray  # (m, 10) bool: labelled as upholding it
    label_kinds: np.ndarray  # (m,) str: "annotated" (-1/0/+1 labels) or "model" (evaluator scores)


@dataclass(frozen=True)
class ReadOutInput:
    """What a read-out sees of n queries; every sequence and array is row-aligned with the queries.

    A long text is read as windows: each window is one query here (its text in `responses`).
    """

    responses: Sequence[str]  # each query's response text as given (a window of it for a long text; in the
    #                           non-default "dialogue" text form, the embedded "Human: ...\nBob: ..." text)
    prompts: Sequence[str | None]  # its prompt, None when the call passed none or the index embeds dialogues
    response_emb: np.ndarray  # (n, d) float32 unit rows: the embedded text (the index's text form) of each query
    prompt_emb: Sequence[np.ndarray | None]  # each prompt's (d,) embedding, None where prompts[i] is None
    sims: np.ndarray  # (n, K) cosine similarities of the nearest reference rows, best first; K = min(rows,
    #                   max(k, neighbours))
    idx: np.ndarray  # (n, K) int row numbers of those neighbours into `reference`
    reference: ReferenceArrays  # the rows the neighbours point into (for a held-out fold: its training rows)
    k: int  # the estimator's evidence count: the first k neighbours are the ones a verdict shows
    tau: float  # the estimator's softmax temperature for the evidence weights (<= 0: equal weights)


@dataclass(frozen=True)
class BenignAnchors:
    """Unlabelled benign (prompt, response) turns a read-out may also learn from, as working against no value
    (valueguard.reference.benign: plain helpful chat, which FULCRA's answers to harmful requests lack). They are
    never reference rows: no neighbour, no evidence, no fold."""

    prompts: Sequence[str]  # (a) each turn's prompt
    responses: Sequence[str]  # (a) its response
    response_emb: np.ndarray  # (a, d) float32: the response embedded as the index embeds its rows
    prompt_emb: np.ndarray  # (a, d) float32: the prompt embedded on its own

    def __len__(self) -> int:
        return len(self.responses)


@dataclass(frozen=True)
class ReadOutFit:
    """The labelled rows a read-out is fitted on: the whole reference set at index build, the training folds
    in cross-validation. Fitting must not read anything else (cross-validation relies on it)."""

    responses: Sequence[str]  # (m) full response texts
    prompts: Sequence[str]  # (m) full prompt texts; rows sharing a prompt are one group (fold by it)
    response_emb: np.ndarray  # (m, d) float32: each row's embedded text (the index's text form)
    prompt_emb: np.ndarray  # (m, d) float32: each row's prompt embedded on its own; (m, 0) at index build when
    #                         the read-out does not read prompts (reads_prompt False)
    reference: ReferenceArrays  # the rows' labels, as the ReadOutInput of a later predict gets them
    model_id: str = ""  # the embedding model of response_emb / prompt_emb (a read-out that encodes texts itself
    #                     uses the same model); "" when the caller does not say (then: the default model)
    anchors: BenignAnchors | None = None  # benign turns beside the rows (the pair read-out's stacker learns from
    #                                       them; the other read-outs ignore them); None: none


@dataclass(frozen=True)
class ReadOutPrediction:
    """A read-out's answer for n queries."""

    against: np.ndarray  # (n, 10) P(the response works against each value), in [0, 1]
    upholds: np.ndarray  # (n, 10) P(it upholds each value), in [0, 1]
    # (n, 10) the expected label, when the read-out has a better one than upholds - against (kNN: the neighbours'
    # weighted mean label, which keeps the evaluator scores' magnitudes); None: upholds - against.
    values: np.ndarray | None = None


@runtime_checkable
class ReadOut(Protocol):
    """One way of reading out a value vector. Implementations: knn.KnnReadOut, value_model.ValueModelReadOut.

    Class attributes:
      name          the manifest's `readout` value and the CLI's --readout choice (the key in READOUTS)
      neighbours    how many nearest neighbours `predict` needs at least (the estimator searches max(k, this))
      reads_prompt  whether `predict` reads prompts (their texts and embeddings); False: every prompt is None
      files         top-level names (files or folders) this read-out writes into an index folder; a file of
                    another read-out found in an index is refused, and left-overs are removed at save
      learns_from_anchors  whether `fit` reads ReadOutFit.anchors (benign turns); False: the caller need not
                    embed any

    Lifecycle: `fit` at `valueguard index build` (and on each training fold in cross-validation); `save` into the
    index folder, which then hashes what it returned into the manifest; `load` when the index is loaded, after every
    hashed file was verified. Heavy imports (torch, ...) belong inside fit/load/predict, not at module level.
    """

    name: ClassVar[str]
    neighbours: ClassVar[int]
    reads_prompt: ClassVar[bool]
    files: ClassVar[tuple[str, ...]]
    learns_from_anchors: ClassVar[bool]

    @classmethod
    def fit(cls, data: ReadOutFit) -> Self:
        """A read-out fitted on `data` (deterministic for the same data, so a rebuilt index reads out the same)."""
        ...

    def predict(self, data: ReadOutInput) -> ReadOutPrediction:
        """P(against) and P(upholds) of each query; must not fail on n = 0 or on queries without prompts."""
        ...

    def save(self, directory: Path) -> list[str]:
        """Write this read-out's files into `directory` (the index folder, which exists); return their paths
        relative to it (e.g. ["value_model.npz"] or ["cross_encoder/model.safetensors", ...]), all under `files`."""
        ...

    @classmethod
    def load(cls, directory: Path, manifest: Manifest) -> Self:
        """The read-out saved in `directory`, whose files the manifest's hashes have verified already. Raise
        ValueIndexError (valueguard.index.manifest.file_error(path, "readout", why)) for a file that does not read
        or contradicts the manifest (e.g. another embedding dimension than manifest.dimension)."""
        ...

    def is_current(self, anchors_sha256: str) -> bool:
        """Whether a rebuild would fit this read-out the same, beyond what the manifest checks (reference files,
        model, text form): given the fingerprint of the benign anchors a rebuild would read
        (valueguard.reference.benign.anchors_sha256). A read-out that learns nothing outside the index: True."""
        ...
