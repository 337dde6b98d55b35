"""The Starlette app: /v1/chat/completions, /v1/check, /healthz and /metrics (docs/server.md).

Every request goes through one wrapper: the API key (when keys are set), admission, the body's limits, the
tenant's policy, then the endpoint; whatever fails is answered in OpenAI's error shape, never a traceback, and
one "request served" event is logged with the status and the decision (never a key, never text).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.server.auth import ApiKey, ApiKeys
from valueguard.server.checking import State, check, log
from valueguard.server.completions import complete, parse_chat_request, parse_json_object, passthrough, verdict_headers
from valueguard.server.config import POLICY_HEADER, ServerSettings, Tenants, UnknownPolicy
from valueguard.server.errors import ApiError, bad_request, error_body
from valueguard.server.limits import Limiter, Ticket, read_body
from valueguard.server.metrics import Metrics, Tracing
from valueguard.server.sse import stream_hold, stream_incremental
from valueguard.server.upstream import Upstream

Handler = Callable[[State, Request, Ticket], Awaitable[tuple[Response, Verdict | None]]]
CHECK_FIELDS = ("response", "prompt", "model")


def create_app(tenants: Tenants, settings: ServerSettings, keys: ApiKeys | None = None, *,
               warm_up: bool = True) -> Starlette:
    """`tenants`: the guards (ValueGuard.from_policy(...) for one policy: Tenants(guard)); `keys`: None or no
    keys leaves every endpoint open (bind to loopback then). `warm_up`: one check at start, so /healthz says
    ok only once the model and index have answered."""
    metrics = Metrics()
    state = State(settings=settings, tenants=tenants, keys=keys or ApiKeys([]),
                  limiter=Limiter(max_pending=settings.max_pending,
                                  max_concurrent_checks=settings.max_concurrent_checks,
                                  queue_timeout_s=settings.queue_timeout_s, retry_after_s=settings.retry_after_s),
                  metrics=metrics, tracing=Tracing(),
                  upstream=Upstream(settings.upstream, key=settings.upstream_key,
                                    timeout_s=settings.upstream_timeout_s, metrics=metrics,
                                    max_connections=settings.max_pending))
    ready = asyncio.Event()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette):
        if warm_up:
            await asyncio.to_thread(tenants.estimator.estimate, "The guard is starting.")
        ready.set()
        try:
            yield
        finally:
            await state.upstream.aclose()

    async def healthz(request: Request) -> Response:
        if not ready.is_set():
            return JSONResponse({"status": "starting"}, status_code=503)
        index = tenants.estimator.index
        return JSONResponse({"status": "ok", "index": {"version": index.version, "rows": len(index),
                                                       "model": index.model},
                             "policy": tenants.default.policy.name, "tenants": tenants.names()})

    async def metrics_endpoint(request: Request) -> Response:
        try:
            state.keys.authorize(request.headers.get("authorization"))
        except ApiError as e:
            return e.response()
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        return JSONResponse(error_body(f"{request.method} {request.url.path}: {getattr(exc, 'detail', 'error')}",
                                       "invalid_request_error", code=f"http_{status}"), status_code=status)

    routes = [
        Route("/v1/chat/completions", endpoint(state, "chat.completions", chat_completions), methods=["POST"]),
        Route("/v1/check", endpoint(state, "check", check_endpoint), methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: not_found})
    app.state.valueguard = state
    return app


def endpoint(state: State, name: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def handle(request: Request) -> Response:
        start, verdict, ticket, response = time.perf_counter(), None, None, None
        try:
            key = state.keys.authorize(request.headers.get("authorization"))
            ticket = state.limiter.admit()
            request.state.key = key
            response, verdict = await handler(state, request, ticket)
        except ApiError as e:
            state.metrics.errors.labels(e.code or e.type).inc()
            response = e.response()
        except Exception as e:  # a bug must still answer in OpenAI's shape, and say nothing of its insides
            state.metrics.errors.labels("internal_error").inc()
            log.error("request failed", endpoint=name, error=type(e).__name__)
            response = ApiError(500, "the guard failed on this request", type="server_error",
                                code="internal_error").response()
        finally:
            if ticket is not None and (response is None or response.background is None):  # a stream: its own
                ticket.release()
        fields: dict[str, Any] = dict(endpoint=name, status=response.status_code,
                                      latency_ms=round((time.perf_counter() - start) * 1000, 2))
        if verdict is not None:
            fields.update(decision_id=verdict.decision_id, action=verdict.action, policy=verdict.policy)
        log.info("request served", **fields)
        return response

    return handle


def guard_for(state: State, request: Request) -> ValueGuard:
    key: ApiKey | None = request.state.key
    try:
        return state.tenants.resolve(request.headers.get(POLICY_HEADER), key.policy if key else None)
    except UnknownPolicy as e:
        raise bad_request(str(e), param=POLICY_HEADER, code="unknown_policy") from None


async def _body(state: State, request: Request) -> bytes:
    return await read_body(request, state.settings.max_body_bytes, state.settings.body_timeout_s)


async def chat_completions(state: State, request: Request, ticket: Ticket) -> tuple[Response, Verdict | None]:
    guard = guard_for(state, request)
    chat = parse_chat_request(await _body(state, request))
    with state.tracing.span("valueguard.request", stream=chat.stream, policy=guard.policy.name):
        if not chat.stream:
            return await complete(state, guard, chat, request.headers)
        upstream = await state.upstream.open_stream(chat.body, request.headers)
        if upstream.status_code != 200:
            await upstream.aread()
            await upstream.aclose()
            state.metrics.errors.labels("upstream_status").inc()
            return passthrough(upstream), None
        if state.settings.stream_mode == "hold":
            return await stream_hold(state, guard, chat, upstream)
        return stream_incremental(state, guard, chat, upstream, ticket), None


async def check_endpoint(state: State, request: Request, ticket: Ticket) -> tuple[Response, Verdict | None]:
    """`{"response", "prompt"?, "model"?}`: the verdict. With `model`, a rewrite revises through the upstream
    with that model; without it there is nothing to revise with, so a rewrite rule blocks (as in the library)."""
    guard = guard_for(state, request)
    data = parse_json_object(await _body(state, request))
    unknown = sorted(set(data) - set(CHECK_FIELDS))
    if unknown:
        raise bad_request(f"unknown field {unknown[0]!r}: a check takes {', '.join(CHECK_FIELDS)}", param=unknown[0])
    response, prompt = data.get("response"), data.get("prompt")
    if not isinstance(response, str):
        raise bad_request("`response` is the text to check, a string", param="response")
    if prompt is not None and not isinstance(prompt, str):
        raise bad_request("`prompt` is a string or null", param="prompt")
    rewriter = state.upstream.rewriter(data["model"]) if data.get("model") is not None else None
    verdict = await check(state, guard, response, prompt, rewriter)
    return JSONResponse(verdict.model_dump(mode="json"), headers=verdict_headers(verdict)), verdict
