"""/v1/chat/completions: the request as the proxy reads it, and the answer without streaming.

The request is forwarded byte for byte; the proxy reads it only to find the prompt (the last user message) and
whether it streams. The answer comes back as the upstream sent it, with three changes: the content replaced on
block or rewrite (and then no tool call: a revision is text, and a blocked turn must not act), a `valueguard`
object with the verdict's summary, and the `x-valueguard-action` and `x-valueguard-decision-id` headers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.responses import JSONResponse, Response

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.server.checking import State, check, flagged, summary
from valueguard.server.errors import ApiError, bad_request

CALL_FIELDS = ("tool_calls", "function_call")


@dataclass(frozen=True)
class ChatRequest:
    """A parsed chat completion request: the body sent upstream unchanged, the prompt checked, streaming or not."""

    body: bytes  # what goes upstream, unchanged
    prompt: str | None  # the last user message's text
    stream: bool
    model: Any


def parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError:  # UnicodeDecodeError included
        raise bad_request("the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("the request body is a JSON object")
    return data


def parse_chat_request(body: bytes) -> ChatRequest:
    data = parse_json_object(body)
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("`messages` is a non-empty list of messages", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise bad_request(f"messages[{i}] is an object with a `role`", param=f"messages[{i}]")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise bad_request("`stream` is true or false", param="stream")
    n = data.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise bad_request("the guard checks one choice per answer: `n` must be 1", param="n")
    return ChatRequest(body, last_user_text(messages), stream, data.get("model"))


def last_user_text(messages: list[dict[str, Any]]) -> str | None:
    for message in reversed(messages):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return None


def content_text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "\n".join(p for p in parts if isinstance(p, str))
    return None


def passthrough(upstream: httpx.Response) -> Response:
    """An upstream error as it came: its status, its body, its content type."""
    return Response(upstream.content, status_code=upstream.status_code,
                    media_type=upstream.headers.get("content-type", "application/json"))


def verdict_headers(verdict: Verdict) -> dict[str, str]:
    return {"x-valueguard-action": verdict.action, "x-valueguard-decision-id": verdict.decision_id}


def not_a_completion(what: str) -> ApiError:
    return ApiError(502, f"the upstream's answer is not a chat completion ({what})", type="upstream_error",
                    code="upstream_invalid_response")


async def complete(state: State, guard: ValueGuard, request: ChatRequest,
                   incoming: Any) -> tuple[Response, Verdict | None]:
    with state.tracing.span("valueguard.upstream", stream=False):
        upstream = await state.upstream.post(request.body, incoming)
    if upstream.status_code != 200:
        state.metrics.errors.labels("upstream_status").inc()
        return passthrough(upstream), None
    try:
        answer = upstream.json()
    except ValueError:
        raise not_a_completion("not JSON") from None
    choices = answer.get("choices") if isinstance(answer, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
            or not isinstance(choices[0].get("message"), dict):
        raise not_a_completion("no choices[0].message")
    choice = choices[0]
    message = choice["message"]
    verdict = await check(state, guard, content_text(message.get("content")) or "", request.prompt,
                          state.upstream.rewriter(request.model))
    if flagged(verdict):
        message["content"] = verdict.text
        for name in CALL_FIELDS:
            message.pop(name, None)
        if choice.get("finish_reason") in CALL_FIELDS:
            choice["finish_reason"] = "stop"
    answer["valueguard"] = summary(verdict)
    return JSONResponse(answer, headers=verdict_headers(verdict)), verdict
