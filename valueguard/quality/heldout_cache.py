"""Held-out estimates saved to disk, so that several calibrations of one set-up share one cross-validation.

Why: cross-validating the pair read-out refits its stacker on every fold (about half an hour on 2 cores), and
`make thresholds` calibrates two policies on the same held-out estimates. A saved result is reused only when
everything it came from is the same: the labelled files' bytes, the split, the read-out, the model, and the
source of the code that computes estimates (valueguard's estimation, embedders, index, reference and values
packages, and quality/heldout.py), so an edit to the estimator never reuses a stale result. Stored pickle-free (numpy arrays, JSON for the set-up).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from valueguard.quality.heldout import HeldOut

# What computes a held-out estimate (the policy, calibration and metrics only read it).
_CODE = ("estimation", "embedders", "index", "reference", "values", "quality/heldout.py")


def _code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for part in _CODE:
        paths = [root / part] if (root / part).is_file() else sorted((root / part).rglob("*"))
        for path in paths:
            if path.is_file() and path.suffix in (".py", ".npz", ".json"):
                h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def held_out_key(files: list[Path], setup: dict[str, Any]) -> str:
    """A digest of what a held-out result depends on: the files' bytes, the set-up, and the estimating code."""
    h = hashlib.sha256(json.dumps(setup, sort_keys=True, default=str).encode())
    for path in files:
        h.update(b"\0" + hashlib.sha256(Path(path).read_bytes()).digest())
    h.update(_code_digest().encode())
    return h.hexdigest()[:24]


def save_held_out(directory: Path, key: str, h: HeldOut, setup: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"held-out-{key}.npz"
    tmp = path.with_suffix(".tmp.npz")
    with open(tmp, "wb") as f:
        np.savez(f, true=h.true, kinds=h.kinds.astype(str), values=h.values, against=h.against,
                 confidence=h.confidence, setup=np.array(json.dumps(setup, default=str)))
    tmp.replace(path)  # a run killed mid-write leaves no half file to be reused
    return path


def load_held_out(directory: Path, key: str) -> tuple[HeldOut, dict[str, Any]] | None:
    """The saved result for `key`, or None when there is none (or it cannot be read: it is then recomputed)."""
    path = directory / f"held-out-{key}.npz"
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            h = HeldOut(z["true"], z["kinds"], z["values"], z["against"], z["confidence"])
            setup = json.loads(str(z["setup"]))
    except Exception:  # a truncated or foreign file: recompute rather than fail
        return None
    return h, setup
