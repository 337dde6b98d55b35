"""The reference record, the report a reader keeps of what it could not read, and the canonical JSONL form."""

from __future__ import annotations

import codecs
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from valueguard.values import ValueVector

LabelKind = Literal["annotated", "model"]

# A report keeps every count but only this many examples of each kind of problem.
MAX_EXAMPLES = 10


class ReferenceRecord(BaseModel):
    """One labelled (prompt, response) pair of the reference data."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(description="Stable id, e.g. 'trustworthy_data.dev:17' (file stem and line number).")
    prompt: str = Field(default="", description="The user turn the response answers; may be empty.")
    response: str = Field(description="The model's response that was labelled.")
    values: ValueVector = Field(description="Scores for all 10 basic values, each in [-1, 1].")
    source: str = Field(description="Who wrote the response, e.g. 'gemini' or 'openai_gpt-4'.")
    label_kind: LabelKind = Field(
        description="'annotated': human-GPT labels in {-1, 0, +1}; 'model': continuous evaluator scores."
    )

    @field_validator("values", mode="before")
    @classmethod
    def _to_vector(cls, v: Any) -> ValueVector:
        if isinstance(v, ValueVector):
            return v
        if isinstance(v, dict):
            return ValueVector.from_dict(v)
        return ValueVector(v)

    @field_serializer("values")
    def _from_vector(self, v: ValueVector) -> dict[str, float]:
        return v.to_dict()


@dataclass
class ReadReport:
    """What a reader met in one file: rows kept, and every line or label it could not use."""

    path: str
    format: str = "unknown"
    records: int = 0
    bad_lines: int = 0
    bad_line_examples: list[tuple[int, str]] = field(default_factory=list)
    unparsed_labels: int = 0
    unparsed_label_examples: list[tuple[int, str]] = field(default_factory=list)
    conflicts: int = 0
    conflict_examples: list[tuple[int, str]] = field(default_factory=list)
    # Scored refusals read as violating nothing (reference/hygiene.py).
    relabelled_refusals: int = 0
    relabelled_examples: list[int] = field(default_factory=list)
    label_spellings: Counter[str] = field(default_factory=Counter)

    def bad_line(self, line_no: int, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad_line_examples) < MAX_EXAMPLES:
            self.bad_line_examples.append((line_no, reason))

    def unparsed_label(self, line_no: int, label: str) -> None:
        self.unparsed_labels += 1
        if len(self.unparsed_label_examples) < MAX_EXAMPLES:
            self.unparsed_label_examples.append((line_no, label))

    def conflict(self, line_no: int, detail: str) -> None:
        self.conflicts += 1
        if len(self.conflict_examples) < MAX_EXAMPLES:
            self.conflict_examples.append((line_no, detail))

    def relabelled_refusal(self, line_no: int) -> None:
        self.relabelled_refusals += 1
        if len(self.relabelled_examples) < MAX_EXAMPLES:
            self.relabelled_examples.append(line_no)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "records": self.records,
            "bad_lines": self.bad_lines,
            "bad_line_examples": [{"line": n, "reason": r} for n, r in self.bad_line_examples],
            "unparsed_labels": self.unparsed_labels,
            "unparsed_label_examples": [{"line": n, "label": s} for n, s in self.unparsed_label_examples],
            "conflicting_labels": self.conflicts,
            "conflict_examples": [{"line": n, "labels": s} for n, s in self.conflict_examples],
            "relabelled_refusals": self.relabelled_refusals,
            "relabelled_examples": list(self.relabelled_examples),
        }

    def describe(self) -> str:
        parts = [f"{self.path}: {self.records} records ({self.format})"]
        if self.bad_lines:
            shown = "; ".join(f"line {n}: {r}" for n, r in self.bad_line_examples[:3])
            parts.append(f"{self.bad_lines} unreadable line(s), e.g. {shown}")
        if self.unparsed_labels:
            shown = ", ".join(f"line {n}: {s!r}" for n, s in self.unparsed_label_examples[:3])
            parts.append(f"{self.unparsed_labels} label(s) not understood and left out, e.g. {shown}")
        if self.conflicts:
            shown = ", ".join(f"line {n}: {s}" for n, s in self.conflict_examples[:3])
            parts.append(f"{self.conflicts} value(s) labelled both ways, kept as -1, e.g. {shown}")
        if self.relabelled_refusals:
            shown = ", ".join(f"line {n}" for n in self.relabelled_examples[:3])
            parts.append(f"{self.relabelled_refusals} refusal(s) scored as violations read as violating nothing "
                         f"(docs/quality.md, label noise), e.g. {shown}")
        return "; ".join(parts)


def write_canonical(records: Iterable[ReferenceRecord], path: str | Path) -> int:
    """Write records as canonical JSONL, one `ReferenceRecord` a line; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as out:
        for rec in records:
            out.write(json.dumps(rec.model_dump(), ensure_ascii=False) + "\n")
            n += 1
    return n


