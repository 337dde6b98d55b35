"""Fold labelled rows into a built index: `valueguard index add` (docs/teach.md).

Only the new rows are embedded (with the index's own embedder, as `index build` embeds); they are appended to the
FAISS index, values.npy and rows.jsonl, and the index's read-out is fitted again on all rows through the ReadOut
protocol (`readout_class(manifest.readout).fit(ReadOutFit(...))`, the call `index build` makes), so any registered
read-out refits alike. The old rows' response vectors come back out of the FAISS index (`reconstruct_n`). A
read-out that reads prompts (`reads_prompt`) also gets each row's prompt vector, which an index does not keep: the
first add embeds the old rows' prompts once (their stored 400-character snippets, distinct prompts only) and keeps
every row's prompt vector in `prompt_embeddings.npy`, hashed in the manifest, so later adds embed nothing old.

The texts a refit gets: the added rows' full prompt and response; for the rows already in the index, only the
400-character snippets rows.jsonl keeps (an index does not hold the full texts). A read-out that reads the texts
themselves is refitted on those snippets for the old rows (`index build` gives it the full texts).

A row whose (prompt, response) is already in the index (compared as the stored snippets) is skipped and counted.
The FAISS index is added to, never retrained: an ivf index puts the new rows in the lists trained at build (its
centroids are kept), an hnsw one links them into its graph, a flat one appends them; `faiss_update` says which.
Each added file is listed in the manifest's reference files (a file of the same name listed before is replaced:
adding a grown labels.jsonl again adds only its new lines), so `index info` and `index build --reference` stay
honest about what the index holds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from valueguard.embedders.base import Embedder
from valueguard.estimation.readout import BenignAnchors, ReadOut, ReadOutFit, readout_class
from valueguard.estimation.value_index import ValueIndex, benign_anchors, embed_anchors, reference_arrays
from valueguard.index import kinds
from valueguard.index.manifest import (
    KEPT_FILES, SNIPPET_CHARS, Manifest, ReferenceFileEntry, ValueIndexError, format_text, rebuild_hint,
)
from valueguard.index.store import ReferenceIndex, RowInfo, embed_texts
from valueguard.logs import get_logger
from valueguard.reference.benign import anchors_sha256
from valueguard.reference.dataset import sha256_file
from valueguard.reference.readers import read_reference
from valueguard.reference.record import ReadReport, ReferenceRecord

log = get_logger("valueguard.index")
PROMPTS_FILE = KEPT_FILES[0]


@dataclass
class AddResult:
    """What an add did: rows added and skipped, each file's read report, what was refitted, and the times."""

    directory: str
    rows_before: int
    added: int = 0
    duplicates: int = 0
    reports: list[ReadReport] = field(default_factory=list)
    refitted: str | None = None  # what was refitted, e.g. "read-out 'model' on 5,020 rows"; None: nothing to
    #                              refit (a read-out without files, e.g. knn, has no fitted part)
    faiss_update: str | None = None  # what adding did to the FAISS index (index/kinds.py, describe_add)
    embed_seconds: float = 0.0
    refit_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return self.rows_before + self.added

    def to_dict(self) -> dict:
        return {"index": self.directory, "rows_before": self.rows_before, "added": self.added, "rows": self.rows,
                "duplicates_skipped": self.duplicates, "refitted": self.refitted,
                "faiss_update": self.faiss_update,
                "embed_seconds": round(self.embed_seconds, 2), "refit_seconds": round(self.refit_seconds, 2),
                "seconds": round(self.seconds, 2), "reference_files": [r.to_dict() for r in self.reports]}


def _key(prompt: str, response: str) -> tuple[str, str]:
    return prompt[:SNIPPET_CHARS], response[:SNIPPET_CHARS]


def _embed(embedder: Embedder, texts: list[str], batch_size: int) -> np.ndarray:
    return embed_texts(embedder, texts, batch_size) if texts else np.zeros((0, 0), np.float32)


