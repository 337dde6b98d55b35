"""The upstream: an OpenAI-compatible server, called with httpx.

The request body goes on unchanged; the client's own Authorization header never does (it holds the proxy's
key): the upstream gets `Bearer <upstream key>` when one is set (--upstream-key-env), else no Authorization.
A timeout is a 504 and an unreachable upstream a 502, both in OpenAI's error shape; an upstream's own error
response is the caller's to pass through with its status.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from valueguard.server.errors import ApiError
from valueguard.server.metrics import Metrics

PASSED_HEADERS = ("accept", "openai-organization", "openai-project", "user-agent")


class Upstream:
    """The upstream OpenAI-compatible endpoint: one HTTP client, timeouts and the key, never logged."""

    def __init__(self, base_url: str, *, key: str | None, timeout_s: float, metrics: Metrics,
                 max_connections: int = 256) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.timeout_s = timeout_s
        self._key = key
        self.metrics = metrics
        timeout = httpx.Timeout(timeout_s)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = httpx.AsyncClient(timeout=timeout, limits=limits)
        self.sync_client = httpx.Client(timeout=timeout)  # for rewrites, which run on the check's worker thread

    def __repr__(self) -> str:  # the key stays out of every repr and log
        return f"Upstream({self.url!r})"

    def headers(self, incoming: Any = None) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        for name in PASSED_HEADERS:
            if incoming is not None and name in incoming:
                headers[name] = incoming[name]
        if self._key:
            headers["authorization"] = f"Bearer {self._key}"
        return headers

    async def post(self, body: bytes, incoming: Any = None) -> httpx.Response:
        """The whole answer (read to the end within the timeout)."""
        start = time.perf_counter()
        try:
            response = await self.client.post(self.url, content=body, headers=self.headers(incoming))
        except httpx.HTTPError as e:
            raise self.failure(e) from None
        finally:
            self.metrics.upstream_seconds.labels("completion").observe(time.perf_counter() - start)
        return response

    async def open_stream(self, body: bytes, incoming: Any = None) -> httpx.Response:
        """The answer's head, its body left to stream; the caller closes it (aclose)."""
        request = self.client.build_request("POST", self.url, content=body, headers=self.headers(incoming))
        try:
            return await self.client.send(request, stream=True)
        except httpx.HTTPError as e:
            raise self.failure(e) from None

    def failure(self, error: Exception) -> ApiError:
        if isinstance(error, httpx.TimeoutException):
            return ApiError(504, f"the upstream did not answer within {self.timeout_s:g} s", type="upstream_error",
                            code="upstream_timeout")
        return ApiError(502, f"the upstream could not be reached ({type(error).__name__})", type="upstream_error",
                        code="upstream_unavailable")

    def rewriter(self, model: Any) -> Callable[[str], str]:
        """Revisions through the same upstream and model: the instruction as one user message, no tools."""

        def rewrite(instruction: str) -> str:
            body: dict[str, Any] = {"messages": [{"role": "user", "content": instruction}], "stream": False}
            if model is not None:
                body["model"] = model
            start = time.perf_counter()
            try:
                response = self.sync_client.post(self.url, json=body, headers=self.headers())
            finally:
                self.metrics.upstream_seconds.labels("rewrite").observe(time.perf_counter() - start)
            response.raise_for_status()
            content = response.json()["choices"][0]["message"].get("content")
            if not isinstance(content, str):
                raise ValueError("the upstream's revision has no text")
            return content

        return rewrite

    async def aclose(self) -> None:
        await self.client.aclose()
        self.sync_client.close()
