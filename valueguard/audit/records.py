"""What a log reader yields: audited turns, and the lines it could not read (in input order)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Turn:
    """One assistant turn to audit, with the user turn before it as its prompt."""

    id: str | int  # the input's own id where it has one, else "file:line[:turn]"
    prompt: str | None
    response: str
    source: str | None = None  # the model or system that wrote the response, where the log says

    def __post_init__(self) -> None:
        # The boundary of the audit record: a reader that hands on anything but text fails here, loudly, rather
        # than an estimate of str(None) going into the output.
        if not isinstance(self.response, str):
            raise TypeError(f"a turn's response is a str, got {type(self.response).__name__}")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise TypeError(f"a turn's prompt is a str or None, got {type(self.prompt).__name__}")
        if not isinstance(self.id, (str, int)) or isinstance(self.id, bool):
            raise TypeError(f"a turn's id is a str or an int, got {type(self.id).__name__}")
        if self.source is not None and not isinstance(self.source, str):
            raise TypeError(f"a turn's source is a str or None, got {type(self.source).__name__}")


@dataclass(frozen=True)
class BadLine:
    """A line (or database row) that could not be read; the run goes on."""

    path: str
    line: int
    reason: str


# A log reader: a path in, turns and bad lines out, in input order, holding no more than one record at a time.
# It takes `max_line_bytes` as a keyword: a longer line (or value) is a BadLine, skipped unparsed.
LogReader = Callable[..., Iterator["Turn | BadLine"]]
