"""`valueguard train`: fit the pair read-out's stacker on a reference set and write it with a training manifest.

The stacker is what `index build` cannot afford to fit (five value-model fits and one pair encoding per row, a few
minutes on two cores), so the package ships the one fitted on the default FULCRA files, in
valueguard/estimation/readout/trained/. `make train` rewrites it; the manifest beside it says what it was fitted on
(the data hash the read-out checks, the reference files' sha256, the benign anchors, folds, the stacker's seeds
and hyper-parameters, encoder) and the sha256 of the weights, so a stale or edited file is never used.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from valueguard.config import data_dir
from valueguard.embedders.base import Embedder
from valueguard.estimation.readout import pair, stacker
from valueguard.estimation.value_index import fit_data
from valueguard.index.store import ReferenceIndex
from valueguard.reference.benign import BENIGN_FILE, BENIGN_TEST_LINES, anchors_sha256, default_anchor_turns
from valueguard.reference.dataset import ReferenceSet, sha256_file


@dataclass(frozen=True)
class TrainResult:
    """What `train_pair_stacker` wrote."""

    directory: Path
    rows: int
    data_sha256: str
    sha256: str
    seconds: float


def train_pair_stacker(reference: ReferenceSet, embedder: Embedder, out: Path | None = None,
                       anchors: Sequence[tuple[str, str]] = ()) -> TrainResult:
    """Fit the stacker on every row of `reference` (embedded by `embedder`, as `index build` embeds them), and on
    the benign `anchors` when given (`index build` fits with the data directory's), into `out` (default: the
    package's trained/ folder)."""
    start = time.perf_counter()
    out = Path(out or pair.TRAINED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    store = ReferenceIndex.build(reference, embedder, text_form="response", readout=pair.PairReadOut.name)
    data = fit_data(reference, store, embedder, reads_prompt=True, anchors=anchors)
    fitted = pair.PairReadOut.fit(data, use_shipped=False)
    weights = out / "pair_stacker.npz"
    fitted.stacker.save(weights)
    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    digest = pair.data_hash(data, data.model_id)
    seconds = round(time.perf_counter() - start, 1)
    manifest = {
        "file": weights.name, "sha256": sha, "data_sha256": digest, "rows": len(data.responses),
        "model": data.model_id, "pair_encoder": "onnx-int8", "pair_pooling": pair.PAIR_POOLING,
        "pair_max_tokens": pair.PAIR_MAX_TOKENS, "folds": pair.FOLDS, "fold_seed": pair.SEED,
        "stacker_version": stacker.STACKER_VERSION,
        "stacker": stacker.hyper_parameters(),
        "reference_files": [{"name": f.name, "sha256": f.sha256} for f in reference.files],
        "anchors": _anchors_record(anchors),
        "trained_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "seconds": seconds,
        "command": "valueguard train (make train)",
    }
    (out / pair.TRAINED_MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
    return TrainResult(out, len(data.responses), digest, sha, seconds)


def _anchors_record(anchors: Sequence[tuple[str, str]]) -> dict[str, object]:
    """What the manifest says of the benign anchors: how many, their fingerprint, and the file they come from
    when they are the default ones."""
    record: dict[str, object] = {"rows": len(anchors), "sha256": anchors_sha256(list(anchors))}
    path = data_dir() / BENIGN_FILE
    if anchors and path.is_file() and list(anchors) == default_anchor_turns(data_dir()):
        record.update(file=BENIGN_FILE.as_posix(), file_sha256=sha256_file(path),
                      lines=f"after the first {BENIGN_TEST_LINES}, prompts of those lines left out")
    return record
