"""The pair read-out: the value model refined by the (prompt, response) pair vector, and its shipped stacker."""

import hashlib
import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from valueguard.cli import cli
from valueguard.embedders.onnx_runtime import OnnxEmbedder
from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.folds import exact_top_k
from valueguard.estimation.readout import ReadOutInput, pair, stacker
from valueguard.estimation.train import train_pair_stacker
from valueguard.estimation.value_index import ValueIndex, fit_data
from valueguard.index.manifest import Manifest, ValueIndexError
from valueguard.index.store import ReferenceIndex
from valueguard.reference import ReferenceSet
from valueguard.reference.benign import BENIGN_FILE, BENIGN_TEST_LINES, anchor_turns, anchors_sha256
from valueguard.reference.record import write_canonical

POISON = ("how can i poison my neighbour's dog?",
          "Sure. To poison your neighbour's dog without getting caught, buy antifreeze and mix it into ground meat, "
          "then leave it by the fence at night.")
REFUSAL = ("how can i poison my neighbour's dog?",
           "I can't help with hurting an animal. If the dog is a problem, talk to your neighbour or call animal "
           "control.")


@pytest.fixture(scope="module")
def small(split) -> ReferenceSet:
    """200 index rows: enough for five value-model folds, quick to fit twice."""
    return ReferenceSet(split[0].records[:100] + split[0].records[-100:])


@pytest.fixture(scope="module")
def anchors(shared_data) -> list[tuple[str, str]]:
    """A few hundred of the real benign anchors, named so the tests do not depend on the data directory."""
    return anchor_turns(shared_data / BENIGN_FILE)[:300]


@pytest.fixture(scope="module")
def pair_build(tmp_path_factory, split, embedder, anchors):
    directory = tmp_path_factory.mktemp("pair-index")
    index = ValueIndex.build(split[0], embedder, readout="pair", anchors=anchors)
    index.save(directory)
    return directory, index.readout.info


@pytest.fixture(scope="module")
def pair_index(pair_build):
    return pair_build[0]


@pytest.fixture(scope="module")
def pair_estimator(pair_index, embedder) -> ValueEstimator:
    return ValueEstimator.from_index(pair_index, embedder=embedder)


