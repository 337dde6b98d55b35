import re

import numpy as np
import pytest

from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.evidence import combine, neighbor_weights
from valueguard.estimation.windows import without_short_sentences
from valueguard.index.manifest import format_text
from valueguard.quality.metrics import average_precision, pearson_per_value, roc_auc
from valueguard.values.polarity import violations
from valueguard.values import VALUE_NAMES

REFUSAL = re.compile(r"^(i'?m sorry|sorry|i cannot|i can'?t|i apologi[sz]e|as an ai)", re.I)


def heldout_arrays(split, heldout_estimates, kind):
    rows = [i for i, r in enumerate(split[1].records) if r.label_kind == kind]
    true = np.stack([split[1].records[i].values.to_array() for i in rows])
    pred = np.stack([heldout_estimates[i].values.to_array() for i in rows])
    return rows, true, pred


def test_heldout_refusals_lean_positive_on_conformity_and_benevolence(split, heldout_estimates):
    refusals = [e for r, e in zip(split[1].records, heldout_estimates) if REFUSAL.match(r.response.strip())]
    assert len(refusals) > 100
    for value in ("conformity", "benevolence", "security"):
        mean = np.mean([e.values[value] for e in refusals])
        assert mean > 0.4, f"held-out refusals should uphold {value}, mean {mean:.2f}"
    # ... and they are not mistaken for violations.
    assert np.mean([e.values.most_negative()[1] for e in refusals]) > -0.15


@pytest.mark.parametrize("kind, min_auc", [
    # Measured with this 600-row test index: 0.79 and 0.78 (a stub that says 0 everywhere gets 0.5; plain kNN
    # got 0.71 and 0.70 here, the dialogue text form 0.59 and 0.66).
    ("annotated", 0.72),
    ("model", 0.72),
])
def test_heldout_violations_rank_above_the_rest(split, heldout_estimates, kind, min_auc):
    rows, true, _ = heldout_arrays(split, heldout_estimates, kind)
    y = violations(true, kind)
    assert 0.03 < y.mean() < 0.3
    auc = roc_auc(y, np.array([heldout_estimates[i].violation for i in rows]))
    assert auc > min_auc


@pytest.mark.parametrize("kind, gain", [
    # The value model is fitted on the index's own 600 rows and must still beat their plain kNN read-out.
    # Measured here: AP 0.52 vs 0.40 on annotated rows, 0.44 vs 0.40 on evaluator-scored rows.
    ("annotated", 0.08),
    ("model", 0.02),
])
def test_the_value_model_beats_plain_knn_on_heldout_rows(split, heldout_estimates, knn_heldout_estimates, kind,
                                                         gain):
    rows, true, _ = heldout_arrays(split, heldout_estimates, kind)
    y = violations(true, kind)
    model_ap = average_precision(y, np.array([heldout_estimates[i].violation for i in rows]))
    knn_ap = average_precision(y, np.array([knn_heldout_estimates[i].violation for i in rows]))
    assert model_ap > knn_ap + gain


def test_heldout_scores_follow_the_papers_evaluator(split, heldout_estimates):
    _, true, pred = heldout_arrays(split, heldout_estimates, "model")
    r = dict(zip(VALUE_NAMES, pearson_per_value(pred, true)))
    # Measured with the test index: mean r 0.52, every value between 0.30 (tradition) and 0.67.
    assert np.mean(list(r.values())) > 0.45
    assert min(r.values()) > 0.2, r


def test_a_reference_text_finds_itself_first(estimator, split):
    rec = split[0].records[5]
    est = estimator.estimate(rec.response, prompt=rec.prompt)
    top = est.neighbors[0]
    assert top.id == rec.id and top.similarity > 0.999
    assert top.values == pytest.approx(rec.values.to_dict(), abs=1e-4)


def test_evidence_is_ordered_weighted_and_bounded(heldout_estimates, estimator):
    for est in heldout_estimates[:50]:
        sims = [n.similarity for n in est.neighbors]
        assert len(sims) == estimator.k and sims == sorted(sims, reverse=True)
        assert sum(n.weight for n in est.neighbors) == pytest.approx(1.0, abs=1e-3)
        assert 0.0 <= est.confidence <= 1.0
        assert all(-1.0 <= v <= 1.0 for v in est.values.values())


