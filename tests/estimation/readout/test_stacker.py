"""The pair read-out's stacker: a seed ensemble of small networks, fitted with torch and predicted with numpy."""

import numpy as np
import pytest

from valueguard.estimation.readout.base import ReferenceArrays
from valueguard.estimation.readout.stacker import HIDDEN, STACKER_VERSION, AnchorFeatures, Stacker, features
from valueguard.quality.metrics import roc_auc
from valueguard.values import N_VALUES

DIM = 16


def _data(n: int, seed: int):
    """Pair vectors whose first coordinate decides 'against value 0' and second 'upholds value 3'; the value
    model's probabilities carry no signal."""
    rng = np.random.default_rng(seed)
    pair = rng.normal(size=(n, DIM)).astype(np.float32)
    vm = np.full((n, N_VALUES), 0.1)
    against, upholds = np.zeros((n, N_VALUES), bool), np.zeros((n, N_VALUES), bool)
    against[:, 0], upholds[:, 3] = pair[:, 0] > 0.5, pair[:, 1] > 0
    return pair, vm, ReferenceArrays(np.zeros((n, N_VALUES)), against, upholds, np.array(["annotated"] * n))


@pytest.fixture(scope="module")
def fitted() -> Stacker:
    pair, vm, ref = _data(600, 0)
    return Stacker.fit(pair, vm, vm, ref, seeds=(0, 1))


def test_it_learns_a_signal_only_the_pair_vector_carries(fitted):
    pair, vm, ref = _data(400, 1)
    against, upholds = fitted.predict(pair, vm, vm)
    assert against.shape == upholds.shape == (400, N_VALUES)
    assert roc_auc(ref.against[:, 0], against[:, 0]) > 0.95
    assert roc_auc(ref.upholds[:, 3], upholds[:, 3]) > 0.95
    # A value that is never labelled stays unlikely.
    assert against[:, 5].max() < 0.2


def test_numpy_prediction_is_the_trained_networks_output(fitted):
    """The numpy forward pass (tanh GELU, mean of members' sigmoids) equals torch's on the same weights."""
    import torch

    pair, vm, _ = _data(50, 2)
    x = torch.from_numpy(features(pair, vm, vm))
    out = 0
    for w1, b1, w2, b2 in zip(fitted.w1, fitted.b1, fitted.w2, fitted.b2):
        h = torch.nn.functional.gelu(x @ torch.from_numpy(w1) + torch.from_numpy(b1), approximate="tanh")
        out = out + torch.sigmoid(h @ torch.from_numpy(w2) + torch.from_numpy(b2))
    expected = (out / len(fitted.w1)).numpy()
    against, upholds = fitted.predict(pair, vm, vm)
    assert np.allclose(np.column_stack([against, upholds]), expected, atol=1e-6)


def test_the_members_differ_and_the_ensemble_is_their_mean(fitted):
    pair, vm, _ = _data(50, 3)
    one = [Stacker(fitted.w1[i:i + 1], fitted.b1[i:i + 1], fitted.w2[i:i + 1], fitted.b2[i:i + 1]) for i in (0, 1)]
    a0, a1 = one[0].predict(pair, vm, vm)[0], one[1].predict(pair, vm, vm)[0]
    assert not np.allclose(a0, a1)
    assert np.allclose(fitted.predict(pair, vm, vm)[0], (a0 + a1) / 2)
    assert fitted.w1.shape == (2, DIM + 2 * N_VALUES, HIDDEN) and fitted.pair_dimension == DIM


def _marked(n: int, seed: int):
    """Rows like _data's, every one carrying a marker no labelled row has (coordinate 2 at +4): benign turns'
    kind of text, where the signal of 'against value 0' (coordinate 0) does not mean what it means in the rows."""
    pair, vm, ref = _data(n, seed)
    pair[:, 2] = 4.0
    return pair, vm, ref


def test_benign_anchors_teach_only_their_region_and_only_against():
    pair, vm, ref = _data(600, 0)
    anchor_pair, anchor_vm, _ = _marked(600, 6)
    plain = Stacker.fit(pair, vm, vm, ref, seeds=(0,))
    anchored = Stacker.fit(pair, vm, vm, ref, seeds=(0,), anchors=AnchorFeatures(anchor_pair, anchor_vm, anchor_vm))
    q_pair, q_vm, q_ref = _marked(400, 7)
    signal = q_ref.against[:, 0]
    # Where anchors were, 'against' is unlikelier than the rows alone would say...
    assert anchored.predict(q_pair, q_vm, q_vm)[0][signal, 0].mean() < 0.5 * plain.predict(q_pair, q_vm, q_vm)[0][signal, 0].mean()
    # ...while upholds, which anchors do not teach, still reads its signal there, as likely as before (trained
    # towards 0 on the anchors, it would fall to ~0.1)...
    upholds = anchored.predict(q_pair, q_vm, q_vm)[1][:, 3]
    assert roc_auc(q_ref.upholds[:, 3], upholds) > 0.9 and upholds[q_ref.upholds[:, 3]].mean() > 0.6
    # ...and away from the anchors, 'against' reads as it did.
    r_pair, r_vm, r_ref = _data(400, 8)
    assert roc_auc(r_ref.against[:, 0], anchored.predict(r_pair, r_vm, r_vm)[0][:, 0]) > 0.95


def test_fitting_is_reproducible():
    pair, vm, ref = _data(200, 4)
    first, second = (Stacker.fit(pair, vm, vm, ref, seeds=(7,)) for _ in range(2))
    assert np.array_equal(first.w1, second.w1) and np.array_equal(first.b2, second.b2)


def test_save_and_load_round_trip_without_pickle(fitted, tmp_path):
    path = tmp_path / "stacker.npz"
    fitted.save(path)
    loaded = Stacker.load(path)
    pair, vm, _ = _data(20, 5)
    assert np.array_equal(loaded.predict(pair, vm, vm)[0], fitted.predict(pair, vm, vm)[0])
    with np.load(path, allow_pickle=False) as z:
        assert int(z["version"]) == STACKER_VERSION


@pytest.mark.parametrize("arrays, message", [
    # An index built by an older valueguard (the per-value logistic stacker): says to rebuild.
    ({"version": np.array(1), "against": np.zeros((10, 387)), "upholds": np.zeros((10, 387))}, "rebuild the index"),
    # Arrays that do not fit together (an edited or truncated file).
    ({"version": np.array(STACKER_VERSION), "w1": np.zeros((2, 36, 8)), "b1": np.zeros((2, 8)),
      "w2": np.zeros((2, 8, 20)), "b2": np.zeros((1, 20))}, "inconsistent stacker shapes"),
])
def test_a_stacker_file_it_cannot_read_is_a_clear_error(tmp_path, arrays, message):
    path = tmp_path / "stacker.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        Stacker.load(path)
