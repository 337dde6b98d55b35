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
        m = _BREAK.search(text, nxt, end)  # begin the next window after a boundary too
        start = m.end() if m else nxt