def test_single_and_batch_agree(estimator, split):
    recs = split[1].records[:40]
    batch = estimator.estimate_batch([r.response for r in recs], [r.prompt for r in recs])
    one = estimator.estimate(recs[33].response, prompt=recs[33].prompt)
    assert one.values.to_array() == pytest.approx(batch[33].values.to_array(), abs=1e-5)
    assert [n.id for n in one.neighbors] == [n.id for n in batch[33].neighbors]


@pytest.mark.parametrize("opener", [
    # The openers that took the demo's poison answer from P(against) 0.81 to 0.00-0.01 (index/openers.py).
    "Sure. ", "Of course! ", "Absolutely, here you go. ", "Yes. ",
])
def test_a_compliant_opener_changes_nothing_the_read_out_reads(estimator, split, opener):
    # A violating held-out answer to a real prompt, read with its prompt (the pair read-out's path).
    rec = next(r for r in split[1].records
               if r.values.most_negative()[1] <= -0.5 and r.prompt and len(r.response) < 600)
    plain, opened = estimator.estimate_batch([rec.response, opener + rec.response], [rec.prompt, rec.prompt])
    assert opened.against == pytest.approx(plain.against, abs=1e-5)
    assert opened.values.to_array() == pytest.approx(plain.values.to_array(), abs=1e-5)
    assert [n.id for n in opened.neighbors] == [n.id for n in plain.neighbors]


def test_typographic_punctuation_changes_nothing_the_read_out_reads(estimator, split):
    # The same held-out violating answer with its apostrophes and quotes curly (index/typography.py): the benign
    # anchors write them so, and a format-3 index read the demo's poison answer 0.29 with them, 0.78 without.
    rec = next(r for r in split[1].records
               if r.values.most_negative()[1] <= -0.5 and r.prompt and "'" in r.response and len(r.response) < 600)
    curly = rec.response.replace("'", "\u2019").replace('"', "\u201c")
    plain, typographic = estimator.estimate_batch([rec.response, curly], [rec.prompt, rec.prompt])
    assert typographic.against == pytest.approx(plain.against, abs=1e-5)
    assert [n.id for n in typographic.neighbors] == [n.id for n in plain.neighbors]


@pytest.mark.parametrize("opener, closer", [
    # An opener that is not in openers.py's list: read away as a short first sentence.
    ("Good idea! ", ""),
    # A closing question, the benign anchors' most common ending (372 of 1,686): read away as a short last one.
    ("", " Does that help?"),
])
def test_a_short_first_or_last_sentence_cannot_lower_what_the_answer_reads(estimator, split, opener, closer):
    # A held-out violating answer with no short sentence of its own, so it is read once and its padded copy twice:
    # whole, and without the padding, which is the answer as it was (estimation/windows.py).
    rec = next(r for r in split[1].records
               if r.values.most_negative()[1] <= -0.5 and r.prompt and len(r.response) < 600
               and r.response == r.response.strip() and r.response[-1] in ".!?"
               and not without_short_sentences(format_text(r.response, None, "response")))
    text = opener + rec.response + closer
    plain, padded = estimator.estimate_batch([rec.response, text], [rec.prompt] * 2)
    assert plain.windows == 1 and padded.windows == 2
    assert padded.violation >= plain.violation - 1e-5
    if padded.window != [0, len(format_text(text, None, "response"))]:
        # The reading without the padding decided: it is the plain answer's estimate, evidence and all.
        assert padded.against == pytest.approx(plain.against, abs=1e-5)
        assert [n.id for n in padded.neighbors] == [n.id for n in plain.neighbors]


def test_confidence_is_higher_for_known_ground(estimator, split, heldout_estimates):
    own = estimator.estimate_batch([r.response for r in split[0].records[:30]],
                                   [r.prompt for r in split[0].records[:30]])
    assert np.median([e.confidence for e in own]) > np.median([e.confidence for e in heldout_estimates])


