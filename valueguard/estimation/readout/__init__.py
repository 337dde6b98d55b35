"""Read-outs: the ReadOut protocol (base.py) and the registry of read-outs by manifest name.

A read-out is one module here and one line in READOUTS: "name": "module:Class". The registry names classes by
import path, so a read-out with heavy dependencies costs nothing until an index that uses it is loaded.
"""

from __future__ import annotations

import importlib

from valueguard.estimation.readout.base import (
    BenignAnchors, ReadOut, ReadOutFit, ReadOutInput, ReadOutPrediction, ReferenceArrays,
)

__all__ = ["READOUTS", "BenignAnchors", "ReadOut", "ReadOutFit", "ReadOutInput", "ReadOutPrediction", "ReferenceArrays",
           "readout_class"]

# manifest `readout` name -> "module:Class" of its ReadOut. DEFAULT_READOUT: what `index build` and `eval` use.
READOUTS: dict[str, str] = {
    "model": "valueguard.estimation.readout.value_model:ValueModelReadOut",
    "knn": "valueguard.estimation.readout.knn:KnnReadOut",
    "pair": "valueguard.estimation.readout.pair:PairReadOut",
}
DEFAULT_READOUT = "pair"


def readout_class(name: str) -> type[ReadOut]:
    """The registered read-out called `name`; a KeyError naming the registered ones otherwise."""
    if name not in READOUTS:
        raise KeyError(f"unknown read-out {name!r}: registered are {', '.join(READOUTS)}")
    module, _, cls = READOUTS[name].partition(":")
    found: type[ReadOut] = getattr(importlib.import_module(module), cls)
    return found
