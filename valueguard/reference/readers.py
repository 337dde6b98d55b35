"""Readers: a path in, reference records out, every problem counted in a ReadReport (never dropped silently).

Four formats, told apart by the keys of a file's first JSON object:
- FULCRA annotated pairs: `dialogue` ("Human: ...\\nBob: ...") and `value_types` (["security: -1", ...]);
- FULCRA evaluator-scored responses: `prompt`, `answer`, `value_reward` (10 floats in the basic-value order);
- canonical: the fields of `ReferenceRecord`;
- labels: a user's judgements, `response` and `against` / `upholds` / `violation` (reference/labels.py).

The scored reader reads the refusals the evaluator scored as violations as violating nothing (reference/hygiene.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from valueguard.reference.formats import Format, FormatTable, keys
from valueguard.reference.hygiene import relabelled_refusal
from valueguard.reference.labels import JUDGEMENT_KEYS, read_labels
from valueguard.reference.record import ReadReport, ReferenceRecord, file_stem, iter_jsonl, json_lines
from valueguard.values import N_VALUES, VALUE_NAMES, ValueVector, basic_value_of

Reader = Callable[[Path, ReadReport], Iterator[ReferenceRecord]]

_LABEL = re.compile(r"^\s*(?P<name>[^:]+?)\s*:\s*(?P<score>.*?)\s*$")
# The annotators wrote the sign of a label in several ways; all of these mean the same thing.
_SCORES = {"+1": 1, "1": 1, "1+": 1, "=1": 1, "+ 1": 1, "-1": -1, "1-": -1, "- 1": -1, "−1": -1, "0": 0}


def parse_label(label: str) -> tuple[str, int] | None:
    """'conformity: 1+' -> ('conformity', 1); 'humility: +1' -> ('conformity', 1); None if not understood."""
    m = _LABEL.match(label)
    if not m:
        return None
    basic = basic_value_of(m.group("name"))
    score = _SCORES.get(m.group("score"))
    if basic is None or score is None:
        return None
    return basic, score


def read_annotated(path: Path, report: ReadReport) -> Iterator[ReferenceRecord]:
    stem = file_stem(path)
    for line_no, obj in iter_jsonl(path, report):
        dialogue, labels = obj.get("dialogue"), obj.get("value_types")
        if not isinstance(dialogue, str) or not isinstance(labels, list):
            report.bad_line(line_no, "needs 'dialogue' (string) and 'value_types' (list)")
            continue
        prompt, sep, response = dialogue.partition("\nBob:")
        if not sep:
            report.bad_line(line_no, "dialogue has no '\\nBob:' turn")
            continue
        prompt = prompt.removeprefix("Human:").strip()
        scores: dict[str, int] = {}
        for label in labels:
            report.label_spellings[str(label)] += 1
            parsed = parse_label(str(label))
            if parsed is None:
                report.unparsed_label(line_no, str(label))
                continue
            name, score = parsed
            # Some rows list a value both ways ("benevolence: -1", "benevolence: +1": honest but
            # irresponsible). The response works against the value in one respect, and a guard that missed
            # that would miss a violation, so the negative sign wins; the row is counted as a conflict.
            if scores.get(name, score) != score:
                report.conflict(line_no, f"{name}: {scores[name]:+d} and {score:+d}")
                scores[name] = min(scores[name], score)
            else:
                scores[name] = score
        yield ReferenceRecord(
            id=f"{stem}:{line_no}",
            prompt=prompt,
            response=response.strip(),
            values=ValueVector.from_dict(scores, missing=0.0),
            source=str(obj.get("response_source") or stem),
            label_kind="annotated",
        )


def scored_source(path: Path) -> str:
    """harmless_test_openai_gpt-4.dev.jsonl -> openai_gpt-4: the file name is the only place the model is named."""
    return re.sub(r"^harmless_test_", "", file_stem(path)).removesuffix(".dev")


def read_scored(path: Path, report: ReadReport) -> Iterator[ReferenceRecord]:
    stem = file_stem(path)
    source = scored_source(path)
    for line_no, obj in iter_jsonl(path, report):
        prompt, answer, scores = obj.get("prompt"), obj.get("answer"), obj.get("value_reward")
        if not isinstance(answer, str) or not isinstance(scores, list) or len(scores) != N_VALUES:
            report.bad_line(line_no, f"needs 'answer' (string) and 'value_reward' ({N_VALUES} numbers)")
            continue
        try:
            values = ValueVector(scores)
        except (ValueError, TypeError) as e:
            report.bad_line(line_no, f"value_reward: {e}")
            continue
        if (relabelled := relabelled_refusal(answer, values)) is not None:
            report.relabelled_refusal(line_no)
            values = relabelled
        yield ReferenceRecord(
            id=f"{stem}:{line_no}",
            prompt=str(prompt or ""),
            response=answer,
            values=values,
            source=source,
            label_kind="model",
        )


def read_canonical(path: Path, report: ReadReport) -> Iterator[ReferenceRecord]:
    for line_no, obj in iter_jsonl(path, report):
        try:
            yield ReferenceRecord.model_validate(obj)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "record"
            report.bad_line(line_no, f"{where}: {first['msg']}")


READERS: FormatTable[Reader] = FormatTable([
    Format("annotated", keys("dialogue", "value_types"), read_annotated),
    Format("scored", keys("answer", "value_reward"), read_scored),
    Format("canonical", keys("response", "values"), read_canonical),
    # After canonical: a line with `values` is a record; one with a judgement key and no `values` is a label.
    Format("labels", keys("response"), read_labels, any_of=keys(*JUDGEMENT_KEYS)),
])


def detect_format(obj: dict[str, Any]) -> str | None:
    """The reference format a JSON object's keys say, or None."""
    return READERS.detect(obj)


def sniff_format(path: Path) -> str:
    # By the first JSON object line (json_lines: a BOM, a bad byte or a too-deep line cannot stop it).
    for seen, (_, obj) in enumerate(json_lines(path)):
        if isinstance(obj, str):
            if seen >= 100:  # a file that is not JSONL at all is refused without being read to the end
                break
            continue
        if fmt := detect_format(obj):
            return fmt
        break
    raise ValueError(
        f"{path}: not a reference file valueguard knows: expected FULCRA annotated pairs "
        f"(dialogue, value_types), FULCRA evaluator scores (prompt, answer, value_reward) or canonical "
        f"records (id, prompt, response, values, source, label_kind; values over {', '.join(VALUE_NAMES)}) or "
        f"a labels file (prompt, response, against / upholds / violation: docs/teach.md)"
    )


def read_reference(path: str | Path, report: ReadReport | None = None, format: str = "auto") -> Iterator[ReferenceRecord]:
    """Yield the records of one reference file; problems go into `report` (pass one to see them)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reference file not found: {path}")
    fmt = sniff_format(path) if format == "auto" else format
    if fmt not in READERS:
        raise ValueError(f"unknown reference format {fmt!r}; known: auto, {', '.join(READERS)}")
    report = report if report is not None else ReadReport(str(path))
    report.format = fmt
    for rec in READERS[fmt](path, report):
        report.records += 1
        yield rec
