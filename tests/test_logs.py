"""The library prints nothing; an application that turns logging on sees every event, with its fields."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from valueguard.guard.guard import ValueGuard
from valueguard.logs import get_logger
from valueguard.policy.model import Policy

REPO = Path(__file__).resolve().parents[1]
CHECK = """
import json, logging, sys
{setup}
from valueguard.estimation.estimator import ValueEstimator
from valueguard.guard.guard import ValueGuard
from valueguard.policy.model import Policy
guard = ValueGuard(Policy.load("default"), ValueEstimator.from_index(sys.argv[1]))
verdict = guard.check("Here is a recipe for pancakes.")
guard.check("")
"""


def run_check(index_dir: Path, setup: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
    return subprocess.run([sys.executable, "-c", CHECK.format(setup=setup), str(index_dir)], capture_output=True,
                          text=True, env=env, timeout=300, check=True)


def test_a_check_in_a_fresh_process_prints_nothing(index_dir):
    done = run_check(index_dir)
    assert (done.stdout, done.stderr) == ("", "")


def test_an_application_with_basic_config_sees_the_events(index_dir):
    done = run_check(index_dir, "logging.basicConfig(level=logging.INFO, format='%(name)s|%(message)s')")
    lines = [line for line in done.stderr.splitlines() if line.startswith("valueguard.")]
    assert len(lines) == 2 and done.stdout == ""
    assert lines[0].startswith("valueguard.guard|response checked decision_id=")
    assert " action=" in lines[0] and " policy=default " in lines[0]
    assert "reason='empty response'" in lines[1]


def test_a_record_carries_the_event_and_its_fields(estimator, caplog):
    structlog.reset_defaults()  # an application that never configured structlog
    with caplog.at_level(logging.INFO, logger="valueguard"):
        ValueGuard(Policy.load("default"), estimator).check("")
    (record,) = [r for r in caplog.records if r.name == "valueguard.guard"]
    assert record.valueguard["event"] == "response checked" and record.valueguard["reason"] == "empty response"
    json.dumps(record.valueguard)  # plain data: any handler can serialize it


def test_capture_logs_still_sees_the_events(estimator):
    with capture_logs() as logs:
        ValueGuard(Policy.load("default"), estimator).check("")
    assert [(e["event"], e["log_level"], e["reason"]) for e in logs] == [("response checked", "info", "empty response")]


def test_loggers_live_under_valueguard():
    with pytest.raises(ValueError, match="under 'valueguard'"):
        get_logger("somewhere.else")
