"""/metrics (Prometheus), OpenTelemetry spans when a tracer provider is configured, and the decision logs."""

from __future__ import annotations

import contextlib
import logging

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.conftest import BENIGN, HARMFUL, PROMPT, chat
from valueguard.server import metrics as metrics_module
from valueguard.server.metrics import Tracing


def samples(base: str) -> dict[tuple[str, tuple], float]:
    text = httpx.get(base + "/metrics").text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_checks_rules_latencies_and_errors(proxy, guard):
    url = proxy()
    base = url.removesuffix("/v1")
    httpx.post(url + "/chat/completions", json=chat({"answer": HARMFUL}), timeout=30)
    httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}), timeout=30)
    httpx.post(url + "/chat/completions", content=b"{", timeout=30)
    benign = guard.check(BENIGN, PROMPT).action
    s = samples(base)
    assert s[("valueguard_checks_total", (("action", "block"), ("policy", "default")))] == 1
    assert s[("valueguard_checks_total", (("action", benign), ("policy", "default")))] == 1
    assert s[("valueguard_rule_fired_total", (("policy", "default"), ("rule", "harm-to-others")))] == 1
    assert s[("valueguard_check_seconds_count", (("policy", "default"),))] == 2
    assert s[("valueguard_upstream_seconds_count", (("kind", "completion"),))] == 2
    assert s[("valueguard_errors_total", (("kind", "invalid_request_error"),))] == 1  # the malformed one


class RecordingTracer:
    def __init__(self) -> None:
        self.spans: list[tuple[str, dict]] = []

    @contextlib.contextmanager
    def start_as_current_span(self, name, attributes=None):
        span = RecordedSpan(dict(attributes or {}))
        self.spans.append((name, span.attributes))
        yield span


class RecordedSpan:
    def __init__(self, attributes: dict) -> None:
        self.attributes = attributes

    def set_attribute(self, key, value) -> None:
        self.attributes[key] = value


def test_no_spans_without_a_configured_tracer_provider():
    pytest.importorskip("opentelemetry")  # installed with fastapi here; without it there is nothing to configure
    assert Tracing().tracer is None  # the API's default provider: nothing is made


def test_spans_when_a_tracer_provider_is_configured(proxy, monkeypatch):
    tracer = RecordingTracer()
    monkeypatch.setattr(metrics_module, "_configured_tracer", lambda: tracer)
    url = proxy()
    httpx.post(url + "/chat/completions", json=chat({"answer": HARMFUL}), timeout=30)
    names = [name for name, _ in tracer.spans]
    assert names == ["valueguard.request", "valueguard.upstream", "valueguard.check"]
    assert tracer.spans[2][1]["valueguard.action"] == "block" and tracer.spans[2][1]["policy"] == "default"


@pytest.mark.parametrize("log_text", [False, True])
def test_decision_logs_carry_text_only_with_log_text(proxy, estimator, caplog, log_text):
    from valueguard.guard.guard import ValueGuard
    from valueguard.server import Tenants

    url = proxy(tenants=Tenants(ValueGuard.from_policy("default", estimator=estimator, log_text=log_text)))
    with caplog.at_level(logging.INFO, logger="valueguard"):
        response = httpx.post(url + "/chat/completions", json=chat({"answer": HARMFUL}), timeout=30)
    decision_id = response.json()["valueguard"]["decision_id"]
    checked = [r for r in caplog.records if r.getMessage().startswith("response checked")]
    served = [r for r in caplog.records if r.getMessage().startswith("request served")]
    assert len(checked) == 1 and decision_id in checked[0].getMessage()
    assert len(served) == 1 and decision_id in served[0].getMessage() and HARMFUL not in served[0].getMessage()
    assert (HARMFUL in caplog.text) is log_text and (PROMPT in caplog.text) is log_text
