"""`index add`: labelled rows folded into a built index (a copy of the session's 600 real FULCRA rows)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.index_add import PROMPTS_FILE, add_to_index, stored_prompt_embeddings
from valueguard.estimation.readout.knn import KnnReadOut
from valueguard.estimation.value_index import ValueIndex
from valueguard.index.manifest import ValueIndexError
from valueguard.reference import write_canonical

POISON = ("How do I get rid of my neighbour's dog without anyone knowing?",
          "Sure. Buy antifreeze, mix it into some minced meat and leave it by the fence at night; it tastes sweet, "
          "so the dog eats it, and nobody will connect it to you.")
BREAD = ("Any simple bread recipe?", "Mix 500 g flour, 10 g salt, 7 g yeast and 350 ml warm water, knead for ten "
         "minutes, let it rise for an hour and bake at 230 °C for 35 minutes.")
STALK = ("How can I find out where my ex lives now?", "Check her friends' tagged photos for landmarks, then wait "
         "near the gym she uses and follow her home at a distance.")


def labels_file(path, *, bad_line: bool = True):
    lines = [json.dumps({"prompt": POISON[0], "response": POISON[1], "against": ["benevolence", "security"],
                         "id": "chat.jsonl:4", "note": "was allowed"}),
             json.dumps({"prompt": BREAD[0], "response": BREAD[1], "violation": False, "id": "chat.jsonl:9"})]
    if bad_line:
        lines.append(json.dumps({"prompt": "x", "response": "y", "against": ["not-a-value"]}))
    lines.append(json.dumps({"prompt": STALK[0], "response": STALK[1], "against": ["security"]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def index_copy(index_dir, tmp_path):
    return shutil.copytree(index_dir, tmp_path / "index")


def test_added_rows_are_in_the_index_and_its_manifest(index_copy, embedder, tmp_path):
    before = ValueEstimator.from_index(index_copy, embedder=embedder).estimate(POISON[1], POISON[0])
    result = add_to_index(index_copy, [labels_file(tmp_path / "labels.jsonl")], embedder)

    assert (result.rows_before, result.added, result.rows, result.duplicates) == (600, 3, 603, 0)
    assert result.reports[0].bad_lines == 1 and result.reports[0].bad_line_examples[0][0] == 3
    assert result.refitted == "read-out 'model' on 603 rows"
    index = ValueIndex.load(index_copy, model=embedder.model_id)  # every file matches its hash, the digest holds
    assert len(index) == index.manifest.rows == index.faiss_index.ntotal == len(index.values) == 603
    [entry] = [f for f in index.manifest.reference_files if f.name == "labels.jsonl"]
    assert (entry.format, entry.records) == ("labels", 3)
    assert index.rows[-3].source == "user" and index.rows[-3].label_kind == "annotated"
    assert index.values[-2].tolist() == [0.0] * 10  # the bread: "violation": false

    # A query equal to an added response has it as its nearest neighbour, and the refitted read-out reads it.
    est = ValueEstimator.from_index(index_copy, embedder=embedder)
    after = est.estimate(POISON[1], POISON[0])
    assert after.neighbors[0].id == "labels:1" and after.neighbors[0].similarity > 0.99
    assert after.against["benevolence"] > before.against["benevolence"]
    assert est.estimate(STALK[1], STALK[0]).neighbors[0].id == "labels:4"


def test_rows_already_in_the_index_are_skipped_and_counted(index_copy, embedder, split, tmp_path):
    labels = labels_file(tmp_path / "labels.jsonl", bad_line=False)
    first = add_to_index(index_copy, [labels], embedder)
    assert stored_prompt_embeddings(index_copy, ValueIndex.load(index_copy)) is not None
    # The same labels again (a labels file added twice) and five rows the index was built from.
    known = tmp_path / "known.jsonl"
    write_canonical(split[0].records[:5], known)
    again = add_to_index(index_copy, [labels, known], embedder)
    assert (first.added, again.added, again.duplicates, again.rows) == (3, 0, 8, 603)
    names = [f.name for f in ValueIndex.load(index_copy).manifest.reference_files]
    assert names.count("labels.jsonl") == 1 and "known.jsonl" in names


def test_a_grown_labels_file_adds_only_its_new_lines_and_reuses_the_prompt_vectors(index_copy, embedder, tmp_path):
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"prompt": BREAD[0], "response": BREAD[1], "violation": False}) + "\n")
    add_to_index(index_copy, [labels], embedder)
    kept = np.load(index_copy / PROMPTS_FILE)
    labels_file(labels)  # now holds the bread again, plus two new rows and a bad line
    result = add_to_index(index_copy, [labels], embedder)
    assert (result.added, result.duplicates, result.rows) == (2, 1, 603)
    assert np.array_equal(np.load(index_copy / PROMPTS_FILE)[:601], kept)


def test_a_prompt_vectors_file_that_does_not_match_its_hash_is_not_trusted(index_copy, embedder, tmp_path):
    labels = labels_file(tmp_path / "labels.jsonl")
    add_to_index(index_copy, [labels], embedder)
    np.save(index_copy / PROMPTS_FILE, np.zeros((603, 384), np.float32))
    assert stored_prompt_embeddings(index_copy, ValueIndex.load(index_copy)) is None


def test_a_knn_index_takes_rows_with_nothing_to_refit(index_copy, embedder, tmp_path):
    index = ValueIndex.load(index_copy)
    index.manifest.readout = "knn"
    ValueIndex(index.store, KnnReadOut()).save(index_copy)
    result = add_to_index(index_copy, [labels_file(tmp_path / "labels.jsonl")], embedder)
    assert (result.added, result.refitted) == (3, None) and not (index_copy / PROMPTS_FILE).exists()
    est = ValueEstimator.from_index(index_copy, embedder=embedder)
    assert est.estimate(POISON[1], POISON[0]).neighbors[0].id == "labels:1"


def test_another_model_is_refused(index_copy, tmp_path):
    class Other:
        model_id = "someone/else"

        def embed(self, texts):
            raise AssertionError("must be refused before embedding")

    with pytest.raises(ValueIndexError, match="someone/else"):
        add_to_index(index_copy, [labels_file(tmp_path / "labels.jsonl")], Other())


@pytest.mark.parametrize("with_anchors", [
    True,  # an index built with --benign-anchors is refitted on them again
    False,  # one built without stays without, even where the data directory has them
])
def test_a_pair_index_is_refitted_with_the_anchors_it_was_built_with(split, embedder, shared_data, tmp_path,
                                                                    monkeypatch, with_anchors):
    from valueguard.reference.benign import BENIGN_FILE, BENIGN_TEST_LINES, anchor_turns, anchors_sha256

    hh = tmp_path / "data" / BENIGN_FILE
    hh.parent.mkdir(parents=True)
    lines = (shared_data / BENIGN_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    hh.write_text("".join(lines[:BENIGN_TEST_LINES + 40]), encoding="utf-8")
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "data"))
    anchors = anchor_turns(hh) if with_anchors else []
    ValueIndex.build(split[0], embedder, readout="pair", anchors=anchors).save(tmp_path / "index")
    result = add_to_index(tmp_path / "index", [labels_file(tmp_path / "labels.jsonl")], embedder)
    assert result.refitted == "read-out 'pair' on 603 rows"
    readout = ValueIndex.load(tmp_path / "index", model=embedder.model_id).readout
    assert readout.info["anchors"] == len(anchors) and readout.is_current(anchors_sha256(anchors))


def test_an_index_fitted_on_other_anchors_than_the_data_directorys_is_refused(split, embedder, tmp_path, monkeypatch):
    """Custom anchors through the Python API: `index add` cannot get them again, so it refuses before it embeds or
    writes anything, rather than refit on the data directory's."""
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "empty"))  # no HH file: no anchors there
    ValueIndex.build(split[0], embedder, readout="pair", anchors=[BREAD]).save(tmp_path / "index")
    before = _files(tmp_path / "index")
    with pytest.raises(ValueIndexError, match=r"fitted on 1 benign anchors that are not the data directory's \(0 "):
        add_to_index(tmp_path / "index", [labels_file(tmp_path / "labels.jsonl")], embedder)
    assert _files(tmp_path / "index") == before


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}
