"""benchmarks/stacker_features.py: the value-model opinions a fold's stacker learns from never saw that fold
(the nesting that makes the script agree with `valueguard eval`, docs/quality.md)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest

from valueguard.estimation.folds import group_folds
from valueguard.estimation.readout.base import ReferenceArrays
from valueguard.estimation.value_index import fit_data
from valueguard.index.store import ReferenceIndex
from valueguard.reference import ReferenceSet
from valueguard.reference.benign import BENIGN_FILE, anchor_turns

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from stacker_features import nested  # noqa: E402


@pytest.fixture(scope="module")
def small_fit(split, embedder, shared_data):
    """300 real rows (enough for five outer and five inner value-model folds) and 40 real benign anchors."""
    small = ReferenceSet(split[0].records[:150] + split[0].records[-150:])
    store = ReferenceIndex.build(small, embedder, text_form="response", readout="pair")
    return fit_data(small, store, embedder, reads_prompt=True, anchors=anchor_turns(shared_data / BENIGN_FILE)[:40])


def _relabelled(fit, rows: np.ndarray):
    """The same texts, the given rows' against and upholds labels swapped."""
    ref = fit.reference
    against, upholds = ref.against.copy(), ref.upholds.copy()
    against[rows], upholds[rows] = ref.upholds[rows], ref.against[rows]
    return dataclasses.replace(fit, reference=ReferenceArrays(ref.values, against, upholds, ref.label_kinds))


def test_a_folds_training_opinions_never_saw_the_fold(small_fit):
    fold = group_folds(list(small_fit.prompts), 5, 0)
    before = nested(small_fit, fold)
    after = nested(_relabelled(small_fit, np.where(fold == 0)[0]), fold)
    # Fold 0's stacker learns from these: relabelling fold 0 must not move them (the leak the shortcut had).
    for key in ("nest_a", "nest_u", "a_nest_a", "a_nest_u"):
        assert np.array_equal(before[key][0], after[key][0]), key
    # Every other fold's stacker trains on fold 0's rows, so theirs do move: the relabelling is seen where it may be.
    assert all(not np.allclose(before["nest_a"][g], after["nest_a"][g]) for g in range(1, 5))
    assert all(not np.allclose(before["a_nest_a"][g], after["a_nest_a"][g]) for g in range(1, 5))
    # A fold's own rows get no opinion in its slice; the others get a probability.
    assert not before["nest_a"][0][fold == 0].any()
    assert before["nest_a"][0][fold != 0].max() > 0.5 and before["a_nest_a"].shape == (5, 40, 10)
