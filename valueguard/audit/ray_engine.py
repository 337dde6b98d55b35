"""The audit on Ray Data (`valueguard audit --engine ray`, docs/scale.md): the same records as the local engine, from
a pool of actors that each load the model, the index and the policy once.

The driver reads every input through the same readers as the local engine (valueguard/audit/readers.py), so bad
lines are found, numbered and reported by the same code, on the driver, and never reach a worker. The turns go to
Ray Data as rows (seq, input, id as JSON, prompt, response, source); `map_batches` runs `AuditActor` over them on an
actor pool of `workers` actors; each batch comes back as its output lines plus a partial summary (SummaryBuilder
state as JSON), and the driver writes the lines in input order (Ray Data's `preserve_order`) and merges the
partials, which merge associatively into the local engine's summary (tie-breaks use each turn's place, `seq`).

The driver holds the turns' texts (not their estimates) between reading and writing; a log larger than the driver's
memory is audited as several runs (one per file or range of files), whose summaries merge the same way.
Ray is imported here only, lazily: the core never needs it (pip install 'valueguard[ray]').
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from valueguard.audit.records import BadLine, Turn
from valueguard.audit.runner import MAX_REPORTED, AuditResult, audit_line, estimates
from valueguard.audit.summary import FLAGGED, MAX_BAD_LINE_EXAMPLES, SummaryBuilder
from valueguard.logs import get_logger
from valueguard.reference.record import MAX_LINE_BYTES

log = get_logger("valueguard.audit")
# The environment an actor needs to embed as the driver does (backend, data and model folders).
FORWARDED_ENV = ("VALUEGUARD_BACKEND", "VALUEGUARD_DATA_DIR", "VALUEGUARD_MODELS_DIR", "TRANSFORMERS_VERBOSITY",
                 "HF_HUB_OFFLINE")


def import_ray() -> Any:
    """The ray module, or a clear error saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra installs ray[data])
    except ImportError:
        raise RuntimeError("the ray engine needs Ray Data: pip install 'valueguard[ray]'") from None
    return ray


class AuditActor:
    """One Ray actor: the estimator (model and index) and the policy, loaded once; audits batches of turns."""

    def __init__(self, index_dir: str, policy: str, neighbors: int, inputs: list[tuple[str, str]]) -> None:
        from valueguard.estimation.estimator import ValueEstimator
        from valueguard.policy.model import Policy

        self.estimator = ValueEstimator.from_index(index_dir)
        self.policy = Policy.load(policy)
        self.neighbors, self.inputs = neighbors, inputs

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        turns = [Turn(json.loads(i), p, r, s) for i, p, r, s in
                 zip(batch["id"], batch["prompt"], batch["response"], batch["source"])]
        partial = SummaryBuilder(self.policy.name, self.policy.version, getattr(self.policy, "profiles", None))
        for path, fmt in self.inputs:
            partial.start_input(path, fmt)
        lines: list[str] = []
        bad: list[str] = []
        flagged: list[bool] = []
        for turn, est, seq, input_no in zip(turns, estimates(self.estimator, turns), batch["seq"], batch["input"]):
            if isinstance(est, str):  # a turn that could not be estimated: a bad line, reported by the driver
                lines.append("")
                bad.append(est)
                flagged.append(False)
                continue
            line, action, rules = audit_line(turn, est, self.policy, self.neighbors)
            partial.add(turn, est, action, rules, seq=int(seq), input_no=int(input_no))
            lines.append(line)
            bad.append("")
            flagged.append(action in FLAGGED)
        states = [json.dumps(partial.state())] + [""] * (len(turns) - 1)
        return {"seq": list(batch["seq"]), "line": lines, "bad": bad, "flagged": flagged, "partial": states}


def _init_ray(ray: Any, address: str | None, workers: int) -> bool:
    """Join `address`, or start a local Ray of `workers` CPUs (loopback only); True when this call started it."""
    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    # The actors import valueguard from wherever the driver does (a source checkout as well as an install).
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
    kwargs: dict[str, Any] = {"runtime_env": {"env_vars": env}, "log_to_driver": False}
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1", **kwargs)
    return True


