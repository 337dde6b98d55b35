"""/v1/chat/completions with `stream: true`: server-sent events in OpenAI's chunk format, through the core gate.

- hold (default): the upstream's whole stream is read and checked before the proxy sends anything, so the
  verdict is in the headers as well; allowed, the upstream's events go out unchanged; flagged, one stand-in
  chunk with the verdict's text and a `stop`, never an upstream token nor a tool call.
- incremental: valueguard.guard.streaming.StreamGate releases text per checked sentence and holds tool calls to the
  end (see that module for what it can and cannot take back). The verdict comes at the end of the stream.

Either way the last event before `[DONE]` is a chunk with no choices and a `valueguard` object: the summary
of the last verdict. A failure once events have gone out (the upstream breaking off, no check slot) ends the
stream with an error event in OpenAI's shape; what the gate still held is dropped.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.server.checking import State, check, summary
from valueguard.server.completions import ChatRequest, not_a_completion, verdict_headers
from valueguard.server.errors import ApiError
from valueguard.server.limits import Ticket
from valueguard.guard.streaming import Release, StreamGate

DONE = b"data: [DONE]\n\n"
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}  # proxies in between must not buffer


@dataclass(frozen=True)
class Event:
    """One upstream server-sent event: its data as received and the parsed chunk."""

    data: str  # the upstream's event data, sent on unchanged when released
    chunk: dict[str, Any]


def encode(data: str) -> bytes:
    return f"data: {data}\n\n".encode()


def _event(data: str) -> Event | None:
    if data.strip() == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except ValueError:
        raise not_a_completion("a stream event is not JSON") from None
    if not isinstance(chunk, dict):
        raise not_a_completion("a stream event is not a JSON object")
    if "error" in chunk and "choices" not in chunk:
        detail = chunk["error"].get("message") if isinstance(chunk["error"], dict) else chunk["error"]
        raise ApiError(502, f"the upstream's stream ended with an error: {detail}", type="upstream_error",
                       code="upstream_stream_error")
    return Event(data, chunk)


async def upstream_events(response: httpx.Response) -> AsyncIterator[Event]:
    """The upstream's events in order, up to `[DONE]` (SSE: `data:` lines, a blank line ends an event)."""
    lines: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue
        if line == "":
            if lines:
                event = _event("\n".join(lines))
                lines = []
                if event is None:
                    return
                yield event
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines and (event := _event("\n".join(lines))) is not None:
        yield event


def _delta(chunk: dict[str, Any]) -> dict[str, Any]:
    choices = chunk.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        delta = choices[0].get("delta")
        return delta if isinstance(delta, dict) else {}
    return {}


def chunk_text(chunk: dict[str, Any]) -> str:
    content = _delta(chunk).get("content")
    return content if isinstance(content, str) else ""


def chunk_acts(chunk: dict[str, Any]) -> bool:
    delta = _delta(chunk)
    return bool(delta.get("tool_calls") or delta.get("function_call"))


def _base(template: dict[str, Any] | None, model: Any) -> dict[str, Any]:
    template = template or {"id": "chatcmpl-valueguard", "created": int(time.time()), "model": model}
    base: dict[str, Any] = {k: template[k] for k in ("id", "created", "model", "system_fingerprint") if k in template}
    return {"object": "chat.completion.chunk", **base}


def stand_in(template: dict[str, Any] | None, model: Any, text: str, *, first: bool) -> list[str]:
    """The chunks that stand in for a flagged rest of the answer: its text, then a plain `stop`."""
    base = _base(template, model)
    delta = {"role": "assistant", "content": text} if first else {"content": text}
    return [json.dumps({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}),
            json.dumps({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})]


def summary_event(template: dict[str, Any] | None, model: Any, verdict: Verdict) -> str:
    return json.dumps({**_base(template, model), "choices": [], "valueguard": summary(verdict)})


def released(release: Release, template: dict[str, Any] | None, model: Any, *, first: bool) -> list[str]:
    if release.replacement is None:
        return [event.data for event in release.chunks]
    return stand_in(template, model, release.replacement, first=first)


def _gate(guard: ValueGuard, mode: str) -> StreamGate:
    return StreamGate(mode, block_message=guard.policy.defaults.block_message)  # type: ignore[arg-type]


async def stream_hold(state: State, guard: ValueGuard, request: ChatRequest,
                      upstream: httpx.Response) -> tuple[StreamingResponse, Verdict]:
    gate, template = _gate(guard, "hold"), None
    try:
        async for event in upstream_events(upstream):
            template = template or event.chunk
            gate.push(event, chunk_text(event.chunk), acts=chunk_acts(event.chunk))
    except httpx.HTTPError as e:
        raise state.upstream.failure(e) from None
    finally:
        await upstream.aclose()
    verdict = await check(state, guard, gate.finish(), request.prompt, state.upstream.rewriter(request.model))
    out = released(gate.decide(verdict), template, request.model, first=True)
    out.append(summary_event(template, request.model, verdict))
    body = [encode(data) for data in out] + [DONE]
    return StreamingResponse(_each(body), media_type="text/event-stream",
                             headers={**SSE_HEADERS, **verdict_headers(verdict)}), verdict


async def _each(pieces: list[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def stream_incremental(state: State, guard: ValueGuard, request: ChatRequest, upstream: httpx.Response,
                       ticket: Ticket) -> StreamingResponse:
    """`ticket`: the request's place in the proxy, released when the stream ends (or the client goes)."""
    rewriter = state.upstream.rewriter(request.model)

    async def body() -> AsyncIterator[bytes]:
        gate, template, verdict, sent = _gate(guard, "incremental"), None, None, False
        try:
            try:
                async for event in upstream_events(upstream):
                    template = template or event.chunk
                    window = gate.push(event, chunk_text(event.chunk), acts=chunk_acts(event.chunk))
                    if window is None:
                        continue
                    verdict = await check(state, guard, window, request.prompt, rewriter)
                    release = gate.decide(verdict)
                    for data in released(release, template, request.model, first=not sent):
                        yield encode(data)
                    sent = sent or bool(release.chunks)
                    if release.done:
                        break
                else:
                    verdict = await check(state, guard, gate.finish(), request.prompt, rewriter)
                    for data in released(gate.decide(verdict), template, request.model, first=not sent):
                        yield encode(data)
            except httpx.HTTPError as e:
                yield encode(json.dumps(state.upstream.failure(e).body()))
                return
            except ApiError as e:
                state.metrics.errors.labels(e.code or "error").inc()
                yield encode(json.dumps(e.body()))
                return
            yield encode(summary_event(template, request.model, verdict))
            yield DONE
        finally:
            ticket.release()
            await upstream.aclose()  # stops the upstream when a check flagged or the client went away

    async def after() -> None:  # the body may never have started: the client went away first
        ticket.release()
        await upstream.aclose()

    return StreamingResponse(body(), media_type="text/event-stream", background=BackgroundTask(after),
                             headers={**SSE_HEADERS, "x-valueguard-stream": "incremental"})
