"""FAISS index kinds (issue 15): flat, ivf and hnsw over the session's 600 real FULCRA rows, saved and loaded
through the manifest, searched against the exact flat index, added to, and refused when the manifest lies."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import structlog
from click.testing import CliRunner

from valueguard.cli import cli
from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.index_add import add_to_index
from valueguard.estimation.value_index import ValueIndex
from valueguard.index import kinds
from valueguard.index.manifest import Manifest, ValueIndexError, format_text
from valueguard.reference import ReferenceSet
from valueguard.reference.dataset import sha256_file

K = 30


@pytest.fixture(scope="module")
def flat(index_dir):
    return ValueIndex.load(index_dir)


@pytest.fixture(scope="module")
def queries(split, embedder, flat):
    """200 held-out rows (no prompt of theirs is in the index), embedded as a guard embeds them."""
    rows = split[1].records[:200]
    return embedder.embed([format_text(r.response, r.prompt, flat.text_form) for r in rows]), rows


def saved_as(flat: ValueIndex, kind: str, directory, params=None):
    ValueIndex(flat.store.rebuilt_as(kind, params), flat.readout).save(directory)
    return directory


@pytest.mark.parametrize("kind", kinds.INDEX_TYPES)
def test_each_kind_round_trips_through_the_manifest(flat, kind, queries, tmp_path):
    built = ValueIndex(flat.store.rebuilt_as(kind), flat.readout)
    built.save(tmp_path / kind)
    loaded = ValueIndex.load(tmp_path / kind)
    assert loaded.manifest.index_type == kind and kinds.kind_of(loaded.faiss_index) == kind
    assert loaded.manifest.index_params == kinds.default_params(kind, 600)
    # The search parameters come back from the manifest (a default ivf probes 1 list, a default hnsw 16).
    sims_a, idx_a = built.search(queries[0], K)
    sims_b, idx_b = loaded.search(queries[0], K)
    assert np.array_equal(idx_a, idx_b) and np.allclose(sims_a, sims_b)
    # Every kind gives its rows' vectors back exactly: what `index add` refits a read-out on.
    assert np.array_equal(loaded.store.embeddings(), flat.store.embeddings())


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_kinds_agree_with_flat_on_real_rows(flat, kind, queries, embedder):
    approx = ValueIndex(flat.store.rebuilt_as(kind), flat.readout)
    _, exact = flat.search(queries[0], K)
    _, found = approx.search(queries[0], K)
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(exact, found)])
    assert recall >= 0.95, recall
    # The estimates the guard acts on: P(against) of the held-out rows barely moves.
    rows = queries[1]
    texts, prompts = [r.response for r in rows], [r.prompt for r in rows]
    a = ValueEstimator(flat, embedder, cache_size=0).estimate_batch(texts, prompts)
    b = ValueEstimator(approx, embedder, cache_size=0).estimate_batch(texts, prompts)
    diff = np.abs(np.array([list(e.against.values()) for e in a]) - np.array([list(e.against.values()) for e in b]))
    assert diff.mean() < 0.01, diff.mean()


# (rows, kind picked) — the default by size: exact below 100k rows, hnsw from there.
DEFAULTS = [(600, "flat"), (99_999, "flat"), (100_000, "hnsw"), (1_000_000, "hnsw")]


@pytest.mark.parametrize("rows, kind", DEFAULTS)
def test_the_default_kind_is_picked_by_size(rows, kind):
    assert kinds.default_index_type(rows) == kind


def test_build_records_the_kind_named_and_picks_flat_for_a_small_set(split, embedder, tmp_path):
    small = ReferenceSet(split[0].records[:40])
    assert ValueIndex.build(small, embedder, readout="knn").manifest.index_type == "flat"
    ValueIndex.build(small, embedder, readout="knn", index_type="hnsw").save(tmp_path / "h")
    m = ValueIndex.read_manifest(tmp_path / "h")
    assert (m.index_type, m.index_params["ef_search"]) == ("hnsw", kinds.HNSW_EF_SEARCH)
    with pytest.raises(ValueError, match="unknown index type 'annoy'"):
        ValueIndex.build(small, embedder, index_type="annoy")


def edit_manifest(directory, *, redigest: bool = True, drop=(), **fields):
    path = directory / "manifest.json"
    data = json.loads(path.read_text())
    data.update(fields)
    for name in drop:
        del data[name]
    if redigest:
        data["digest"] = Manifest.model_validate(data).content_digest()
    path.write_text(json.dumps(data))


def test_an_old_manifest_without_the_kind_loads_as_flat(index_dir, tmp_path):
    copy = shutil.copytree(index_dir, tmp_path / "old")
    edit_manifest(copy, redigest=False, drop=("index_type", "index_params"))  # as written before the kinds
    assert ValueIndex.load(copy).manifest.index_type == "flat"


# (edit of an hnsw index's manifest, the error) — each must be refused, naming the field.
LIES = [
    (dict(index_type="ivf", redigest=False), r"manifest\.json: its fields .* do not match its digest"),
    (dict(index_type="flat", index_params={}), r"index\.faiss: index_type: the FAISS index is hnsw, the manifest "
                                               r"says flat"),
    (dict(index_type="annoy", redigest=False),  # refused by the manifest's own validation, before the digest
     r"manifest\.json: field index_type: Input should be 'flat', 'ivf' or 'hnsw'"),
    (dict(index_params={"M": 32}), r"manifest\.json: index_params: hnsw needs 'ef_search'"),
]


@pytest.mark.parametrize("edit, message", LIES)
def test_a_manifest_that_lies_about_the_kind_is_refused(flat, tmp_path, edit, message):
    directory = saved_as(flat, "hnsw", tmp_path / "h")
    edit_manifest(directory, **edit)
    with pytest.raises(ValueIndexError, match=message):
        ValueIndex.load(directory)


@pytest.mark.parametrize("kind, says", [("ivf", "put in their nearest of the 15 lists trained at build"),
                                        ("hnsw", "linked into the graph")])
def test_index_add_keeps_the_kind_and_says_what_it_did(flat, kind, says, embedder, tmp_path):
    directory = saved_as(flat, kind, tmp_path / kind)
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"prompt": "Any simple bread recipe?", "response": "Mix flour, salt, yeast and "
                                  "water, knead, let it rise and bake it at 230 C.", "violation": False}) + "\n")
    result = add_to_index(directory, [labels], embedder)
    assert result.added == 1 and says in (result.faiss_update or "")
    loaded = ValueIndex.load(directory)
    assert (loaded.manifest.index_type, loaded.faiss_index.ntotal) == (kind, 601)
    assert sha256_file(directory / "index.faiss") == loaded.manifest.files["index.faiss"]


def test_cli_build_takes_the_kind_and_index_add_says_what_it_refitted(shared_data, tmp_path, monkeypatch):
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "data"))
    small = tmp_path / "small.jsonl"
    small.write_text("\n".join((shared_data / "fulcra" / "harmless_test_openai_gpt-4.dev.jsonl")
                               .read_text().splitlines()[:40]) + "\n")
    invoke = CliRunner().invoke
    try:
        r = invoke(cli, ["--quiet", "index", "build", "--reference", str(small), "--out", str(tmp_path / "i"),
                         "--readout", "knn", "--index-type", "ivf", "--json"], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["index_type"] == "ivf"
        labels = tmp_path / "labels.jsonl"
        labels.write_text(json.dumps({"prompt": "hi", "response": "Hello! How can I help?", "violation": False})
                          + "\n")
        r = invoke(cli, ["--quiet", "index", "add", str(labels), "--index", str(tmp_path / "i")],
                   catch_exceptions=False)
        assert r.exit_code == 0, r.output
        assert "FAISS ivf: 1 row(s) put in their nearest of the 1 lists" in r.output
        assert "refitted: nothing (the read-out has no fitted part)" in r.output
    finally:
        structlog.reset_defaults()
