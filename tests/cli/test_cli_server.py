"""`valueguard serve`: registered on the CLI, its packages imported only when it runs, bad options refused."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from tests.conftest import REPO
from valueguard.cli import server as cli_server
from valueguard.cli import cli


def test_serve_is_a_command_and_the_cli_imports_no_server_package():
    code = ("import sys, valueguard.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('starlette', 'uvicorn', 'httpx', 'prometheus_client') or m.startswith('valueguard.server')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--upstream URL" in result.output and "--api-key-file" in result.output


def test_without_the_server_extra_the_message_says_what_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    result = CliRunner().invoke(cli, ["serve", "--upstream", "http://127.0.0.1:9/v1"])
    assert result.exit_code == 2
    assert "pip install 'valueguard[server]'" in result.output and "uvicorn" in result.output


@pytest.mark.parametrize("args, env, message", [
    (["--upstream", "localhost:8080"], {}, "http(s) URL"),                               # no scheme
    (["--upstream", "http://h/v1", "--upstream-key-env", "VG_NO_SUCH_VAR"], {}, "VG_NO_SUCH_VAR"),  # unset
    (["--upstream", "http://h/v1", "--policy", "no-such-policy"], {}, "no bundled policy"),
    (["--upstream", "http://h/v1"], {"VALUEGUARD_API_KEYS": "short"}, "shorter than 16"),
])
def test_bad_options_are_refused_before_serving(index_dir, monkeypatch, args, env, message):
    monkeypatch.delenv("VG_NO_SUCH_VAR", raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("served despite a bad option"))
    result = CliRunner().invoke(cli, ["serve", *args, "--index", str(index_dir)])
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_key_bound_to_a_policy_the_folder_lacks_is_refused(index_dir, tmp_path, monkeypatch):
    keys = tmp_path / "keys"
    keys.write_text("vg-a-long-enough-key-01 ghost\n", encoding="utf-8")
    monkeypatch.setattr("uvicorn.run", lambda *a, **k: pytest.fail("served despite a bad option"))
    result = CliRunner().invoke(cli, ["serve", "--upstream", "http://h/v1", "--index", str(index_dir),
                                      "--api-key-file", str(keys)])
    assert result.exit_code == 2 and "ghost" in result.output


def test_serving_beyond_loopback_without_keys_warns(index_dir, monkeypatch):
    served = {}
    monkeypatch.delenv("VALUEGUARD_API_KEYS", raising=False)
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: served.update(kw))
    result = CliRunner().invoke(cli, ["serve", "--upstream", "http://h/v1", "--index", str(index_dir),
                                      "--host", "0.0.0.0", "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "without API keys" in result.output and served["host"] == "0.0.0.0" and served["port"] == 8123
    assert cli_server._is_loopback("127.0.0.1") and cli_server._is_loopback("::1")


def test_workers_get_the_options_through_the_environment(index_dir, monkeypatch):
    """`--workers N` hands the options to uvicorn's factory in each worker; no secret is in them."""
    served = {}
    monkeypatch.delenv(cli_server.OPTIONS_ENV, raising=False)  # so the variable serve sets is gone afterwards
    monkeypatch.setenv("VG_UPSTREAM_SECRET", "sk-never-in-the-options")
    monkeypatch.setattr("uvicorn.run", lambda target, **kw: served.update(target=target, **kw))
    result = CliRunner().invoke(cli, ["serve", "--upstream", "http://h/v1", "--index", str(index_dir),
                                      "--workers", "2", "--upstream-key-env", "VG_UPSTREAM_SECRET"])
    assert result.exit_code == 0, result.output
    assert served["target"] == "valueguard.cli.server:app_from_environment" and served["workers"] == 2
    import os

    options = os.environ[cli_server.OPTIONS_ENV]
    assert "sk-never-in-the-options" not in options and "VG_UPSTREAM_SECRET" in options
    app = cli_server.app_from_environment()  # what each worker runs
    assert app.state.valueguard.settings.upstream_key == "sk-never-in-the-options"