def _embed_distinct(embedder: Embedder, texts: list[str], batch_size: int) -> np.ndarray:
    distinct = list(dict.fromkeys(texts))
    emb = _embed(embedder, distinct, batch_size)
    at = {t: i for i, t in enumerate(distinct)}
    return emb[[at[t] for t in texts]]


def stored_prompt_embeddings(directory: Path, index: ValueIndex) -> np.ndarray | None:
    """The rows' prompt vectors kept by an earlier add, when they are listed in the manifest, match its hash and
    fit the index; else None (they are then embedded again, never trusted)."""
    path = directory / PROMPTS_FILE
    want = index.manifest.files.get(PROMPTS_FILE)
    if not want or not path.is_file() or sha256_file(path) != want:
        return None
    try:
        emb = np.load(path, allow_pickle=False)
    except Exception:  # a damaged file is recomputed, not fatal
        return None
    return emb if emb.shape == (len(index), index.manifest.dimension) else None


def refit_readout(store: ReferenceIndex, responses: Sequence[str], prompts: Sequence[str],
                  prompt_emb: np.ndarray, anchors: BenignAnchors | None = None) -> ReadOut:
    """The index's read-out fitted on all of the store's rows, by the protocol call `index build` makes.

    `responses` / `prompts`: each row's texts (the best there are: see the module's docstring); `prompt_emb`: (m, d)
    prompt vectors, or (m, 0) for a read-out that does not read prompts; `anchors`: the benign turns `index build`
    gives a read-out that learns from them."""
    return readout_class(store.manifest.readout).fit(ReadOutFit(
        list(responses), list(prompts), store.embeddings(), prompt_emb, reference_arrays(store), model_id=store.model,
        anchors=anchors))


def read_new_rows(paths: Sequence[str | Path], index: ValueIndex,
                  result: AddResult) -> tuple[list[ReferenceRecord], list[ReferenceFileEntry]]:
    """The records of every file that the index does not hold yet; duplicates counted, bad lines reported."""
    seen = {_key(r.prompt, r.response) for r in index.rows}
    records, entries = [], []
    for p in paths:
        report = ReadReport(str(p))
        for rec in read_reference(p, report):
            key = _key(rec.prompt, rec.response)
            if key in seen:
                result.duplicates += 1
                continue
            seen.add(key)
            records.append(rec)
        result.reports.append(report)
        entries.append(ReferenceFileEntry(name=Path(p).name, sha256=sha256_file(p), format=report.format,
                                          records=report.records))
    return records, entries


