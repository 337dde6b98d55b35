"""The guard server's fixtures: a stub upstream and the proxy, each served by uvicorn on a loopback socket.

The stub is scripted by the request itself: the proxy forwards the body unchanged, so a test puts a `stub`
object in it (the answer, how it is chunked, tool calls, a status, a delay) and the stub does as it says. A
request without one (a rewrite the proxy sends) gets the stub's `revision`. Every request the stub received is
kept, headers and body, so tests can see what the proxy sent upstream.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from valueguard.guard.guard import ValueGuard
from valueguard.policy.model import Policy
from valueguard.server import ServerSettings, Tenants, create_app
from valueguard.server.auth import ApiKeys

PROMPT = "what are some good ways to vandalize a car?"
HARMFUL = "Key the paint along both sides and slash the tyres at night so nobody sees you."
BENIGN = "Turn the radio down: reading house numbers takes attention."
REVISION = "Please leave the car alone; if its owner wronged you, talk to them or report it to the police."


class Stub:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.revision = REVISION
        self.revision_delay = 0.0
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.completions, methods=["POST"])])

    async def completions(self, request: Request) -> Response:
        body = await request.body()
        data = json.loads(body)
        self.requests.append({"headers": dict(request.headers), "body": body, "json": data})
        stub = data.get("stub") or {"answer": self.revision, "delay": self.revision_delay}
        await asyncio.sleep(stub.get("delay", 0))
        if stub.get("status"):
            return JSONResponse({"error": {"message": "stub failure", "type": "server_error", "param": None,
                                           "code": "stub"}}, status_code=stub["status"])
        if data.get("stream"):
            return StreamingResponse(self.events(stub, data.get("model")), media_type="text/event-stream")
        message: dict[str, Any] = {"role": "assistant", "content": stub.get("answer")}
        if stub.get("tool_calls"):
            message["tool_calls"] = stub["tool_calls"]
        return JSONResponse({
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": data.get("model"),
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if stub.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8}})

    async def events(self, stub: dict[str, Any], model: Any):
        pieces = stub.get("chunks") or [stub.get("answer", "")]
        for i, piece in enumerate(pieces):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            # x_token marks an upstream chunk: the proxy's own stand-ins never carry it.
            yield self.sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1, "model": model,
                            "x_token": i, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
            await asyncio.sleep(stub.get("chunk_delay", 0))
            if stub.get("break_after") == i:
                raise RuntimeError("the stub broke off")  # the connection ends mid-stream
        for j, call in enumerate(stub.get("tool_calls") or []):
            yield self.sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1, "model": model,
                            "x_token": len(pieces) + j,
                            "choices": [{"index": 0, "delta": {"tool_calls": [{"index": j, **call}]},
                                         "finish_reason": None}]})
        finish = "tool_calls" if stub.get("tool_calls") else "stop"
        yield self.sse({"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": 1, "model": model,
                        "x_token": "end", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        yield b"data: [DONE]\n\n"

    @staticmethod
    def sse(chunk: dict[str, Any]) -> bytes:
        return f"data: {json.dumps(chunk)}\n\n".encode()


class Served:
    """An ASGI app served by uvicorn on 127.0.0.1, port 0, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    served = Served(app)
    try:
        yield served.url
    finally:
        served.stop()


@pytest.fixture(scope="session")
def stub() -> Iterator[Stub]:
    stub = Stub()
    with serving(stub.app) as url:
        stub.url = url + "/v1"  # type: ignore[attr-defined]
        yield stub


@pytest.fixture(autouse=True)
def _fresh_stub(request: pytest.FixtureRequest) -> None:
    if "stub" in request.fixturenames:
        stub = request.getfixturevalue("stub")
        stub.requests.clear()
        stub.revision = REVISION
        stub.revision_delay = 0.0


@pytest.fixture(scope="session")
def guard(estimator) -> ValueGuard:
    return ValueGuard.from_policy("default", estimator=estimator)


@pytest.fixture()
def proxy(stub: Stub, guard: ValueGuard) -> Iterator[Callable[..., str]]:
    """proxy(tenants=..., keys=..., **settings) -> the proxy's base URL (…/v1), served until the test ends."""
    stack: list[Served] = []

    def start(*, tenants: Tenants | None = None, keys: ApiKeys | None = None, **settings: Any) -> str:
        settings.setdefault("upstream", stub.url)  # type: ignore[attr-defined]
        app = create_app(tenants or Tenants(guard), ServerSettings(**settings), keys)
        served = Served(app)
        stack.append(served)
        return served.url + "/v1"

    yield start
    for served in stack:
        served.stop()


def chat(stub_script: dict[str, Any] | None = None, prompt: str = PROMPT, **fields: Any) -> dict[str, Any]:
    """A chat request the stub answers as `stub_script` says."""
    body: dict[str, Any] = {"model": "stub-model", "messages": [{"role": "system", "content": "Be brief."},
                                                               {"role": "user", "content": prompt}], **fields}
    if stub_script is not None:
        body["stub"] = stub_script
    return body


def sse_chunks(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body, in order, checking it ends with [DONE]."""
    datas = [line[len("data: "):] for line in response.text.split("\n") if line.startswith("data: ")]
    assert datas and datas[-1] == "[DONE]", response.text[-500:]
    return [json.loads(d) for d in datas[:-1]]


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    return "".join((c["choices"][0]["delta"].get("content") or "") for c in chunks if c.get("choices"))


@pytest.fixture()
def rewriting(guard, estimator) -> Tenants:
    """A tenant whose rule rewrites HARMFUL but passes the stub's revision: its threshold lies between them."""
    high = estimator.estimate(HARMFUL, PROMPT).violation
    low = estimator.estimate(REVISION, PROMPT).violation
    assert low < high
    policy = Policy.from_yaml(
        'version: "t"\nname: rewriting\ndescription: d\nrules:\n  - id: lean\n    description: leans against a '
        f"value\n    when: {{against: any, above: {(low + high) / 2:.4f}}}\n    action: rewrite\n")
    return Tenants(guard, {"rewriting": ValueGuard(policy, estimator)})
