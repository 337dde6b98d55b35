"""The streaming audit: read logs turn by turn, estimate in batches, apply the policy, write one line per turn.

Each output line keeps `id` (the input's, or `file:line[:turn]`; the line number for the plain format) and has
`prompt`, `response`, `source`, `values` (all 10 names), `confidence`, `neighbors` (the evidence), `action` and
`rules`: a contract that later versions extend and never break. Only one batch of turns is held at a time, and
the summary keeps counts, sums and a bounded top-K, so memory stays flat however long the logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from valueguard.audit.records import BadLine, Turn
from valueguard.audit.summary import FLAGGED, SummaryBuilder
from valueguard.estimation.estimate import Estimate
from valueguard.estimation.estimator import ValueEstimator
from valueguard.logs import get_logger
from valueguard.policy.model import Policy
from valueguard.reference.record import MAX_LINE_BYTES

log = get_logger("valueguard.audit")
MAX_REPORTED = 20


@dataclass
class AuditResult:
    """What an audit run did: its inputs and output, how many turns were audited, flagged and unreadable, and the summary."""

    inputs: list[str]
    output: str
    audited: int = 0
    flagged: int = 0
    bad_lines: int = 0
    bad_line_examples: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # the whole run, reading included
    throughput: float = 0.0  # audited responses a second

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if k != "summary"}


def run_audit(
    estimator: ValueEstimator,
    inputs: Sequence[str | Path],
    output_path: str | Path,
    *,
    policy: Policy | None = None,
    format: str = "auto",
    batch_size: int = 64,
    neighbors: int = 5,
    progress: Callable[[int], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> AuditResult:
    """Audit every turn of every input; bad lines are counted, reported and skipped, never fatal.

    The output is written batch by batch, each batch in one write and flushed: a crash or a kill loses at most the
    batch in hand, and what is on disk is whole records (docs/reliability.md)."""
    from valueguard.audit.readers import detect_format, read_log

    start = time.perf_counter()
    result = AuditResult([str(p) for p in inputs], str(output_path))
    summary = SummaryBuilder(policy.name if policy else None, policy.version if policy else None,
                             getattr(policy, "profiles", None))
    batch: list[Turn] = []
    with open(output_path, "w", encoding="utf-8") as out:

        def bad(record: BadLine) -> None:
            summary.add_bad_line(record)
            result.bad_lines += 1
            if len(result.bad_line_examples) < MAX_REPORTED:
                result.bad_line_examples.append(vars(record).copy())
            log.warning("bad input line", path=record.path, line=record.line, reason=record.reason)
            if progress:
                progress(1)

        def flush() -> None:
            lines = []
            for turn, est in zip(batch, estimates(estimator, batch)):
                if isinstance(est, str):
                    bad(BadLine(str(path), 0, est))  # line 0: a turn's line is in its id
                    continue
                line, action, rules = audit_line(turn, est, policy, neighbors)
                lines.append(line)
                summary.add(turn, est, action, rules)
                result.flagged += action in FLAGGED
                result.audited += 1
            out.write("".join(lines))
            out.flush()
            if progress:
                progress(len(batch))
            batch.clear()

        for path in inputs:
            fmt = detect_format(Path(path)) if format == "auto" else format
            summary.start_input(str(path), fmt)
            for record in read_log(Path(path), fmt, max_line_bytes=max_line_bytes):
                if isinstance(record, BadLine):
                    bad(record)
                    continue
                batch.append(record)
                if len(batch) >= batch_size:
                    flush()
            if batch:
                flush()
    result.summary = summary.to_dict()
    result.seconds = round(time.perf_counter() - start, 2)
    result.throughput = round(result.audited / result.seconds, 1) if result.seconds else 0.0
    log.info("audit finished", audited=result.audited, flagged=result.flagged, bad_lines=result.bad_lines)
    return result


def audit_line(turn: Turn, est: Estimate, policy: Policy | None, neighbors: int) -> tuple[str, str, list[str]]:
    """One output line (JSON and its newline) of a turn and its estimate, with the policy's action and rules: what
    every engine writes (the local one here, valueguard/audit/ray_engine.py)."""
    decision = policy.decide(est) if policy else None
    action, rules = (decision.action, decision.rule_ids) if decision else ("allow", [])
    record = {"id": turn.id, "prompt": turn.prompt, "response": turn.response, "source": turn.source,
              **est.to_dict(neighbors=neighbors), "action": action, "rules": rules}
    return json.dumps(record, ensure_ascii=False) + "\n", action, rules


def estimates(estimator: ValueEstimator, batch: Sequence[Turn]) -> list[Estimate | str]:
    """The batch's estimates; when the batch fails, each turn alone, so that one turn that cannot be estimated
    costs only itself (its entry is then the reason, a str)."""
    try:
        return list(estimator.estimate_batch([t.response for t in batch], [t.prompt for t in batch]))
    except Exception:
        pass
    out: list[Estimate | str] = []
    for t in batch:
        try:
            out.append(estimator.estimate(t.response, t.prompt))
        except Exception as e:  # the reason names the error's type only: its message may quote the text
            out.append(f"turn {t.id}: could not be estimated ({type(e).__name__})")
    return out


def count_records(path: str | Path, format: str = "auto", *, max_line_bytes: int = MAX_LINE_BYTES) -> int:
    """Turns plus bad lines in one input: the progress bar's total. A read without estimating is cheap next to
    the estimate itself (one embedding costs what parsing thousands of lines does)."""
    from valueguard.audit.readers import detect_format, read_log

    fmt = detect_format(Path(path)) if format == "auto" else format
    return sum(1 for _ in read_log(Path(path), fmt, max_line_bytes=max_line_bytes))
