"""Prometheus metrics (each app its own registry) and OpenTelemetry spans, made only when OpenTelemetry is
importable and a tracer provider is configured (the API's default provider records nothing, so none is made)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The server's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("valueguard_checks", "Checks made, by policy and action.", ["policy", "action"],
                              registry=self.registry)
        self.rules = Counter("valueguard_rule_fired", "Rules that fired, by policy and rule.", ["policy", "rule"],
                             registry=self.registry)
        self.check_seconds = Histogram("valueguard_check_seconds", "The guard's check, rewrites included.",
                                       ["policy"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.upstream_seconds = Histogram("valueguard_upstream_seconds", "Upstream calls, to the last byte.",
                                          ["kind"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("valueguard_errors", "Failed requests, by kind (the OpenAI error code).", ["kind"],
                              registry=self.registry)

    def observe_verdict(self, verdict: Any) -> None:
        self.checks.labels(verdict.policy, verdict.action).inc()
        for rule in verdict.rules:
            self.rules.labels(verdict.policy, rule).inc()
        self.check_seconds.labels(verdict.policy).observe(verdict.elapsed_ms / 1000)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class Tracing:
    """span(name, **attributes): an OpenTelemetry span when a tracer provider is configured, else nothing."""

    def __init__(self) -> None:
        self.tracer = _configured_tracer()

    def span(self, name: str, **attributes: Any) -> AbstractContextManager[Any]:
        if self.tracer is None:
            return nullcontext()
        return self.tracer.start_as_current_span(
            name, attributes={k: v for k, v in attributes.items() if isinstance(v, (str, bool, int, float))})


def _configured_tracer() -> Any:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        return None
    return provider.get_tracer("valueguard.server")
