"""The guard server: an OpenAI-compatible proxy that checks every answer (`valueguard serve`, docs/server.md).

Needs the `server` extra (Starlette, uvicorn, httpx, prometheus-client). The core never imports this package.

    config.py       ServerSettings (limits, stream mode), the tenants (policy per header or key)
    auth.py         API keys, compared in constant time
    limits.py       the body limit and deadline, admission and the bounded check slots
    metrics.py      Prometheus counters and histograms; OpenTelemetry spans when configured
    upstream.py     httpx to the upstream: the forwarded call, the stream, the rewriter
    errors.py       errors in OpenAI's shape
    checking.py     one check under the limits, the verdict summary
    completions.py  /v1/chat/completions without streaming, and request parsing
    sse.py          /v1/chat/completions with `stream: true`: hold-back and incremental
    app.py          the Starlette app and its routes
"""

from valueguard.server.app import create_app
from valueguard.server.config import ServerSettings, Tenants

__all__ = ["ServerSettings", "Tenants", "create_app"]
