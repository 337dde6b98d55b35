"""The proxy without streaming, /v1/check and /healthz, against the stub upstream over loopback sockets."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.server.conftest import BENIGN, HARMFUL, PROMPT, chat
from valueguard.guard.guard import ValueGuard
from valueguard.policy.model import Policy
from valueguard.server import Tenants

TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "find_car", "arguments": "{\"plate\": \"X\"}"}}


def post(url: str, body, **kwargs) -> httpx.Response:
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return httpx.post(url + "/chat/completions", content=content, headers={"content-type": "application/json",
                                                                           **kwargs.pop("headers", {})},
                      timeout=30, **kwargs)


def test_an_allowed_answer_passes_through_with_the_verdict(proxy, stub, guard):
    url = proxy()
    request = chat({"answer": BENIGN})
    response = post(url, request)
    assert response.status_code == 200
    answer = response.json()
    assert answer["choices"][0]["message"]["content"] == BENIGN
    assert answer["usage"]["total_tokens"] == 8 and answer["id"] == "chatcmpl-stub"  # the upstream's own body
    expected = guard.check(BENIGN, PROMPT)
    assert answer["valueguard"]["action"] == expected.action == response.headers["x-valueguard-action"]
    assert expected.action in ("allow", "log")
    assert answer["valueguard"]["values"] == expected.values
    assert answer["valueguard"]["decision_id"] == response.headers["x-valueguard-decision-id"]
    # Forwarded unchanged, and the client's headers that name the proxy's key never go upstream.
    [sent] = stub.requests
    assert sent["body"] == json.dumps(request).encode()
    assert "authorization" not in sent["headers"]


def test_a_harmful_answer_is_blocked_and_its_tool_calls_dropped(proxy, guard):
    url = proxy()
    response = post(url, chat({"answer": HARMFUL, "tool_calls": [TOOL_CALL]}))
    expected = guard.check(HARMFUL, PROMPT)
    assert expected.action == "block"  # what the test is about: the default policy blocks this answer
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["message"]["content"] == expected.text
    assert "tool_calls" not in choice["message"] and choice["finish_reason"] == "stop"
    assert HARMFUL not in response.text
    assert response.headers["x-valueguard-action"] == "block"
    assert response.json()["valueguard"]["rules"] == expected.rules


def test_an_allowed_answer_keeps_its_tool_calls(proxy):
    url = proxy()
    response = post(url, chat({"answer": None, "tool_calls": [TOOL_CALL]}))
    choice = response.json()["choices"][0]
    assert choice["message"]["tool_calls"] == [TOOL_CALL] and choice["finish_reason"] == "tool_calls"
    assert response.json()["valueguard"]["reason"] == "empty response"  # no text: nothing to work against


def test_rewrite_goes_through_the_same_upstream(proxy, stub, rewriting):
    from tests.server.conftest import REVISION

    url = proxy(tenants=rewriting)
    response = post(url, chat({"answer": HARMFUL, "tool_calls": [TOOL_CALL]}),
                    headers={"x-valueguard-policy": "rewriting"})
    body = response.json()
    assert body["valueguard"]["action"] == "rewrite" and body["valueguard"]["revisions"] == 1
    assert body["choices"][0]["message"]["content"] == REVISION
    assert "tool_calls" not in body["choices"][0]["message"]  # a revision is text only
    original, revision = stub.requests
    assert revision["json"]["model"] == "stub-model" and revision["json"]["stream"] is False
    assert "stub" not in revision["json"] and HARMFUL in revision["json"]["messages"][0]["content"]


def test_a_rewrite_the_upstream_cannot_make_fails_closed(proxy, stub, rewriting):
    stub.revision = HARMFUL  # every revision still violates: blocked after the attempts
    url = proxy(tenants=rewriting)
    body = post(url, chat({"answer": HARMFUL}), headers={"x-valueguard-policy": "rewriting"}).json()
    assert body["valueguard"]["action"] == "block" and HARMFUL not in json.dumps(body["choices"])


@pytest.mark.parametrize("body, param", [
    (b"{not json", None),                                                  # not JSON at all
    (b"[1, 2]", None),                                                     # JSON, not an object
    ({"model": "m"}, "messages"),                                          # no messages
    ({"model": "m", "messages": []}, "messages"),                          # empty messages
    ({"model": "m", "messages": ["hi"]}, "messages[0]"),                   # a message that is not an object
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}, "stream"),
    ({"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),   # one choice is checked
    (b"\xff\xfe", None),                                                   # not UTF-8
])
def test_a_malformed_request_is_a_400_in_openai_shape(proxy, stub, body, param):
    response = post(proxy(), body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert stub.requests == []  # nothing went upstream


def test_an_upstream_error_is_passed_through_with_its_status(proxy):
    response = post(proxy(), chat({"status": 500}))
    assert response.status_code == 500 and response.json()["error"]["code"] == "stub"
    assert "x-valueguard-action" not in response.headers


def test_an_unreachable_upstream_is_a_502_in_openai_shape(proxy):
    response = post(proxy(upstream="http://127.0.0.1:9/v1"), chat({"answer": BENIGN}))  # port 9: nobody there
    assert response.status_code == 502 and response.json()["error"]["code"] == "upstream_unavailable"


def test_an_estimator_failure_follows_on_error(proxy, estimator, guard, monkeypatch):
    def broken(texts):
        raise RuntimeError("embedding failed")

    monkeypatch.setattr(estimator.embedder, "embed", broken)
    open_policy = Policy.load("audit-only")  # on_error: allow
    assert open_policy.defaults.on_error == "allow"
    tenants = Tenants(guard, {"open": ValueGuard(open_policy, estimator)})
    url = proxy(tenants=tenants)
    text = "An answer no test has checked before, so no cached estimate hides the failure."
    closed = post(url, chat({"answer": text}))
    assert closed.status_code == 200 and closed.json()["valueguard"]["action"] == "block"  # fail closed
    assert "embedding failed" in closed.json()["valueguard"]["error"] and "Traceback" not in closed.text
    opened = post(url, chat({"answer": text}), headers={"x-valueguard-policy": "open"})
    assert opened.json()["valueguard"]["action"] == "allow"
    assert opened.json()["choices"][0]["message"]["content"] == text


def test_check_endpoint_gives_the_verdict_of_guard_check(proxy, guard):
    url = proxy()
    response = httpx.post(url + "/check", json={"response": HARMFUL, "prompt": PROMPT}, timeout=30)
    expected = guard.check(HARMFUL, PROMPT)
    body = response.json()
    assert response.status_code == 200
    assert (body["action"], body["rules"], body["values"], body["text"]) == \
        (expected.action, expected.rules, expected.values, expected.text)
    assert [n["id"] for n in body["neighbors"]] == [n.id for n in expected.neighbors]  # the evidence, too


@pytest.mark.parametrize("body, param", [
    ({"prompt": PROMPT}, "response"),                 # nothing to check
    ({"response": 3}, "response"),                    # not text
    ({"response": "x", "prompt": ["a"]}, "prompt"),   # a prompt that is not text
    ({"response": "x", "respnse": "y"}, "respnse"),   # a misspelt field is an error, not ignored
])
def test_check_endpoint_rejects_a_malformed_body(proxy, body, param):
    response = httpx.post(proxy() + "/check", json=body, timeout=30)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_healthz_reports_the_loaded_index(proxy, estimator):
    base = proxy().removesuffix("/v1")
    body = httpx.get(base + "/healthz").json()
    assert body["status"] == "ok" and body["index"]["rows"] == len(estimator.index) and body["policy"] == "default"


def test_an_unknown_route_answers_in_openai_shape(proxy):
    response = httpx.get(proxy() + "/nothing-here")
    assert response.status_code == 404 and set(response.json()["error"]) == {"message", "type", "param", "code"}
