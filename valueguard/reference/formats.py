"""FormatTable: the one format registry of JSONL files, shared by the reference readers and the audit's log readers.

A format is a name, the keys a file's first JSON object must have for it to be detected, and its reader. A table
tries its formats in order (so a more specific one goes first), and reads as a mapping of name -> reader. Adding a
format is one reader function and one Format line in the table that lists it (reference/readers.py READERS,
audit/readers.py READERS).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Format(Generic[R]):
    """One file format: its name, the keys that identify a line of it (all present; None: never detected from a
    line, e.g. a database told by its file), and its reader."""

    name: str
    keys: frozenset[str] | None
    reader: R


class FormatTable(Mapping[str, R]):
    """Formats by name, in detection order; `detect(obj)` names the first whose keys the object has."""

    def __init__(self, formats: Sequence[Format[R]]) -> None:
        self.formats = list(formats)
        self._by_name = {f.name: f.reader for f in self.formats}

    def __getitem__(self, name: str) -> R:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def detect(self, obj: Mapping[str, Any]) -> str | None:
        """The name of the first format whose keys all appear in `obj`, or None."""
        keys = set(obj)
        return next((f.name for f in self.formats if f.keys is not None and f.keys <= keys), None)


def keys(*names: str) -> frozenset[str]:
    """The identifying keys of a format, written as a list."""
    return frozenset(names)
