"""pytest plugin: a test marked `isolated` runs in a child pytest process, so a native crash fails that test alone.

llama.cpp (the local SmolLM2 model) is native code: a SIGILL or SIGSEGV in it ends the whole process, and a suite
run in-process would stop with 0 results. In a child, the crash is a failed test that names the signal, and every
other test still reports. The child is a fresh interpreter (never a fork: torch's OpenMP threads do not survive
one), so it sets up its own fixtures.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from _pytest.reports import TestReport

CHILD_ENV = "VALUEGUARD_ISOLATED_CHILD"
TIMEOUT_S = 900


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "isolated: run this test in a child process (native code that may crash)")


def _outcome(returncode: int, output: str) -> tuple[str, str | None]:
    if returncode == 0:
        return "passed", None
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return "failed", f"the test's child process died with {name}\n\n{output[-4000:]}"
    return "failed", f"the test failed in its child process (exit code {returncode})\n\n{output[-8000:]}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
    if os.environ.get(CHILD_ENV) or item.get_closest_marker("isolated") is None:
        return None  # runs here as usual (in the child, or an ordinary test)
    ihook = item.ihook
    ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "pytest", item.nodeid, "-q", "-p", "no:cacheprovider", "--rootdir",
           str(item.config.rootpath), "-o", "addopts="]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, cwd=item.config.rootpath,
                              env={**os.environ, CHILD_ENV: "1"})
        outcome, longrepr = _outcome(proc.returncode, proc.stdout + proc.stderr)
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        outcome, longrepr, output = "failed", f"the test's child process ran past {TIMEOUT_S} s", str(e.stdout or "")
    duration = time.perf_counter() - start
    for when in ("setup", "call", "teardown"):
        report = TestReport(item.nodeid, item.location, {k: 1 for k in item.keywords},
                            outcome if when == "call" else "passed", longrepr if when == "call" else None, when,
                            sections=[("child process output", output)] if when == "call" else [],
                            duration=duration if when == "call" else 0.0)
        ihook.pytest_runtest_logreport(report=report)
    # Nothing was set up here, but the nodes an earlier item left for this one (its module, say) must go
    # unless the next item shares them, as pytest's own teardown would do.
    item.session._setupstate.teardown_exact(nextitem)
    ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
    return True
