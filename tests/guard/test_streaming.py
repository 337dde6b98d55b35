"""The core streaming gate on its own: no I/O, verdicts made by hand (a Verdict is a value object)."""

from __future__ import annotations

import pytest

from valueguard.guard.guard import Verdict
from valueguard.guard.streaming import StreamGate

BLOCK = "Blocked."


def verdict(action: str, text: str) -> Verdict:
    return Verdict(decision_id="d", action=action, text=text, values={}, confidence=1.0, rules=[], neighbors=[],
                   elapsed_ms=0.0, policy="p", policy_version="1")


def run(gate: StreamGate, pieces: list[tuple[str, bool]], decide) -> tuple[list, list[str]]:
    """Drive the gate like an integration does; `decide(text)` gives the verdict. (sent, texts checked)."""
    sent, checked = [], []
    for i, (text, acts) in enumerate(pieces):
        window = gate.push(i, text, acts=acts)
        if window is not None:
            checked.append(window)
            release = gate.decide(decide(window))
            sent += release.chunks + ([release.replacement] if release.flagged else [])
            if release.done:
                return sent, checked
    checked.append(gate.finish())
    release = gate.decide(decide(checked[-1]))
    return sent + release.chunks + ([release.replacement] if release.flagged else []), checked


PIECES = [("Hello there. ", False), ("", True), ("Bad ", False), ("part.", False), (" End", False)]


@pytest.mark.parametrize("mode, flag_on, sent, checked", [
    # hold, allowed: everything in order after the one check of the whole text
    ("hold", None, [0, 1, 2, 3, 4], ["Hello there. Bad part. End"]),
    # hold, flagged: the verdict's text alone
    ("hold", "End", ["Blocked."], ["Hello there. Bad part. End"]),
    # incremental, allowed: sentences as checked; the tool call waits for the end check of the whole text
    ("incremental", None, [0, 2, 3, 1, 4], ["Hello there. ", "Hello there. Bad part.", "Hello there. Bad part. End"]),
    # incremental, the second window flags after the first was released: the block message ends the stream
    ("incremental", "Bad", [0, "Blocked."], ["Hello there. ", "Hello there. Bad part."]),
    # incremental, only the end check flags: the last text and the tool call never go out (a space joins)
    ("incremental", " End", [0, 2, 3, " Blocked."],
     ["Hello there. ", "Hello there. Bad part.", "Hello there. Bad part. End"]),
])
def test_one_behaviour_per_mode(mode, flag_on, sent, checked):
    gate = StreamGate(mode, block_message=BLOCK)
    got = run(gate, PIECES, lambda t: verdict("block", BLOCK) if flag_on and flag_on in t else verdict("allow", t))
    assert got == (sent, checked)


@pytest.mark.parametrize("released_first, expected", [
    (False, ["Revised."]),  # nothing out yet: the revision stands in, as in hold mode
    (True, [0, " Blocked."]),  # text already out: a rewrite ends the stream with the block message
])
def test_a_rewrite_in_incremental_mode(released_first, expected):
    gate = StreamGate("incremental", block_message=BLOCK)
    pieces = [("Fine.", False), ("Bad.", False)] if released_first else [("Bad.", False)]
    sent, _ = run(gate, pieces, lambda t: verdict("rewrite", "Revised.") if "Bad" in t else verdict("allow", t))
    assert sent == expected


def test_the_gate_refuses_chunks_after_it_ended():
    gate = StreamGate("hold", block_message=BLOCK)
    gate.finish()
    with pytest.raises(RuntimeError, match="ended"):
        gate.push("x", "x")


def test_an_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="hold"):
        StreamGate("fast", block_message=BLOCK)  # type: ignore[arg-type]
