"""Saved held-out estimates: reused only for the very same inputs, and never half-read."""

import numpy as np
import pytest

from valueguard.quality.heldout import HeldOut
from valueguard.quality.heldout_cache import held_out_key, load_held_out, save_held_out

SETUP = {"folds": 5, "readout": "pair", "prompt": True, "model": "m", "backend": "torch", "references": 1, "tests": 0}


def _held_out(seed: int = 0) -> HeldOut:
    rng = np.random.default_rng(seed)
    return HeldOut(rng.uniform(-1, 1, (7, 10)), np.array(["annotated"] * 3 + ["model"] * 4),
                   rng.uniform(-1, 1, (7, 10)), rng.uniform(0, 1, (7, 10)), rng.uniform(0, 1, 7))


def test_a_saved_result_comes_back_whole(tmp_path):
    h = _held_out()
    save_held_out(tmp_path, "k", h, {"mode": "5-fold", "rows": 7})
    back, setup = load_held_out(tmp_path, "k")
    for field in ("true", "values", "against", "confidence"):
        np.testing.assert_array_equal(getattr(back, field), getattr(h, field))
    assert list(back.kinds) == list(h.kinds) and setup == {"mode": "5-fold", "rows": 7}
    assert list(tmp_path.iterdir()) == [tmp_path / "held-out-k.npz"]  # no temporary file left behind


@pytest.mark.parametrize("change", [
    "file bytes",    # a labelled file edited in place must not reuse estimates of its old rows
    "folds",         # another split is another experiment
    "readout",       # the read-out is what is being measured
])
def test_the_key_changes_with_what_the_result_depends_on(tmp_path, change):
    f = tmp_path / "ref.jsonl"
    f.write_text('{"a": 1}\n')
    before = held_out_key([f], SETUP)
    setup = dict(SETUP)
    if change == "file bytes":
        f.write_text('{"a": 2}\n')
    elif change == "folds":
        setup["folds"] = 3
    else:
        setup["readout"] = "model"
    assert held_out_key([f], setup) != before
    assert held_out_key([f], setup) == held_out_key([f], setup)  # and is stable for the same inputs


@pytest.mark.parametrize("content", [
    b"",                      # a run killed before writing anything
    b"PK\x03\x04 not a zip",  # a truncated archive
])
def test_an_unreadable_file_is_recomputed_not_trusted(tmp_path, content):
    (tmp_path / "held-out-k.npz").write_bytes(content)
    assert load_held_out(tmp_path, "k") is None
    assert load_held_out(tmp_path, "missing") is None
