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


@dataclass(frozen=True)
class BadLine:
    """A line (or database row) that could not be read; the run goes on."""

    path: str
    line: int
    reason: str


# A log reader: a path in, turns and bad lines out, in input order, holding no more than one record at a time.
LogReader = Callable[[Path], Iterator["Turn | BadLine"]]
