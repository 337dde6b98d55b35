import pytest

from valueguard.estimation.windows import (WINDOW_CHARS, reading_spans, sample_spans, text_windows,
                                          without_short_sentences)

SENTENCE = "The quick brown fox jumps over the lazy dog. "


@pytest.mark.parametrize("text, windows", [
    ("", 1),                       # nothing to split
    (SENTENCE * 10, 1),            # 450 characters fit one window
    (SENTENCE * 22, 1),            # 990: still one
    (SENTENCE * 40, 2),            # 1,800: two windows of <=1,000 with 200 overlap
    ("x" * 2500, 3),               # no boundary at all: hard cuts, still covering everything
])
def test_windows_cover_the_text_with_overlap(text, windows):
    spans = text_windows(text)
    assert len(spans) == windows
    assert spans[0][0] == 0 and spans[-1][1] == len(text)
    for (a, b), (c, d) in zip(spans, spans[1:]):
        assert b - a <= 1000 and c < b and c > a  # overlapping, moving forward
        assert b - c <= 200 + 1


def test_windows_end_and_start_at_boundaries():
    text = SENTENCE * 40
    for a, b in text_windows(text)[:-1]:
        assert text[b - 1] == " " and (a == 0 or text[a - 1] == " ")


@pytest.mark.parametrize("text, read", [
    # An unlisted opener and a closing question: each read away on its own, the other kept.
    ("Good idea! Buy antifreeze and mix it in. Does that help?",
     ["Buy antifreeze and mix it in. Does that help?", "Good idea! Buy antifreeze and mix it in."]),
    # A first sentence of 7 words is content, not an aside.
    ("Mix 500 g flour, 7 g yeast. Bake it at 220 C for 30 minutes.", []),
    # A first sentence that is a long question stays (it is the demo's benign answer); its short last one goes.
    ("Would you like to learn how to make some chocolate chip cookies? Baking together is fun.",
     ["Would you like to learn how to make some chocolate chip cookies?"]),
    # A one-sentence answer has nothing to read away.
    ("Sure!", []),
    ("One sentence only here.", []),
    # Nothing but the short sentence would be left of a word: kept.
    ("Right. :)", []),
])
def test_without_short_sentences(text, read):
    assert [text[a:b] for a, b in without_short_sentences(text)] == read


def test_a_long_text_is_read_as_windows_then_without_its_short_first_and_last_sentences():
    text = "Good idea! " + "Mix the powder into the meat and leave it by the fence. " * 40 + "Does that help?"
    spans = reading_spans(text)
    windows = text_windows(text)
    assert spans[:len(windows)] == windows
    first, last = spans[len(windows):]
    # Only the first window loses the opener, only the last the closer: each cut stays within one window.
    assert first == (len("Good idea! "), windows[0][1])
    assert last == (windows[-1][0], len(text) - len(" Does that help?"))


@pytest.mark.parametrize("opener, closer, cuts", [
    # A sampled text keeps the cuts at its own ends, in its head's first window and its tail's last one.
    ("Good idea! ", " Does that help?", 2),
    # Without a short sentence at either end, the sampled pieces are all it reads: no piece's mid-sentence start or
    # end is taken for a short sentence.
    ("", "", 0),
])
def test_past_max_chars_only_the_sampled_pieces_and_the_texts_own_ends_are_read(opener, closer, cuts):
    # Short sentences all through the middle ("Stop."), long ones at the ends unless the row adds one.
    text = (opener + "This answer opens with a sentence of many words. "
            + "Stop. Mix the powder into the meat and leave it by the fence. " * 2_000
            + "This answer closes with a sentence of many words." + closer)
    max_chars = 20_000
    spans = reading_spans(text, max_chars)
    windows = [(a + x, a + y) for a, b in sample_spans(len(text), max_chars) for x, y in text_windows(text[a:b])]
    assert spans[:len(windows)] == windows and len(spans) == len(windows) + cuts
    # Bounded: every reading lies in a sampled piece, and the cuts add at most two windows.
    pieces = sample_spans(len(text), max_chars)
    assert all(any(pa <= a < b <= pb for pa, pb in pieces) for a, b in spans)
    assert all(b - a <= WINDOW_CHARS for a, b in spans[len(windows):])
    if cuts:
        assert spans[-2] == (len(opener), windows[0][1]) and spans[-1] == (windows[-1][0], len(text) - len(closer))
