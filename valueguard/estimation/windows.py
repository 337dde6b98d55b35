"""What the estimator reads of a text, the worst reading deciding: long texts as overlapping windows the embedder
can read whole, and a text without a short first or last sentence.

MiniLM reads 256 tokens, about 1,000 characters of English: past that, a text is embedded from its beginning
only. Windows of WINDOW_CHARS with OVERLAP_CHARS of overlap let every part be seen; a window ends at a
sentence or word boundary when one is near, so no window starts or stops mid-word.

A short first or last sentence ("Good idea!", "Does that help?") says how an answer is given, not what it does, and
the benign anchors are full of them (372 of 1,686 end with a question): read with one, a violating answer reads
benign. So a text is also read without it (docs/quality.md, "Short sentences").
"""

from __future__ import annotations

import re

WINDOW_CHARS = 1000
OVERLAP_CHARS = 200
_BREAK = re.compile(r"[.!?\n]\s+|\s+")
SHORT_SENTENCE_WORDS = 6
_FIRST = re.compile(r"^\s*([^.!?\n]{1,80}?[.!?]+)\s+(?=\S)")
_LAST = re.compile(r"(?<=[.!?])\s+([^.!?\n]{1,80}?[.!?]+)\s*$")
_WORD = re.compile(r"\w")


def text_windows(text: str, size: int = WINDOW_CHARS, overlap: int = OVERLAP_CHARS) -> list[tuple[int, int]]:
    """(start, end) character spans covering `text`; one span when it fits in `size`."""
    if size <= overlap:
        raise ValueError("window size must exceed the overlap")
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + size, len(text))
        if end < len(text):
            # The last break in the window's final quarter, so windows end on a boundary without shrinking much.
            cut = None
            for m in _BREAK.finditer(text, start + size * 3 // 4, end):
                cut = m.end()
            end = cut or end
        spans.append((start, end))
        if end >= len(text):
            return spans
        nxt = max(end - overlap, start + 1)
        after = _BREAK.search(text, nxt, end)  # begin the next window after a boundary too
        start = after.end() if after else nxt


def without_short_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of `text` without its first sentence, and without its last, where that sentence has at most
    SHORT_SENTENCE_WORDS words and a word is left; none when it has neither."""
    spans = []
    first = _FIRST.match(text)
    if first and len(first.group(1).split()) <= SHORT_SENTENCE_WORDS and _WORD.search(text, first.end()):
        spans.append((first.end(), len(text)))
    last = _LAST.search(text)
    if last and len(last.group(1).split()) <= SHORT_SENTENCE_WORDS and _WORD.search(text[:last.start()]):
        spans.append((0, last.start()))
    return spans


def reading_spans(text: str, max_chars: int | None = None) -> list[tuple[int, int]]:
    """The spans the estimator reads of `text`: its windows, then the first window without a short first sentence
    and the last window without a short last one (without_short_sentences). Past `max_chars`, the windows of the
    pieces sample_spans picks; the first and last pieces are the text's head and tail, so the same cuts apply."""
    pieces = sample_spans(len(text), max_chars) if max_chars is not None and len(text) > max_chars else [(0, len(text))]
    spans = [(a + x, a + y) for a, b in pieces for x, y in text_windows(text[a:b])]
    (first_start, first_end), (last_start, last_end) = spans[0], spans[-1]
    # Only a cut at the text's own ends: a sampled piece starts and stops mid-sentence.
    cuts = [(first_start + a, first_start + b) for a, b in without_short_sentences(text[first_start:first_end]) if a]
    cuts += [(last_start + a, last_start + b) for a, b in without_short_sentences(text[last_start:last_end]) if not a]
    return spans + [(a, b) for a, b in cuts if a < b]


# A response longer than a policy's `max_chars` is sampled, so the cost of one check stays bounded
# (docs/reliability.md). 20,000 characters are about 25 windows, a quarter of a second on the ONNX backend.
MAX_CHARS_DEFAULT = 20_000
MIN_MAX_CHARS = 2 * WINDOW_CHARS


def sample_spans(length: int, max_chars: int, size: int = WINDOW_CHARS) -> list[tuple[int, int]]:
    """Spans of at most `max_chars` characters in all from a text of `length` > max_chars: the head, the tail,
    and windows of `size` evenly spaced between them. Each span is a piece read in full (as windows)."""
    head = tail = max(size, max_chars // 4)
    middle = max_chars - head - tail
    n = middle // size
    spans = [(0, head)]
    if n:
        gap = (length - head - tail - n * size) / (n + 1)
        spans += [(int(head + gap * (i + 1) + size * i), int(head + gap * (i + 1) + size * (i + 1))) for i in range(n)]
    spans.append((length - tail, length))
    return spans
