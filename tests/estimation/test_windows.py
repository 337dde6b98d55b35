import pytest

from valueguard.estimation.windows import text_windows

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