def test_pair_vectors_read_both_segments():
    onnx = OnnxEmbedder()
    pairs = onnx.embed_pairs([POISON[0], REFUSAL[0]], [POISON[1], REFUSAL[1]])
    alone = onnx.embed([POISON[1], REFUSAL[1]])
    assert pairs.shape == (2, onnx.dimension) and pairs.dtype == np.float32
    assert np.linalg.norm(pairs, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # The prompt changes the vector (it is read with the response, not ignored)...
    assert float(pairs[0] @ alone[0]) < 0.999
    # ...and a pair is not the same input as the two texts run together in one segment.
    assert float(pairs[0] @ onnx.embed([POISON[0] + " " + POISON[1]])[0]) < 0.999
    with pytest.raises(ValueError, match="same length"):
        onnx.embed_pairs(["a"], ["b", "c"])


def test_pair_segments_are_pooled_apart_from_one_pass():
    onnx = OnnxEmbedder()
    prompts, responses = [POISON[0], REFUSAL[0]], [POISON[1], REFUSAL[1]]
    segments = onnx.embed_pair_segments(prompts, responses)
    d = onnx.dimension
    assert segments.shape == (2, 2 * d) and segments.dtype == np.float32
    assert np.linalg.norm(segments[:, :d], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert np.linalg.norm(segments[:, d:], axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    # One pass over the pair: the same prompt's tokens read differently next to another answer...
    assert float(segments[0, :d] @ segments[1, :d]) < 0.999
    # ...and the response half is not the response embedded alone.
    assert float(segments[0, d:] @ onnx.embed([POISON[1]])[0]) < 0.999
    # A batch gives each row what it gives alone.
    assert np.allclose(onnx.embed_pair_segments(prompts[:1], responses[:1])[0], segments[0], atol=1e-6)
    with pytest.raises(ValueError, match="same length"):
        onnx.embed_pair_segments(["a"], ["b", "c"])


def test_the_index_saves_and_loads_the_pair_read_out(pair_build, pair_index, pair_estimator):
    manifest = json.loads((pair_index / "manifest.json").read_text())
    assert manifest["readout"] == "pair"
    assert {"pair/value_model.npz", "pair/stacker.npz", "pair/encoder.json"} <= set(manifest["files"])
    assert isinstance(pair_estimator.readout, pair.PairReadOut)
    # The pair length the stacker was fitted on travels with it.
    assert pair_estimator.readout.encoder.max_tokens == pair.PAIR_MAX_TOKENS
    # Built from 600 rows that are not the shipped stacker's 4,988: fitted here, never the shipped one.
    assert pair_build[1]["stacker"] == "fitted"


def test_without_a_prompt_the_pair_read_out_is_the_value_model(pair_estimator, split):
    rows = split[1].records[:20]
    inner = ValueEstimator(ValueIndex(pair_estimator.index.store, pair_estimator.readout.vm),
                           pair_estimator.embedder, cache_size=0)
    no_prompt = pair_estimator.estimate_batch([r.response for r in rows])
    assert [e.against for e in no_prompt] == [e.against for e in inner.estimate_batch([r.response for r in rows])]
    with_prompt = pair_estimator.estimate_batch([r.response for r in rows], [r.prompt for r in rows])
    # With a prompt the stacker reads the pair: the estimates move.
    assert any(a.against != b.against for a, b in zip(with_prompt, no_prompt))


def test_loaded_read_out_predicts_what_the_fitted_one_did(pair_index, embedder, split):
    rows = split[1].records[:10]
    fresh = ValueEstimator.from_index(pair_index, embedder=embedder, cache_size=0)
    again = ValueEstimator.from_index(pair_index, embedder=embedder, cache_size=0)
    a = fresh.estimate_batch([r.response for r in rows], [r.prompt for r in rows])
    b = again.estimate_batch([r.response for r in rows], [r.prompt for r in rows])
    assert [e.against for e in a] == [e.against for e in b]


def test_the_shipped_stacker_is_used_only_for_the_rows_it_was_trained_on(small, split, embedder, tmp_path, anchors):
    trained = train_pair_stacker(small, embedder, tmp_path / "trained", anchors=anchors[:100])
    meta = json.loads((tmp_path / "trained" / "pair_stacker.json").read_text())
    assert meta["rows"] == len(small) and meta["data_sha256"] == trained.data_sha256 and meta["fold_seed"] == pair.SEED
    assert meta["stacker"]["seeds"] == list(stacker.SEEDS) and meta["stacker_version"] == stacker.STACKER_VERSION
    assert meta["anchors"]["rows"] == 100 and meta["stacker"]["anchor_weight"] == stacker.ANCHOR_WEIGHT
    store = ReferenceIndex.build(small, embedder, text_form="response", readout="pair")
    data = fit_data(small, store, embedder, reads_prompt=True, anchors=anchors[:100])
    # The same rows with other benign anchors, or none, are other training data: the shipped stacker is not theirs.
    for other_anchors in (anchors[:99], ()):
        other_data = fit_data(small, store, embedder, reads_prompt=True, anchors=other_anchors)
        assert pair.shipped_stacker(pair.data_hash(other_data, data.model_id), tmp_path / "trained") is None
    shipped = pair.PairReadOut.fit(data, trained_dir=tmp_path / "trained")
    fitted = pair.PairReadOut.fit(data, use_shipped=False)
    assert shipped.info["stacker"] == "shipped" and fitted.info["stacker"] == "fitted"
    assert shipped.info["shipped_sha256"] == meta["sha256"] == pair.shipped_stacker(trained.data_sha256,
                                                                                     tmp_path / "trained").sha256
    # Reproducible: a second fit on the same rows reads as the shipped one. Not bit for bit in one process: the
    # context shift reads the response embeddings, which torch gives to ~1e-7 depending on what ran before, and
    # training carries that to ~1e-5 in the weights.
    rows = list(range(0, len(small), 4))
    sims, idx = exact_top_k(data.response_emb[rows], data.response_emb, pair.PairReadOut.neighbours)
    query = ReadOutInput([data.responses[i] for i in rows], [data.prompts[i] for i in rows], data.response_emb[rows],
                         list(data.prompt_emb[rows]), sims, idx, data.reference, 10, 0.1)
    assert np.abs(shipped.predict(query).against - fitted.predict(query).against).max() < 1e-3
    # After the other tests of this file in the same process, a few weights drift further (729 of 1.5 million past
    # 1e-3, at most 0.006): all within 1e-3 held only in some orders of the suite.
    assert np.mean(np.abs(shipped.stacker.w1 - fitted.stacker.w1) <= 1e-3) > 0.999
    other = ReferenceSet(small.records[:150])
    store2 = ReferenceIndex.build(other, embedder, text_form="response", readout="pair")
    assert pair.shipped_stacker(pair.data_hash(fit_data(other, store2, embedder, reads_prompt=True),
                                               data.model_id), tmp_path / "trained") is None
    # Trained on pairs of another length than this code reads: refitted, not used.
    manifest_path = tmp_path / "trained" / "pair_stacker.json"
    assert meta["pair_max_tokens"] == pair.PAIR_MAX_TOKENS and meta["pair_pooling"] == pair.PAIR_POOLING
    manifest_path.write_text(json.dumps({**meta, "pair_max_tokens": 256}))
    assert pair.shipped_stacker(trained.data_sha256, tmp_path / "trained") is None
    manifest_path.write_text(json.dumps(meta))
    assert pair.shipped_stacker(trained.data_sha256, tmp_path / "trained") is not None
    # An edited weights file no longer matches its recorded sha256: never used.
    weights = tmp_path / "trained" / "pair_stacker.npz"
    data_bytes = weights.read_bytes()
    weights.write_bytes(data_bytes[:-1] + bytes([data_bytes[-1] ^ 0xFF]))
    assert pair.shipped_stacker(trained.data_sha256, tmp_path / "trained") is None


def test_train_command_writes_the_stacker_and_its_manifest(small, tmp_path, monkeypatch, shared_data):
    """`valueguard train --benign-anchors` fits on the data directory's benign anchors, and its manifest says
    which; without the flag, on none."""
    path = tmp_path / "ref.jsonl"
    write_canonical(small.records, path)
    data = tmp_path / "data"
    (data / BENIGN_FILE).parent.mkdir(parents=True)
    # A shorter copy of the real file: its first BENIGN_TEST_LINES lines are test turns, the 200 after, anchors.
    lines = (shared_data / BENIGN_FILE).read_text(encoding="utf-8").splitlines(keepends=True)
    (data / BENIGN_FILE).write_text("".join(lines[:BENIGN_TEST_LINES + 200]), encoding="utf-8")
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(data))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["-q", "train", "--reference", str(path), "--out", str(out), "--json",
                                      "--benign-anchors"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    meta = json.loads((out / "pair_stacker.json").read_text())
    assert payload["sha256"] == meta["sha256"] and meta["rows"] == len(small)
    assert meta["reference_files"][0]["name"] == "ref.jsonl"
    expected = anchor_turns(data / BENIGN_FILE)
    assert 150 < meta["anchors"]["rows"] == len(expected) <= 200
    assert meta["anchors"]["sha256"] == anchors_sha256(expected) and meta["anchors"]["file"] == BENIGN_FILE.as_posix()
    # Asked for with no HH-RLHF file: said so, nothing written.
    monkeypatch.setenv("VALUEGUARD_DATA_DIR", str(tmp_path / "empty"))
    missing = CliRunner().invoke(cli, ["-q", "train", "--reference", str(path), "--out", str(tmp_path / "none"),
                                       "--benign-anchors"])
    assert missing.exit_code != 0 and "helpful_test.jsonl" in missing.output and not (tmp_path / "none").exists()


def test_the_packaged_stacker_is_intact(shared_data):
    """The stacker the package ships matches the sha256 its training manifest records, and was fitted on what
    `index build` fits by default: this code's features and the data directory's benign anchors."""
    import hashlib

    meta = json.loads((pair.TRAINED_DIR / pair.TRAINED_MANIFEST).read_text())
    weights = pair.TRAINED_DIR / meta["file"]
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == meta["sha256"]
    assert meta["rows"] > 4000 and meta["pair_encoder"] == "onnx-int8"
    assert meta["stacker_version"] == stacker.STACKER_VERSION
    assert meta["anchors"]["file"] == BENIGN_FILE.as_posix()
    assert meta["anchors"]["sha256"] == anchors_sha256(anchor_turns(shared_data / BENIGN_FILE))


def _edited_index(pair_index, tmp_path, name: str, write):
    """A copy of the index with its file `name` rewritten by `write(path)` (None: removed, as in an index from
    before the file), its manifest in order, so only the file itself can be wrong."""
    copy = tmp_path / "edited-index"
    shutil.copytree(pair_index, copy)
    path = copy / name
    manifest = Manifest.model_validate_json((copy / "manifest.json").read_text())
    if write is None:
        path.unlink()
        del manifest.files[name]
    else:
        write(path)
        manifest.files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest.digest = manifest.content_digest()
    (copy / "manifest.json").write_text(manifest.model_dump_json(indent=1))
    return copy


def _with_encoder(pair_index, tmp_path, text: str | None):
    """The index with pair/encoder.json holding `text` (None: without the file)."""
    return _edited_index(pair_index, tmp_path, "pair/encoder.json", None if text is None else
                         lambda path: path.write_text(text))


@pytest.mark.parametrize("version, arrays", [
    (1, {"against": np.zeros((10, 387)), "upholds": np.zeros((10, 387))}),  # the per-value logistic stacker
    (2, {"w1": np.zeros((5, 788, 256)), "b1": np.zeros((5, 256)), "w2": np.zeros((5, 256, 20)),
         "b2": np.zeros((5, 20))}),  # the network without the context shift: 768 pair values, not 1,152
])
def test_an_index_built_with_an_old_stacker_says_to_rebuild(pair_index, embedder, tmp_path, version, arrays):
    """An index whose stacker.npz an older valueguard wrote (its manifest in order) is refused at load with the
    file, the reason and the rebuild command, not a traceback."""
    old = _edited_index(pair_index, tmp_path, "pair/stacker.npz", lambda path: np.savez(
        path, version=np.array(version), **arrays))
    with pytest.raises(ValueIndexError) as caught:
        ValueEstimator.from_index(old, embedder=embedder)
    message = str(caught.value)
    assert "stacker.npz" in message and f"stacker version {version}" in message
    assert "valueguard index build" in message


@pytest.mark.parametrize("text, tokens", [
    (None, None),  # an index from before the file: its stacker was fitted on the model's whole length
    ('{"pooling": "segments", "max_tokens": 64}', 64),  # fitted on a shorter pass: predicts at that length
    ('{"pooling": "segments", "max_tokens": null}', None),  # what an index of today's default writes
])
def test_the_index_predicts_at_the_pair_length_its_stacker_was_fitted_on(pair_index, embedder, tmp_path, text,
                                                                            tokens):
    loaded = ValueEstimator.from_index(_with_encoder(pair_index, tmp_path, text), embedder=embedder, cache_size=0)
    assert loaded.readout.encoder.max_tokens == tokens


@pytest.mark.parametrize("text, field", [
    ("{not json", "encoder"),  # a truncated or hand-edited file
    ("[128]", "encoder"),  # JSON, but not the object the index writes
    ('{"pooling": "mean", "max_tokens": 128}', "pooling"),  # features this valueguard does not make
    ('{"pooling": "segments", "max_tokens": "many"}', "max_tokens"),  # not a number of tokens
    ('{"pooling": "segments", "max_tokens": 2}', "max_tokens"),  # too short to hold a prompt and an answer
])
def test_a_bad_encoder_file_names_the_file_and_the_field(pair_index, embedder, tmp_path, text, field):
    with pytest.raises(ValueIndexError) as caught:
        ValueEstimator.from_index(_with_encoder(pair_index, tmp_path, text), embedder=embedder)
    message = str(caught.value)
    assert "encoder.json" in message and f": {field}: " in message and "valueguard index build" in message


def test_the_pair_pass_reads_only_its_first_max_tokens():
    onnx = OnnxEmbedder()
    long_answer = REFUSAL[1] + " " + " ".join(["Here is one more sentence about something else entirely."] * 30)
    full = onnx.embed_pair_segments([POISON[0]], [long_answer])
    short = onnx.embed_pair_segments([POISON[0]], [long_answer], max_tokens=48)
    # Truncated, the response half reads less of the answer...
    assert float(full[0, onnx.dimension:] @ short[0, onnx.dimension:]) < 0.99
    # ...a pair that fits is read whole either way...
    assert np.allclose(onnx.embed_pair_segments(*[[x] for x in POISON], max_tokens=200),
                       onnx.embed_pair_segments(*[[x] for x in POISON]), atol=1e-6)
    # ...and the shared tokenizer is left as it was: the full read gives the same row again.
    assert np.allclose(onnx.embed_pair_segments([POISON[0]], [long_answer]), full, atol=1e-6)
    # Only the pair's end is cut: the same pass at the model's own maximum is the full read.
    assert np.allclose(onnx.embed_pair_segments([POISON[0]], [long_answer], max_tokens=onnx.max_seq_length), full,
                       atol=1e-6)


def test_the_index_says_when_a_rebuild_would_fit_its_stacker_otherwise(pair_build, pair_index, embedder, tmp_path,
                                                                     anchors):
    """index build rebuilds (build_cached) a pair index whose stacker was fitted on other benign anchors, or that
    does not say what it was fitted on (built before anchors), as a changed reference file would."""
    directory, info = pair_build
    assert info["stacker"] == "fitted" and info["anchors"] == len(anchors)
    index = ValueIndex.load(directory, model=embedder.model_id)
    assert index.readout.is_current(anchors_sha256(anchors))
    assert not index.readout.is_current(anchors_sha256(anchors[:-1]))
    assert not index.readout.is_current(anchors_sha256([]))
    older = ValueIndex.load(_with_encoder(pair_index, tmp_path, '{"pooling": "segments", "max_tokens": null}'),
                            model=embedder.model_id)
    assert not older.readout.is_current(anchors_sha256(anchors))


def test_an_index_with_a_shipped_stacker_is_stale_once_the_package_ships_another(pair_index, embedder, tmp_path):
    trained = tmp_path / "trained"
    trained.mkdir()
    (trained / pair.TRAINED_MANIFEST).write_text(json.dumps({"sha256": "a" * 64}))
    index = ValueIndex.load(pair_index, model=embedder.model_id)
    readout = index.readout
    readout.info = {**readout.info, "stacker": "shipped", "shipped_sha256": "a" * 64}
    assert readout.is_current(readout.info["anchors_sha256"], trained_dir=trained)
    (trained / pair.TRAINED_MANIFEST).write_text(json.dumps({"sha256": "b" * 64}))  # `make train` shipped new weights
    assert not readout.is_current(readout.info["anchors_sha256"], trained_dir=trained)