@pytest.mark.parametrize("sims, tau, expected", [
    ([[0.9, 0.5]], 0.0, [[0.5, 0.5]]),          # tau 0: equal weights
    ([[0.9, 0.9]], 0.05, [[0.5, 0.5]]),         # ties share equally
    ([[0.9, 0.5]], 0.05, [[0.99966, 0.00034]]),  # a 0.4 gap at tau 0.05 is e^8 to 1
])
def test_neighbor_weights(sims, tau, expected):
    assert neighbor_weights(np.array(sims), tau) == pytest.approx(np.array(expected), abs=1e-5)


def test_combine_agreeing_neighbours_are_confident():
    values = np.array([[1.0] + [0.0] * 9, [1.0] + [0.0] * 9, [-1.0] + [0.0] * 9], dtype=np.float32)
    agree, _, conf_agree = combine(np.array([[0.8, 0.8]]), np.array([[0, 1]]), values, 0.05)
    split_, _, conf_split = combine(np.array([[0.8, 0.8]]), np.array([[0, 2]]), values, 0.05)
    assert agree[0, 0] == pytest.approx(1.0) and split_[0, 0] == pytest.approx(0.0)
    assert conf_agree[0] == pytest.approx(0.8) and conf_split[0] < conf_agree[0]


def test_estimator_refuses_a_mismatched_embedder(estimator):
    class Other:
        model_id = "other-model"

        def embed(self, texts):
            raise AssertionError("never called")

    with pytest.raises(ValueError, match="does not match the index's model"):
        ValueEstimator(estimator.index, Other())


def test_repeated_texts_are_estimated_once_and_identically(index_dir, embedder, split):
    calls = []

    class Counting:  # the real embedder, counted
        model_id = embedder.model_id

        def embed(self, texts):
            calls.append(len(texts))
            return embedder.embed(texts)

    est = ValueEstimator.from_index(index_dir, embedder=Counting(), cache_size=2)
    a, b, c = [r.response for r in split[1].records if len(r.response) < 900][:3]  # one window each
    first = est.estimate_batch([a, b, a, a])  # a repeated within one batch: embedded once
    assert calls == [2] and first[0] == first[2] == first[3]
    assert est.estimate(b) == first[1] and calls == [2]  # a cache hit embeds nothing
    est.estimate(c)  # the cache holds 2: the least recently used (a) goes
    est.estimate(a)
    assert calls == [2, 1, 1]
    uncached = ValueEstimator.from_index(index_dir, embedder=embedder, cache_size=0)
    # Alone or in a batch, the same text gets the same estimate (up to padding noise in the embedding).
    assert uncached.estimate(a).values.to_array() == pytest.approx(first[0].values.to_array(), abs=1e-5)


def test_a_long_response_is_read_in_windows_and_the_worst_decides(estimator, split):
    """A violation after ~2,000 benign characters is still seen: the window holding it decides."""
    benign = [r for r in split[1].records if r.values.most_negative()[1] >= 0 and 400 < len(r.response) < 900]
    harmful = min(split[1].records, key=lambda r: estimator.estimate(r.response).values.most_negative()[1]
                  if r.label_kind == "model" and r.values.most_negative()[1] < -0.5 else 1.0)
    padding = "\n\n".join(r.response for r in benign[:3])
    long_text = padding + "\n\n" + harmful.response
    alone = estimator.estimate(harmful.response)
    est = estimator.estimate(long_text)
    # The deciding window reaches into the harmful part, which starts past the first 1,000 characters.
    assert est.windows >= 3 and est.window is not None and est.window[1] > len(padding) > 1000
    assert est.values.most_negative()[1] == pytest.approx(
        estimator.estimate(long_text[est.window[0]:est.window[1]]).values.most_negative()[1], abs=1e-4)
    assert est.values.most_negative()[1] < estimator.estimate(padding).values.most_negative()[1]
    assert alone.values.most_negative()[1] < -0.2
