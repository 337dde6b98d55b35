"""Typographic punctuation (’ “ ” – …) is read as its ASCII form before a text is embedded.

Why: the reference data confounds it with benign answers. 794 of the 1,686 benign HH-RLHF anchors write the
apostrophe as ’ and 214 quote with “ ”; of the 4,990 FULCRA and evaluator-scored responses, 6 and 2 do. The
tokenizer reads ’ and ' as different tokens, so the read-out could take the curly apostrophe as a sign of plain
helpful chat, and on a short answer it did: the demo's poison answer, written with ’ (neighbour’s, it’s), read
P(against) 0.29 against 0.78 with ' (index format 3; held out the effect was small, docs/quality.md). Many chat
models write ’ by default, and one character must not decide a verdict, so every text is read with the ASCII form.
The evidence and the verdict keep the text as it was.
"""

from __future__ import annotations

# Only marks whose ASCII form says the same thing; letters with accents stay as they are.
_PLAIN = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",  # ‘ ’ ‚ ‛ ′
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',  # “ ” „ ‟ ″
    "\u2013": "-", "\u2014": "-", "\u2212": "-",  # – — −
    "\u2026": "...", "\u2044": "/", "\u00a0": " ",  # … ⁄ no-break space
})


def plain_typography(text: str) -> str:
    """`text` with typographic quotes, dashes, ellipsis, fraction slash and no-break space in their ASCII form."""
    return text.translate(_PLAIN)