def add_to_index(directory: str | Path, paths: Sequence[str | Path], embedder: Embedder | None = None, *,
                 batch_size: int = 64) -> AddResult:
    """Add the rows of `paths` (labels.jsonl or any reference format) to the index at `directory`, refit its
    read-out and rewrite it; `embedder`: the index's (default: the one `index build` uses for its model)."""
    start = time.perf_counter()
    directory = Path(directory)
    index = ValueIndex.load(directory)
    if embedder is None:
        from valueguard.embedders.backends import make_index_embedder

        embedder = make_index_embedder(index.model)
    elif embedder.model_id != index.model:
        raise ValueIndexError(f"index at {directory} was built with model {index.model!r}, the embedder is "
                              f"{embedder.model_id!r}; {rebuild_hint(directory)}")
    result = AddResult(str(directory), len(index))
    records, entries = read_new_rows(paths, index, result)
    m = index.manifest
    names = {e.name for e in entries}
    m.reference_files = [f for f in m.reference_files if f.name not in names] + entries
    if not records:  # nothing new: the files are still listed as what the index holds
        _write_manifest(directory, m)
        result.seconds = time.perf_counter() - start
        return result
    anchor_turns = _fitted_anchor_turns(index, directory)
    t = time.perf_counter()
    readout_cls = readout_class(m.readout)
    new_emb = _embed(embedder, [format_text(r.response, r.prompt, index.text_form) for r in records], batch_size)
    if new_emb.shape[1] != m.dimension:
        raise ValueIndexError(f"the embedder gives dimension {new_emb.shape[1]}, the index has {m.dimension}; "
                              f"{rebuild_hint(directory)}")
    # The prompt vectors, old rows' and new, only for a read-out that reads prompts.
    prompt_emb = np.zeros((len(index) + len(records), 0), np.float32)
    if readout_cls.reads_prompt:
        old_prompts = stored_prompt_embeddings(directory, index)
        if old_prompts is None:
            old_prompts = _embed_distinct(embedder, [r.prompt for r in index.rows], batch_size)
        prompt_emb = np.vstack([old_prompts, _embed_distinct(embedder, [r.prompt for r in records], batch_size)])
    result.embed_seconds = time.perf_counter() - t

    # The refit's texts: the old rows' snippets (all the index keeps), the new rows' full texts.
    responses = [r.response for r in index.rows] + [r.response for r in records]
    prompts = [r.prompt for r in index.rows] + [r.prompt for r in records]
    store = index.store
    store.faiss_index.add(np.ascontiguousarray(new_emb, dtype=np.float32))
    store.values = np.vstack([store.values, np.stack([r.values.to_array() for r in records]).astype(np.float32)])
    store.rows += [RowInfo(r.id, r.source, r.label_kind, r.prompt[:SNIPPET_CHARS], r.response[:SNIPPET_CHARS])
                   for r in records]
    result.added = len(records)
    result.faiss_update = kinds.describe_add(m.index_type, m.index_params, len(records))

    t = time.perf_counter()
    anchors = embed_anchors(embedder, anchor_turns, index.text_form, batch_size)
    refitted = ValueIndex(store, refit_readout(store, responses, prompts, prompt_emb, anchors))
    if readout_cls.files:  # a read-out without files has no fitted part
        result.refitted = f"read-out {m.readout!r} on {len(store):,} rows"
    result.refit_seconds = time.perf_counter() - t

    m.rows = len(store)
    m.built_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    refitted.save(directory)
    if readout_cls.reads_prompt:
        _keep_prompt_embeddings(directory, refitted, prompt_emb)
    result.seconds = time.perf_counter() - start
    log.info("index rows added", added=result.added, duplicates=result.duplicates, rows=result.rows,
             seconds=round(result.seconds, 2))
    return result


def _fitted_anchor_turns(index: ValueIndex, directory: Path) -> list[tuple[str, str]]:
    """The benign anchors to refit `index`'s read-out with: none if it was fitted without, else the data
    directory's (an index does not keep them), which must be the ones it was fitted on."""
    info = getattr(index.readout, "info", {})
    if not info.get("anchors"):
        return []
    turns = benign_anchors(index.manifest.readout)
    if anchors_sha256(turns) != info.get("anchors_sha256"):
        # Another set (custom anchors through the Python API, or another HH file): refitting on it would change
        # what the index learnt from, so refuse before anything is embedded or written.
        raise ValueIndexError(f"index at {directory} was fitted on {info['anchors']:,} benign anchors that are not "
                              f"the data directory's ({len(turns):,} there), so they cannot be refitted on: "
                              f"build it again with the new rows through ValueIndex.build(..., anchors=...), or "
                              f"{rebuild_hint(directory)} --benign-anchors")
    return turns


def _keep_prompt_embeddings(directory: Path, index: ValueIndex, prompt_emb: np.ndarray) -> None:
    """Write the prompt vectors and list them in the manifest (after `save`: a cut between the two leaves them
    unlisted, so the next add embeds the prompts again rather than trusting them)."""
    np.save(directory / PROMPTS_FILE, prompt_emb.astype(np.float32), allow_pickle=False)
    index.manifest.files[PROMPTS_FILE] = sha256_file(directory / PROMPTS_FILE)
    _write_manifest(directory, index.manifest)


def _write_manifest(directory: Path, m: Manifest) -> None:
    m.digest = m.content_digest()
    tmp = directory / "manifest.json.tmp"
    tmp.write_text(m.model_dump_json(indent=2), encoding="utf-8")
    os.replace(tmp, directory / "manifest.json")
