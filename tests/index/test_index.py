import json
import shutil

import numpy as np
import pytest

from valueguard.index.manifest import IndexNotFoundError, ValueIndexError, format_text
from valueguard.estimation.value_index import ValueIndex, build_cached
from valueguard.estimation.readout.knn import KnnReadOut
from valueguard.reference import ReferenceSet


@pytest.fixture()
def index_copy(index_dir, tmp_path):
    return shutil.copytree(index_dir, tmp_path / "copy")


def test_round_trip_gives_the_same_neighbours(index_dir, split, embedder):
    index = ValueIndex.load(index_dir, model=embedder.model_id)
    queries = embedder.embed([format_text(r.response, r.prompt, index.text_form) for r in split[1].records[:20]])
    built = ValueIndex.build(split[0], embedder)  # the same rows embedded afresh
    sims_a, idx_a = index.search(queries, 10)
    sims_b, idx_b = built.search(queries, 10)
    assert (idx_a == idx_b).all()
    assert np.allclose(sims_a, sims_b, atol=1e-5)
    assert np.array_equal(index.values, split[0].value_matrix())


def test_manifest_records_what_the_index_is(index_dir, split, embedder):
    m = ValueIndex.read_manifest(index_dir)
    assert (m.model, m.dimension, m.rows, m.text_form) == (embedder.model_id, 384, len(split[0]), "response")
    assert m.readout == "model"
    assert set(m.files) == {"index.faiss", "values.npy", "rows.jsonl", "value_model.npz"}


def test_a_knn_index_has_no_value_model(tmp_path, split, embedder):
    index = ValueIndex.build(ReferenceSet(split[0].records[:50]), embedder, readout="knn")
    index.save(tmp_path / "knn")
    loaded = ValueIndex.load(tmp_path / "knn")
    assert isinstance(loaded.readout, KnnReadOut) and loaded.manifest.readout == "knn"
    assert not (tmp_path / "knn" / "value_model.npz").exists()


def test_another_model_is_refused(index_dir):
    with pytest.raises(ValueIndexError, match="built with model 'sentence-transformers/all-MiniLM-L6-v2', but the "
                                              "embedder is 'intfloat/e5-small'.*valueguard index build"):
        ValueIndex.load(index_dir, model="intfloat/e5-small")


def test_another_dimension_is_refused(index_dir):
    with pytest.raises(ValueIndexError, match="dimension 384, the embedder gives 768"):
        ValueIndex.load(index_dir, dimension=768)


@pytest.mark.parametrize("name", ["index.faiss", "values.npy", "rows.jsonl", "value_model.npz"])
def test_a_tampered_file_is_refused(index_copy, name):
    path = index_copy / name
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # one bit, late in the file: still loadable, so only the hash can tell
    path.write_bytes(bytes(data))
    with pytest.raises(ValueIndexError, match=f"{name} does not match its manifest.*refusing to load"):
        ValueIndex.load(index_copy)


def test_a_missing_index_says_how_to_build_it(tmp_path):
    with pytest.raises(IndexNotFoundError, match="no valueguard index at .*valueguard index build --out"):
        ValueIndex.load(tmp_path / "nowhere")


def test_values_load_without_pickle(index_dir):
    # np.load with allow_pickle=False refuses object arrays: the saved matrix must be plain float32.
    arr = np.load(index_dir / "values.npy", allow_pickle=False)
    assert arr.dtype == np.float32 and arr.shape[1] == 10


def test_build_is_cached_for_unchanged_inputs(tmp_path, shared_data, embedder):
    small = tmp_path / "small.jsonl"
    lines = (shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl").read_text().splitlines()[:40]
    small.write_text("\n".join(lines) + "\n")
    first = build_cached([small], tmp_path / "idx", embedder)
    second = build_cached([small], tmp_path / "idx", embedder)
    assert first.built and not second.built and len(second.index) == 40
    small.write_text("\n".join(lines[:30]) + "\n")  # a changed input file means a rebuild
    third = build_cached([small], tmp_path / "idx", embedder)
    assert third.built and len(third.index) == 30


def test_an_empty_reference_set_is_refused(embedder):
    with pytest.raises(ValueError, match="empty reference set"):
        ValueIndex.build(ReferenceSet([]), embedder)


@pytest.mark.parametrize("version", [
    1,  # no read-out in its manifest
    2,  # embedded a response with its compliant opener ("Sure."), which format 3 takes off (index/openers.py)
    3,  # embedded typographic punctuation (’) as itself, which format 4 reads as ASCII (index/typography.py)
])
def test_an_index_of_a_previous_format_is_refused_with_the_rebuild_command(index_copy, version):
    manifest = json.loads((index_copy / "manifest.json").read_text())
    manifest["format_version"] = version
    if version == 1:
        del manifest["readout"]
    (index_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueIndexError, match=f"has format {version}, this valueguard reads 4; rebuild it with: "
                                              "valueguard index build --out"):
        ValueIndex.load(index_copy)
