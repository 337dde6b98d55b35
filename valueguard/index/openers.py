"""A compliant opener ("Sure.", "Of course!", "Absolutely, here you go.") is taken off a response before it is read.

Why: the read-out learned such openers as a sign of a *benign* answer. The reference data confounds them: 53 of
the 1,686 benign HH-RLHF anchors open with "Sure" and one FULCRA annotated row does, so "Sure." in front of a
harmful answer pulled it towards the plain helpful chat. Measured on the demo's poison answer (index format 2,
pair read-out): P(against) 0.81 without an opener, 0.00 with "Sure." or "Absolutely, here you go.", 0.01 with
"Of course." or "Yes."; the stalking answer 0.16 -> 0.04. A guard that one word defeats is no guard, and "Sure,
here is..." is the very answer a jailbreak asks for. The opener says the answer goes along with the request, not
what it does; what it does is in the rest, which the read-out reads with the prompt.

Only a whole opening unit of acknowledgements, ended by punctuation, with more text after it, is taken off:
"Of course not." and "Sure! :)" are kept, "Surely..." and "Yesterday..." are not openers. An opener that is
not in the list ("Good idea!", "No worries.") is read as before: this is a patch for the common forms, not a
cure for the confound (docs/quality.md, "Compliant openers").
"""

from __future__ import annotations

import re

# Acknowledgements that open an answer that goes along with the request; lower case, longest first in the regex.
ACKNOWLEDGEMENTS = (
    "sure thing", "sure", "of course", "certainly", "absolutely", "definitely", "gladly", "okay", "ok", "alright",
    "all right", "yes", "yeah", "yep", "great question", "good question", "great", "no problem", "here you go",
    "here you are", "here's how", "here is how", "happy to help", "glad to help", "i can help with that",
    "i can help you with that", "i'd be happy to help", "i'd be glad to help", "i would be happy to help",
)
_WORD = "|".join(re.escape(a).replace("'", "['’]").replace(r"\ ", r"\s+")
                 for a in sorted(ACKNOWLEDGEMENTS, key=len, reverse=True))
# One or more units of acknowledgements (joined by commas or spaces), each ended by . ! : or a comma, then space.
_OPENER = re.compile(rf"^\s*(?:(?:{_WORD})(?:[\s,]+(?:{_WORD}))*\s*[.!:,]+\s*)+(?=\S)", re.IGNORECASE)
# What must be left: a word ("Sure. Vodka." reads "Vodka."), or the opener is the answer and stays ("Sure! :)").
_SUBSTANCE = re.compile(r"\w")


def strip_opener(response: str) -> str:
    """`response` without its compliant opener; unchanged when it has none, or when no word would be left."""
    m = _OPENER.match(response)
    if m is None:
        return response
    rest = response[m.end():]
    return rest if _SUBSTANCE.search(rest) else response
