"""FormatTable: the one format registry of JSONL files, shared by the reference readers and the audit's log readers.

A format is a name, the keys a file's first JSON object must have for it to be detected (all of `keys`, and at
least one of `any_of` when it is given), and its reader. A table
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
    line, e.g. a database told by its file), its reader, and `any_of`: keys of which a line needs at least one
    (None: no such condition), for a format whose lines differ in which of their keys they carry."""

    name: str
    keys: frozenset[str] | None
    reader: R
    any_of: frozenset[str] | None = None

    def matches(self, keys: set[str]) -> bool:
        """Whether a line with these keys is of this format."""
        if self.keys is None or not self.keys <= keys:
            return False
        return self.any_of is None or not self.any_of.isdisjoint(keys)


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
        """The name of the first format whose keys `obj` has (Format.matches), or None."""
        keys = set(obj)
        return next((f.name for f in self.formats if f.matches(keys)), None)


def keys(*names: str) -> frozenset[str]:
    """The identifying keys of a format, written as a list."""
    return frozenset(names)
