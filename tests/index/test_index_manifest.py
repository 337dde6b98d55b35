"""An edited or damaged index (issue 13): every failure is a ValueIndexError naming the file and the field, nothing
is read past a lie in the manifest, and nothing at load time reaches for the network."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from valueguard.estimation.estimator import ValueEstimator
from valueguard.index.manifest import Manifest, ValueIndexError
from valueguard.estimation.value_index import ValueIndex
from valueguard.embedders.onnx_runtime import OnnxEmbedder
from valueguard.reference.dataset import sha256_file
from valueguard.values import VALUE_NAMES


@pytest.fixture()
def index_copy(index_dir, tmp_path):
    return shutil.copytree(index_dir, tmp_path / "copy")


def edit_manifest(directory: Path, *, rehash: bool = False, redigest: bool = False, **fields) -> None:
    """Change manifest fields; `rehash`: update the file hashes (a damaged file "passed off"); `redigest`: make the
    digest match again (a consistent lie, which the files themselves must contradict)."""
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    data.update(fields)
    if rehash:
        data["files"] = {name: sha256_file(directory / name) for name in data["files"]}
    if redigest:
        data["digest"] = Manifest.model_validate(data).content_digest()
    path.write_text(json.dumps(data))


# (field, edited value) — each used to be accepted; `readout: knn` flipped a lock-picking answer from block to allow.
EDITS = [
    ("readout", "knn"),                              # the value model set aside
    ("text_form", "dialogue"),                       # queries embedded in another form than the rows
    ("value_names", list(reversed(VALUE_NAMES))),    # columns read in another order
    ("model", "intfloat/e5-small"),                  # would have made an ONNX export reach for the network
    ("dimension", 768),                              # did not name the field
    ("rows", 5),                                     # did not name the field
]


@pytest.mark.parametrize("field, value", EDITS)
def test_an_edited_manifest_is_refused_by_its_digest(index_copy, field, value):
    edit_manifest(index_copy, **{field: value})
    with pytest.raises(ValueIndexError, match=r"manifest\.json: its fields .* do not match its digest.*valueguard "
                                              r"index build --out"):
        ValueIndex.load(index_copy)


# (field, value, the error) — the digest made to match: the files themselves contradict the lie, by field.
CONSISTENT_LIES = [
    ("readout", "knn", r"manifest\.json: field readout: 'knn', but the index has the files of read-out 'model' "
                         r"\(value_model\.npz\)"),
    ("value_names", list(reversed(VALUE_NAMES)), r"manifest\.json: field value_names"),
    ("dimension", 768, r"index\.faiss: dimension: the FAISS index has dimension 384, the manifest says 768"),
    ("rows", 5, r"index\.faiss: rows: the FAISS index has 600 rows, the manifest says 5"),
]


@pytest.mark.parametrize("field, value, message", CONSISTENT_LIES)
def test_a_consistent_lie_is_contradicted_by_the_files(index_copy, field, value, message):
    edit_manifest(index_copy, redigest=True, **{field: value})
    with pytest.raises(ValueIndexError, match=message):
        ValueIndex.load(index_copy)


def test_a_model_edit_is_refused_before_any_embedder_is_made(index_copy, monkeypatch):
    monkeypatch.delenv("VALUEGUARD_BACKEND", raising=False)  # the ONNX backend, whose export needs the model
    exports = OnnxEmbedder.exports
    edit_manifest(index_copy, model="intfloat/e5-small")
    with pytest.raises(ValueIndexError, match="do not match its digest"):
        ValueEstimator.from_index(index_copy)
    assert OnnxEmbedder.exports == exports


def test_another_embedder_is_refused_up_front_with_the_rebuild_command(index_copy, embedder):
    class Other:
        model_id = "intfloat/e5-small"

        def embed(self, texts):  # pragma: no cover - never reached
            raise AssertionError("an embedder of another model must not be used")

    with pytest.raises(ValueIndexError, match=r"built with model .*but the embedder is 'intfloat/e5-small'.*"
                                              r"valueguard index build --out .* --model intfloat/e5-small"):
        ValueEstimator.from_index(index_copy, embedder=Other())


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


# (file, how it is damaged, the error) — the hash updated too, so only reading the file can tell: each was a raw
# FAISS, numpy, zip or JSON error.
DAMAGED = [
    ("index.faiss", _truncate, r"index\.faiss: index: not a readable FAISS index"),
    ("values.npy", _truncate, r"values\.npy: values: not a readable numpy array"),
    ("values.npy", lambda p: np.save(p, np.zeros((600, 3), np.float32)), r"values\.npy: value_names: holds 3"),
    ("values.npy", lambda p: np.save(p, np.zeros((7, 10), np.float32)), r"values\.npy: rows: holds shape \(7, 10\)"),
    ("rows.jsonl", lambda p: p.write_text(p.read_text() + "{broken\n"), r"rows\.jsonl: line 601: not a row"),
    ("rows.jsonl", lambda p: p.write_text('{"id": 1}\n'), r"rows\.jsonl: line 1: not a row \(TypeError\)"),
    ("value_model.npz", _truncate, r"value_model\.npz: readout: not a readable value model \(BadZipFile"),
    ("value_model.npz", lambda p: np.savez(p, version=np.array(1)), r"value_model\.npz: readout: not a readable "
                                                                    r"value model \(KeyError"),
]


@pytest.mark.parametrize("name, damage, message", DAMAGED)
def test_a_damaged_file_passed_off_as_good_is_a_value_index_error(index_copy, name, damage, message):
    path = index_copy / name
    damage(path)
    edit_manifest(index_copy, rehash=True, redigest=True)
    with pytest.raises(ValueIndexError, match=message):
        ValueIndex.load(index_copy)


# (manifest text, the error) — a manifest that is not one names the field.
BROKEN_MANIFESTS = [
    ("{not json", r"manifest\.json is not a valid manifest|manifest\.json: field"),       # not JSON
    ('{"format_version": "two"}', r"manifest\.json: field format_version"),              # a wrong type
    ("[" * 100_000, r"manifest\.json is not a valid manifest|manifest\.json: field"),     # deep nesting
]


@pytest.mark.parametrize("text, message", BROKEN_MANIFESTS)
def test_a_broken_manifest_names_the_file_and_field(index_copy, text, message):
    (index_copy / "manifest.json").write_text(text)
    with pytest.raises(ValueIndexError, match=message):
        ValueIndex.load(index_copy)


def test_a_manifest_without_a_digest_is_refused_with_the_rebuild_command(index_copy):
    data = json.loads((index_copy / "manifest.json").read_text())
    del data["digest"]
    (index_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ValueIndexError, match=r"field digest: missing .*valueguard index build --out"):
        ValueIndex.load(index_copy)
