"""The `isolated` marker (tests/isolation.py): a native crash in a child fails one test, and the suite goes on."""

import pytest

from tests.conftest import REPO

CRASHING = """
import os, signal
import pytest

@pytest.mark.isolated
def test_native_crash():
    os.kill(os.getpid(), signal.{signal})

@pytest.mark.isolated
def test_isolated_and_fine():
    assert 1 + 1 == 2

@pytest.mark.isolated
def test_isolated_assertion():
    assert 1 + 1 == 3

def test_in_process_after_the_crash():
    assert True
"""


@pytest.mark.parametrize("signal_name", [
    "SIGILL",    # what llama.cpp's AMX kernel raises under a hypervisor that withholds the tile state
    "SIGSEGV",   # any other native crash
])
def test_a_crashing_child_fails_its_test_and_the_rest_still_report(pytester, monkeypatch, signal_name):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the plugin, from this repo, in pytester's own folder
    pytester.makepyfile(test_crash=CRASHING.replace("{signal}", signal_name))
    result = pytester.runpytest_subprocess("-p", "tests.isolation", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(["*_ test_native_crash _*", f"the test's child process died with {signal_name}",
                                 "*_ test_isolated_assertion _*", "*failed in its child process (exit code 1)"])


def test_child_crash_messages_name_the_signal_and_the_rebuild():
    from valueguard.integrations.local_llm import ChildResult, crash_message

    message = crash_message("the local model", ChildResult(-4, "", "loading\nggml_backend_amx_mul_mat"))
    assert "died with SIGILL" in message and "GGML_NATIVE=OFF" in message and "amx_mul_mat" in message
    assert "exit code 2" in crash_message("the local model", ChildResult(2, "", "Traceback"))
