"""Audit a JSONL file of responses: stream it in batches, estimate each, write one output line per input line.

Input lines are `{"id"?, "prompt"?, "response"}`. Each output line keeps `id` (the line number when absent)
and adds `values` (all 10 names) and `neighbors` (the evidence); this shape is a contract later versions
extend and never break. A line that cannot be read is counted and reported with its number; the run goes on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import structlog

from valueguard.estimator import ValueEstimator

log = structlog.get_logger("valueguard.audit")
MAX_REPORTED = 20


@dataclass(frozen=True)
class AuditItem:
    id: str | int
    prompt: str | None
    response: str


@dataclass
class AuditResult:
    input: str
    output: str
    audited: int = 0
    bad_lines: int = 0
    bad_line_examples: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return vars(self).copy()


def parse_line(line: str, line_no: int) -> AuditItem:
    """One input line -> AuditItem; ValueError with a reason for anything else."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    response, prompt, id_ = obj.get("response"), obj.get("prompt"), obj.get("id", line_no)
    if not isinstance(response, str) or not response.strip():
        raise ValueError("'response' must be a non-empty string")
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError("'prompt' must be a string when given")
    if not isinstance(id_, (str, int)) or isinstance(id_, bool):
        raise ValueError("'id' must be a string or an integer when given")
    return AuditItem(id_, prompt, response)


def read_items(lines: TextIO, result: AuditResult) -> Iterator[AuditItem]:
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield parse_line(line, line_no)
        except ValueError as e:
            result.bad_lines += 1
            if len(result.bad_line_examples) < MAX_REPORTED:
                result.bad_line_examples.append({"line": line_no, "reason": str(e)})
            log.warning("bad input line", line=line_no, reason=str(e))


def run_audit(
    estimator: ValueEstimator,
    input_path: str | Path,
    output_path: str | Path,
    *,
    batch_size: int = 64,
    neighbors: int = 5,
    progress: Callable[[int], None] | None = None,
) -> AuditResult:
    """Memory stays flat: only one batch of responses is held at a time."""
    result = AuditResult(str(input_path), str(output_path))
    with open(input_path, encoding="utf-8", errors="replace") as src, open(output_path, "w", encoding="utf-8") as out:
        batch: list[AuditItem] = []

        def flush() -> None:
            estimates = estimator.estimate_batch([i.response for i in batch], [i.prompt for i in batch])
            for item, est in zip(batch, estimates):
                record = {"id": item.id, "prompt": item.prompt, "response": item.response,
                          **est.to_dict(neighbors=neighbors)}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
            result.audited += len(batch)
            if progress:
                progress(len(batch))
            batch.clear()

        for item in read_items(src, result):
            batch.append(item)
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    log.info("audit finished", audited=result.audited, bad_lines=result.bad_lines)
    return result
