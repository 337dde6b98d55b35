"""API keys: Bearer KEY on every endpoint but /healthz, compared in constant time; the upstream's own key."""

from __future__ import annotations

import logging

import httpx
import pytest

from tests.server.conftest import BENIGN, HARMFUL, chat
from valueguard.guard.guard import ValueGuard
from valueguard.policy.model import Policy
from valueguard.server import ServerSettings, Tenants
from valueguard.server import auth as auth_module
from valueguard.server.auth import ApiKeys

KEY = "vg-test-key-0123456789"
OTHER = "vg-other-key-9876543210"


@pytest.fixture()
def keyed(proxy) -> str:
    return proxy(keys=ApiKeys.load(env=f"{KEY},{OTHER}"))


@pytest.mark.parametrize("method, path, headers, status", [
    ("POST", "/v1/chat/completions", {}, 401),                                   # no key
    ("POST", "/v1/chat/completions", {"authorization": "Bearer wrong-key-000000000"}, 401),   # a wrong key
    ("POST", "/v1/chat/completions", {"authorization": KEY}, 401),               # the key without the scheme
    ("POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}x"}, 401),  # a key with one byte more
    ("POST", "/v1/chat/completions", {"authorization": f"Bearer {KEY}"}, 200),   # the first key
    ("POST", "/v1/chat/completions", {"authorization": f"bearer {OTHER}"}, 200), # the second; the scheme in any case
    ("POST", "/v1/check", {}, 401),                                              # every endpoint...
    ("GET", "/metrics", {}, 401),
    ("GET", "/metrics", {"authorization": f"Bearer {KEY}"}, 200),
    ("GET", "/healthz", {}, 200),                                                # ...but /healthz
])
def test_api_keys_guard_every_endpoint_but_healthz(keyed, stub, method, path, headers, status):
    base = keyed.removesuffix("/v1")
    body = chat({"answer": BENIGN}) if path.endswith("completions") else {"response": BENIGN}
    response = httpx.request(method, base + path, headers=headers, json=body if method == "POST" else None,
                             timeout=30)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["code"] == "invalid_api_key" and stub.requests == []  # nothing upstream
        assert response.headers["www-authenticate"] == "Bearer"


def test_every_key_is_compared_with_compare_digest(monkeypatch):
    calls = []

    def spy(a, b):
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    keys = ApiKeys.load(env=f"{KEY},{OTHER}")
    assert keys.match(KEY).label == "env:1"
    assert len(calls) == 2  # the first key matched, the second was compared all the same: no early exit
    assert keys.match("no-such-key-0000000") is None


def test_the_upstream_key_goes_upstream_and_nowhere_else(proxy, stub, caplog):
    upstream_key = "sk-upstream-secret-42"
    url = proxy(keys=ApiKeys.load(env=KEY), upstream_key=upstream_key)
    with caplog.at_level(logging.DEBUG, logger="valueguard"):
        response = httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}),
                              headers={"authorization": f"Bearer {KEY}"}, timeout=30)
    assert response.status_code == 200
    [sent] = stub.requests
    assert sent["headers"]["authorization"] == f"Bearer {upstream_key}"  # the client's key is not forwarded
    assert upstream_key not in caplog.text and KEY not in caplog.text and "request served" in caplog.text
    assert upstream_key not in repr(ServerSettings(upstream=stub.url, upstream_key=upstream_key))
    assert upstream_key not in response.text


def test_a_key_bound_to_a_policy_is_checked_with_it_and_cannot_ask_for_another(proxy, guard, estimator, tmp_path):
    strict = ValueGuard(Policy.load("strict"), estimator)
    tenants = Tenants(guard, {"strict": strict, "default": guard})
    key_file = tmp_path / "keys"
    key_file.write_text(f"# tenant keys\n{KEY} strict\n{OTHER}\n", encoding="utf-8")
    url = proxy(tenants=tenants, keys=ApiKeys.load(key_file, env=""))
    bound = httpx.post(url + "/check", json={"response": HARMFUL}, headers={"authorization": f"Bearer {KEY}"})
    assert bound.json()["policy"] == "strict"
    asks_other = httpx.post(url + "/check", json={"response": HARMFUL},
                            headers={"authorization": f"Bearer {KEY}", "x-valueguard-policy": "default"})
    assert asks_other.status_code == 400 and asks_other.json()["error"]["code"] == "unknown_policy"
    free = httpx.post(url + "/check", json={"response": HARMFUL},
                      headers={"authorization": f"Bearer {OTHER}", "x-valueguard-policy": "strict"})
    assert free.json()["policy"] == "strict"  # an unbound key may choose


@pytest.mark.parametrize("lines, message", [
    ("short\n", "shorter than 16"),                                 # a guessable key is refused
    (f"{KEY} strict extra\n", "KEY or KEY POLICY_NAME"),            # three fields
    (f"{KEY} ../etc/passwd\n", "KEY or KEY POLICY_NAME"),           # a policy name that is a path
])
def test_a_bad_key_file_is_refused_at_start(tmp_path, lines, message):
    path = tmp_path / "keys"
    path.write_text(lines, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        ApiKeys.load(path, env="")


def test_no_keys_leaves_the_endpoints_open():
    keys = ApiKeys.load(env="")
    assert not keys.enabled and keys.authorize(None) is None
