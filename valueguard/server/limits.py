"""Limits: the request body (size and deadline), requests admitted at once, and checks running at once.

A request is admitted on arrival, before the upstream is called, while fewer than `max_pending` are in the
proxy; otherwise it is a 503 with Retry-After at once, so an overloaded proxy sheds load instead of timing out
and spends no upstream tokens on answers it could not check. Checks are CPU-bound: at most
`max_concurrent_checks` run at once, the rest queue, and one that waited `queue_timeout_s` is a 503 as well.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.requests import Request

from valueguard.server.errors import ApiError


class Overloaded(ApiError):
    """A 503 with Retry-After: the server's check queue is full or the wait timed out."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(503, message, type="server_error", code="overloaded",
                         headers={"retry-after": str(retry_after_s)})


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body, or a 413 past `max_bytes` (before reading, from Content-Length, when it is given) or a
    408 when it has not all arrived within `timeout_s` (a client trickling its body holds no check slot)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)

    async def collect() -> bytes:
        body = bytearray()
        async for piece in request.stream():
            body += piece
            if len(body) > max_bytes:
                raise _too_large(max_bytes)
        return bytes(body)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g} s", code="request_timeout") from None


def _too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is larger than {max_bytes} bytes", code="request_too_large")


class Limiter:
    """Admission (requests in the proxy) and check slots (checks running), both bounded."""

    def __init__(self, *, max_pending: int, max_concurrent_checks: int, queue_timeout_s: float,
                 retry_after_s: int) -> None:
        self.max_pending, self.queue_timeout_s, self.retry_after_s = max_pending, queue_timeout_s, retry_after_s
        self.pending = 0
        self.max_concurrent_checks = max_concurrent_checks
        self._slots: asyncio.Semaphore | None = None  # made on the serving loop

    def admit(self) -> Ticket:
        """A place in the proxy for one request, or a 503 at once; the caller releases it when the request is
        done (for a stream: when its last event is sent, or the client is gone)."""
        if self.pending >= self.max_pending:
            raise Overloaded(f"the guard is at its limit of {self.max_pending} requests; retry shortly",
                             self.retry_after_s)
        self.pending += 1
        return Ticket(self)

    @asynccontextmanager
    async def check_slot(self) -> AsyncIterator[None]:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_concurrent_checks)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
        except asyncio.TimeoutError:
            raise Overloaded(f"no check slot came free within {self.queue_timeout_s:g} s; retry shortly",
                             self.retry_after_s) from None
        try:
            yield
        finally:
            self._slots.release()


class Ticket:
    """A request's place among the concurrent checks, released once (idempotent)."""

    def __init__(self, limiter: Limiter) -> None:
        self._limiter: Limiter | None = limiter

    def release(self) -> None:
        """Idempotent: a stream releases from its generator and from the response's background task."""
        if self._limiter is not None:
            self._limiter.pending -= 1
            self._limiter = None
