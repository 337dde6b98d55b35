"""The streaming gate: which chunks of a streamed response may go out, and when, given the guard's verdicts.

It does no I/O: a driver (the `@guarded` decorator, the LangChain wrapper) pushes each chunk with its text, checks
the text the gate asks for (sync or async, as it likes), hands the verdict back and sends on what the gate
releases. One behaviour for every integration:

- "hold" (default): every chunk is held; the whole text is checked once at the end. Allowed (allow, log): the
  original chunks go out. Flagged (rewrite, block): one stand-in with the verdict's text; nothing original, no
  tool call. Zero unchecked text or tool calls ever go out.
- "incremental": text chunks are held until a sentence ends; then the window (the text released at the last
  check, for context, plus the new sentences) is checked and, if allowed, the held chunks go out. Chunks that
  carry a tool call are held to the end, as in hold mode. At the end the whole text is checked once; only if it
  is allowed do the last text and the tool calls go out. A flag ends the stream: when text was already released
  it ends with the block message (a rewrite counts as a block: a revision would repeat what is already out), else
  with the verdict's text. What can leak: sentences released before a later check flags, which cannot be taken
  back, and harm that no window shows until the whole text is seen (the end check then withholds the rest and
  the tool calls, but what is out stays out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from valueguard.policy.actions import FLAGGING

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.guard.guard import Verdict

StreamMode = Literal["hold", "incremental"]
STREAM_MODES: tuple[str, ...] = ("hold", "incremental")
# Sentence end: terminal punctuation (maybe closed by a quote or bracket) before whitespace or the end, or a newline.
SENTENCE_END = re.compile(r"[.!?…][\"'’”)\]]*(?:\s|$)|\n")


@dataclass(frozen=True)
class Release:
    """What the driver sends on after a check: original chunks, or one stand-in for all the rest."""

    chunks: list[Any] = field(default_factory=list)
    replacement: str | None = None  # the text of one new chunk standing in for the rest of the response
    done: bool = False  # the stream ends here: the driver stops (and closes) its source

    @property
    def flagged(self) -> bool:
        return self.replacement is not None


class StreamGate:
    """One streamed response's state. Call push() per chunk, check what it returns (when not None) and pass the
    verdict to decide(); at the end of the source, check finish()'s text (the whole response) and decide()."""

    def __init__(self, mode: StreamMode = "hold", *, block_message: str) -> None:
        if mode not in STREAM_MODES:
            raise ValueError(f"stream mode is 'hold' or 'incremental', got {mode!r}")
        self.mode = mode
        self.block_message = block_message
        self.text = ""  # everything pushed, in order: what the end check reads
        self.released = ""  # the text of the chunks sent on so far
        self._held: list[tuple[Any, str, bool]] = []  # (chunk, its text, carries a tool call), in order
        self._context = ""  # the window checked last: the next window starts with it
        self._unchecked = 0  # where in `text` the text no window has seen begins
        self._final = False
        self.done = False

    def push(self, chunk: Any, text: str, *, acts: bool = False) -> str | None:
        """Hold `chunk` (its text is `text`; `acts`: it carries a tool call). Returns the window to check now,
        or None when no check is due."""
        if self.done or self._final:
            raise RuntimeError("the stream gate has ended: push() after finish() or a flag")
        self.text += text
        self._held.append((chunk, text, acts))
        if self.mode == "hold" or not SENTENCE_END.search(text):
            return None
        window = self._context + self.text[self._unchecked:]
        self._context, self._unchecked = self.text[self._unchecked:], len(self.text)
        return window

    def finish(self) -> str:
        """The whole response, for the one check at the end."""
        self._final = True
        return self.text

    def decide(self, verdict: Verdict) -> Release:
        """The verdict on the text push() or finish() asked to check last."""
        if verdict.action in FLAGGING:
            self.done, self._held = True, []
            if not self.released:
                return Release(replacement=verdict.text, done=True)
            text = verdict.text if verdict.action == "block" else self.block_message
            return Release(replacement=("" if self.released[-1].isspace() else " ") + text, done=True)
        if self._final:
            out, self._held, self.done = self._held, [], True
        else:  # a window passed: its text goes out, tool calls wait for the end
            out = [h for h in self._held if not h[2]]
            self._held = [h for h in self._held if h[2]]
        self.released += "".join(text for _, text, _ in out)
        return Release(chunks=[chunk for chunk, _, _ in out], done=self.done)
