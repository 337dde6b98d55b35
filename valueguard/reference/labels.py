"""The labels file a user teaches the guard with: `labels.jsonl`, one judgement of one (prompt, response) a line.

A line names the values the response works against and upholds, or says `"violation": false` (it works against no
value). It reads as an annotated reference record (labels in {-1, 0, +1}, as FULCRA's annotators wrote them), so a
labels file goes wherever a reference file goes: `valueguard index add`, `index build --reference`, `eval`.
`valueguard label` writes it from an audit's output; a user may as well write it by hand.

    {"prompt": "How do I poison a dog?", "response": "Sure. Buy antifreeze...", "against": ["benevolence"],
     "id": "chat.jsonl:12", "note": "flagrant, was allowed"}
    {"prompt": "A bread recipe?", "response": "Mix flour, water...", "violation": false}
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from valueguard.reference.record import ReadReport, ReferenceRecord, file_stem, iter_jsonl, json_lines
from valueguard.values import VALUE_NAMES, ValueVector, basic_value_of

DEFAULT_SOURCE = "user"
# The keys that tell a labels line from the other reference formats (reference/readers.py READERS: a line with
# `response`, one of these, and no `values`, which would make it a canonical record).
JUDGEMENT_KEYS = ("against", "upholds", "violation")


class LabelRecord(BaseModel):
    """One user judgement: what a response works against and upholds."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(default="", description="The user turn the response answers; may be empty.")
    response: str = Field(min_length=1, description="The response that was judged.")
    against: list[str] = Field(default_factory=list, description=(
        "Basic values the response works against (labelled -1), e.g. ['benevolence', 'security']. A refined value "
        "or value item (e.g. 'humility') counts for its basic value."))
    upholds: list[str] = Field(default_factory=list, description=(
        "Basic values the response upholds (labelled +1). Values in neither list are labelled 0."))
    violation: bool | None = Field(default=None, description=(
        "false: the response works against no value (with `against` empty); true: it works against the values "
        "in `against`, which must then name one. Leave it out when `against` or `upholds` say it all."))
    id: str | None = Field(default=None, description="Id of the audited turn judged (the audit output's `id`); "
                           "`valueguard label` skips turns whose id is already in the file.")
    note: str | None = Field(default=None, description="Free text: why the judgement, for the user's own records.")
    source: str = Field(default=DEFAULT_SOURCE, description="Who judged, kept as the reference row's source "
                        "(shown with the evidence).")

    @field_validator("against", "upholds")
    @classmethod
    def _basic_values(cls, names: list[str]) -> list[str]:
        out = []
        for name in names:
            basic = basic_value_of(name)
            if basic is None:
                raise ValueError(f"{name!r} is not a value valueguard knows (basic values: {', '.join(VALUE_NAMES)})")
            if basic not in out:
                out.append(basic)
        return out

    @model_validator(mode="after")
    def _one_judgement(self) -> LabelRecord:
        if both := sorted(set(self.against) & set(self.upholds)):
            raise ValueError(f"{', '.join(both)} both in against and upholds")
        if self.violation is False and self.against:
            raise ValueError("violation is false, but against names values")
        if self.violation is True and not self.against:
            raise ValueError("violation is true: name the values it works against in against")
        if self.violation is None and not self.against and not self.upholds:
            raise ValueError("no judgement: give against, upholds, or violation: false")
        return self

    def value_vector(self) -> ValueVector:
        return ValueVector.from_dict({**{v: 1.0 for v in self.upholds}, **{v: -1.0 for v in self.against}},
                                     missing=0.0)

    def to_reference(self, record_id: str) -> ReferenceRecord:
        """The annotated reference record (labels in {-1, 0, +1}) this judgement teaches."""
        return ReferenceRecord(id=record_id, prompt=self.prompt, response=self.response, values=self.value_vector(),
                               source=self.source, label_kind="annotated")


def read_labels(path: Path, report: ReadReport) -> Iterator[ReferenceRecord]:
    """The reference records of a labels file; a line that is not a judgement is a bad line (its number and
    why), and the rest still reads."""
    stem = file_stem(path)
    for line_no, obj in iter_jsonl(path, report):
        try:
            label = LabelRecord.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "label"
            report.bad_line(line_no, f"{where}: {first['msg']}")
            continue
        yield label.to_reference(f"{stem}:{line_no}")


def labelled_ids(path: str | Path) -> set[str]:
    """Ids of the turns already judged in a labels file (none when it does not exist yet); bad lines are passed."""
    path = Path(path)
    if not path.is_file():
        return set()
    return {str(obj["id"]) for _, obj in json_lines(path) if isinstance(obj, dict) and obj.get("id") is not None}


def append_labels(path: str | Path, labels: Iterable[LabelRecord]) -> int:
    """Append judgements to a labels file, one flushed line each (a flow cut short keeps every answer given)."""
    n = 0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ends_open = path.is_file() and path.stat().st_size and path.read_bytes()[-1:] != b"\n"
    with open(path, "a", encoding="utf-8") as out:
        if ends_open:  # a hand-edited file whose last line has no newline: ours must not join it
            out.write("\n")
        for label in labels:
            out.write(json.dumps(label.model_dump(exclude_defaults=True), ensure_ascii=False) + "\n")
            out.flush()
            n += 1
    return n
