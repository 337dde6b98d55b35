"""Long texts as overlapping windows the embedder can read whole.

MiniLM reads 256 tokens, about 1,000 characters of English: past that, a text is embedded from its beginning
only. Windows of WINDOW_CHARS with OVERLAP_CHARS of overlap let every part be seen; a window ends at a
sentence or word boundary when one is near, so no window starts or stops mid-word.
"""

from __future__ import annotations

import re

WINDOW_CHARS = 1000
OVERLAP_CHARS = 200
_BREAK = re.compile(r"[.!?\n]\s+|\s+")


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