# docs/reliability.md, "Reading logs": a line longer than this is a bad line, skipped without being parsed (a
# 50 MB line once took 1.3 GB to parse). Every JSONL reader takes `max_line_bytes` to change it.
MAX_LINE_BYTES = 1_000_000
# An escaped surrogate in the raw line: only then can the parsed strings hold a lone one.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def json_lines(path: str | Path, *, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, object) for each JSON object line, or (line number, reason) for a line that is not one;
    blank lines are skipped. Streams: one line (of at most `max_line_bytes`) at a time.

    A bad line is: not UTF-8, longer than `max_line_bytes` (skipped unread), not JSON, nested too deep for the
    parser, holding a lone surrogate escape ("\\ud800", which no UTF-8 output can carry), or not an object.
    A UTF-8 byte-order mark at the start of the file is accepted."""
    with open(path, "rb") as f:
        line_no = 0
        while raw := f.readline(max_line_bytes + 1):
            line_no += 1
            if len(raw) > max_line_bytes and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # the rest of the line, in bounded pieces, unparsed
                    raw = f.readline(1 << 20)
                yield line_no, f"line longer than {max_line_bytes:,} bytes, skipped unparsed"
                continue
            if line_no == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield line_no, f"not UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as e:
                yield line_no, f"not JSON ({e.msg} at column {e.colno})"
                continue
            except RecursionError:
                yield line_no, "not readable JSON (nested too deep)"
                continue
            if not isinstance(obj, dict):
                yield line_no, f"expected a JSON object, got {type(obj).__name__}"
                continue
            if _SURROGATE_ESCAPE.search(text) and (where := lone_surrogate(obj)):
                yield line_no, f"a lone surrogate escape in {where}: not text"
                continue
            yield line_no, obj


def lone_surrogate(obj: Any) -> str | None:
    """The path ('messages[2].content') of the first string holding a lone surrogate, or None. Iterative: the
    object may be as deep as the parser allowed."""
    stack: list[tuple[str, Any]] = [("line", obj)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(v, dict):
            for k, x in v.items():
                stack.append((f"{where}.{k}"[:80] if where != "line" else str(k)[:80], x))
                if isinstance(k, str):
                    stack.append((f"a key of {where}"[:80], k))
        elif isinstance(v, list):
            stack.extend((f"{where}[{i}]"[:80], x) for i, x in enumerate(v))
    return None


def iter_jsonl(path: str | Path, report: ReadReport, *,
               max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each JSON object line; anything else goes into the report."""
    for line_no, obj in json_lines(path, max_line_bytes=max_line_bytes):
        if isinstance(obj, str):
            report.bad_line(line_no, obj)
        else:
            yield line_no, obj


def file_stem(path: Path) -> str:
    """chat.jsonl -> chat: the part of a file's name that record ids start with."""
    name = path.name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else path.stem
