"""ServerSettings' validation and the tenants: a policy per header or key from --policies DIR."""

from __future__ import annotations

import httpx
import pytest

from tests.server.conftest import HARMFUL
from valueguard.policy.model import PolicyError
from valueguard.server import ServerSettings, Tenants
from valueguard.server.config import UnknownPolicy

STRICT = (__import__("importlib").resources.files("valueguard.bundled_policies") / "strict.yaml").read_text()


@pytest.mark.parametrize("fields, message", [
    ({"upstream": "127.0.0.1:8080"}, "http"),                                # no scheme
    ({"upstream": "ftp://host/v1"}, "http"),                                 # not http
    ({"upstream": "http://h/v1", "stream_mode": "eager"}, "stream mode"),    # not a mode
    ({"upstream": "http://h/v1", "max_pending": 0}, "max_pending"),          # would shed everything
    ({"upstream": "http://h/v1", "upstream_timeout_s": 0}, "upstream_timeout_s"),
])
def test_settings_refuse_what_cannot_work(fields, message):
    with pytest.raises(ValueError, match=message):
        ServerSettings(**fields)


@pytest.fixture()
def policies(tmp_path):
    (tmp_path / "strict.yaml").write_text(STRICT, encoding="utf-8")
    (tmp_path / "team-b.yml").write_text(STRICT.replace("name: strict", "name: team-b"), encoding="utf-8")
    return tmp_path


def test_a_policy_folder_names_its_tenants(guard, policies):
    tenants = Tenants.from_dir(guard, policies)
    assert tenants.names() == ["strict", "team-b"]
    assert tenants.resolve("team-b").policy.name == "team-b" and tenants.resolve(None) is guard
    assert tenants.resolve("strict").estimator is guard.estimator  # one model and index for all


@pytest.mark.parametrize("header", ["nope", "../strict", "default", "STRICT"])  # unknown, a path, not in DIR, case
def test_an_unknown_tenant_is_never_the_default(guard, policies, header):
    with pytest.raises(UnknownPolicy):
        Tenants.from_dir(guard, policies).resolve(header)


def test_an_unknown_tenant_is_a_400(proxy, guard, policies):
    url = proxy(tenants=Tenants.from_dir(guard, policies))
    for path, body in (("/check", {"response": HARMFUL}),
                       ("/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "stub": {}})):
        response = httpx.post(url + path, json=body, headers={"x-valueguard-policy": "nope"}, timeout=30)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "unknown_policy" and "strict, team-b" in response.text
    chosen = httpx.post(url + "/check", json={"response": HARMFUL}, headers={"x-valueguard-policy": "team-b"})
    assert chosen.json()["policy"] == "team-b"


@pytest.mark.parametrize("name, text, error", [
    ("bad.yaml", "version: 1\nname: x\n", PolicyError),               # a policy that does not load: at start
    ("two.dots.yaml", STRICT, ValueError),                            # a name the header could not carry
])
def test_a_bad_policy_folder_fails_at_start(guard, tmp_path, name, text, error):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(error):
        Tenants.from_dir(guard, tmp_path)