def run_audit_ray(index_dir: str | Path, inputs: Sequence[str | Path], output_path: str | Path, *,
                  policy: str = "default", format: str = "auto", batch_size: int = 64, neighbors: int = 5,
                  workers: int = 2, address: str | None = None, progress: bool = False,
                  max_line_bytes: int = MAX_LINE_BYTES,
                  on_bad_line: Callable[[BadLine], None] | None = None) -> AuditResult:
    """`run_audit`'s records, summary and result, computed on Ray Data by `workers` actors (a local Ray unless
    `address` names a cluster; a Ray already initialised by the caller is used as it is)."""
    from valueguard.audit.readers import detect_format, read_log
    from valueguard.policy.model import Policy

    ray = import_ray()
    start = time.perf_counter()
    pol = Policy.load(policy)
    result = AuditResult([str(p) for p in inputs], str(output_path))
    summary = SummaryBuilder(pol.name, pol.version, getattr(pol, "profiles", None))

    def bad(record: BadLine, input_no: int) -> None:
        summary.bad_lines += 1
        summary.inputs[input_no]["bad_lines"] += 1
        if len(summary.bad_line_examples) < MAX_BAD_LINE_EXAMPLES:
            summary.bad_line_examples.append(vars(record).copy())
        result.bad_lines += 1
        if len(result.bad_line_examples) < MAX_REPORTED:
            result.bad_line_examples.append(vars(record).copy())
        if on_bad_line:
            on_bad_line(record)

    rows: list[dict[str, Any]] = []
    formats = []
    for n, path in enumerate(inputs):
        fmt = detect_format(Path(path)) if format == "auto" else format
        formats.append((str(path), fmt))
        summary.start_input(str(path), fmt)
        for record in read_log(Path(path), fmt, max_line_bytes=max_line_bytes):
            if isinstance(record, BadLine):
                bad(record, n)
                continue
            rows.append({"seq": len(rows), "input": n, "id": json.dumps(record.id), "prompt": record.prompt,
                         "response": record.response, "source": record.source})
    read_seconds = time.perf_counter() - start

    started = _init_ray(ray, address, workers)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        ctx.enable_progress_bars = progress
        with open(output_path, "w", encoding="utf-8") as out:
            if rows:
                ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // batch_size, 200)))
                audited = ds.map_batches(
                    AuditActor, batch_size=batch_size, batch_format="numpy", concurrency=workers, num_cpus=1,
                    fn_constructor_kwargs={"index_dir": str(index_dir), "policy": policy, "neighbors": neighbors,
                                           "inputs": formats})
                expected = 0
                for batch in audited.iter_batches(batch_size=None, batch_format="numpy"):
                    for seq, line, why, flagged, state in zip(batch["seq"], batch["line"], batch["bad"],
                                                              batch["flagged"], batch["partial"]):
                        if int(seq) != expected:
                            raise RuntimeError(f"the ray engine lost the input order at turn {expected}")
                        expected += 1
                        if state:
                            summary.merge(SummaryBuilder.from_state(json.loads(state)))
                        if why:
                            bad(BadLine(formats[rows[int(seq)]["input"]][0], 0, str(why)),
                                rows[int(seq)]["input"])
                            continue
                        out.write(str(line))
                        result.audited += 1
                        result.flagged += bool(flagged)
                    out.flush()
    finally:
        if started:
            ray.shutdown()
    result.summary = summary.to_dict()
    seconds = time.perf_counter() - start
    result.seconds = round(seconds, 2)
    result.throughput = round(result.audited / seconds, 1) if seconds else 0.0
    log.info("audit finished", engine="ray", workers=workers, audited=result.audited, flagged=result.flagged,
             bad_lines=result.bad_lines, read_seconds=round(read_seconds, 2), seconds=round(seconds, 2))
    return result
