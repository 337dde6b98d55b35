"""Benign chat turns from the HH-RLHF helpful file: the eval's benign test turns, and the stacker's benign anchors.

FULCRA's rows are answers to mostly harmful requests, so a read-out fitted on them alone has never seen a plain
helpful answer to a plain request: a bread recipe reads like the drug recipes it sits next to. The pair
read-out's stacker therefore also learns from *benign anchors*: the last `chosen` assistant turn of each HH-RLHF
helpful transcript after the first BENIGN_TEST_LINES lines, taken as working against no value. The first
BENIGN_TEST_LINES lines are the benign turns `valueguard eval --compare` and `calibrate --target-benign-rate`
measure over-blocking on, so an anchor is never one of them, nor shares a prompt with one.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from valueguard.reference.record import json_lines

# The eval's benign turns are the first this many lines of the file; the anchors come from the lines after them.
BENIGN_TEST_LINES = 600
BENIGN_FILE = Path("hh-rlhf") / "helpful_test.jsonl"
# A speaker tag opens the transcript or follows a blank line; the first tag needs no blank line before it
# because some copies of the data strip the leading "\n\n".
HH_TAG = re.compile(r"(?:^|\n\n)(Human|Assistant):")

Turn = tuple[str, str | None]  # (response, prompt)


def hh_messages(transcript: str) -> list[tuple[str, str]]:
    """A `\\n\\nHuman: ...\\n\\nAssistant: ...` transcript as (role, text) messages, role "user" or "assistant"."""
    pieces = HH_TAG.split(transcript)  # [preamble, tag, text, tag, text, ...]
    return [("user" if tag == "Human" else "assistant", text) for tag, text in zip(pieces[1::2], pieces[2::2])]


def _last_chosen_turns(path: Path) -> list[tuple[int, Turn]]:
    """(line number, (response, prompt)) of the last non-empty assistant turn of each line's `chosen` transcript;
    a line that is not a transcript, or has no such turn, gives none (the file is verified at `data pull`)."""
    out = []
    for line_no, obj in json_lines(path):
        transcript = obj.get("chosen") if isinstance(obj, dict) else None
        if not isinstance(transcript, str):
            continue
        prompt: str | None = None
        last: Turn | None = None
        for role, text in hh_messages(transcript):
            if role == "user":
                prompt = text.strip() or None
            elif text.strip():
                last = (text.strip(), prompt)
        if last is not None:
            out.append((line_no, last))
    return out


def benign_test_turns(path: Path, lines: int = BENIGN_TEST_LINES) -> list[Turn]:
    """The last chosen turn of each of the first `lines` lines, duplicates once: the benign turns eval measures."""
    return list(dict.fromkeys(t for line, t in _last_chosen_turns(path) if line <= lines))


def anchor_turns(path: Path, test_lines: int = BENIGN_TEST_LINES) -> list[tuple[str, str]]:
    """(prompt, response) benign anchors: the last chosen turn of each line after the first `test_lines`, with a
    prompt, none sharing a prompt or a response with a test turn, duplicates once."""
    turns = _last_chosen_turns(path)
    test = [t for line, t in turns if line <= test_lines]
    seen_prompts, seen_responses = {p for _, p in test}, {r for r, _ in test}
    return list(dict.fromkeys((p, r) for line, (r, p) in turns if line > test_lines and p
                              and p not in seen_prompts and r not in seen_responses))


def default_anchor_turns(data_dir: Path) -> list[tuple[str, str]]:
    """The benign anchors from DATA_DIR's HH-RLHF helpful file; none when it is not there."""
    path = Path(data_dir) / BENIGN_FILE
    return anchor_turns(path) if path.is_file() else []


def anchors_sha256(turns: list[tuple[str, str]]) -> str:
    """A fingerprint of (prompt, response) anchors, which an index records to tell when they have changed."""
    h = hashlib.sha256(b"anchors")
    for prompt, response in turns:
        h.update(b"\x00" + prompt.encode() + b"\x01" + response.encode())
    return h.hexdigest()
