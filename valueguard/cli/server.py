"""`valueguard serve`: the guard server, an OpenAI-compatible proxy that checks every answer (docs/server.md).

The server's packages (the `server` extra) are imported only when the command runs, so `valueguard --help`
and every other command work without them.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path
from typing import Any

import click

from valueguard.cli.shared import CliError, cli, index_option

OPTIONS_ENV = "VALUEGUARD_SERVE_OPTIONS"  # how `--workers N` hands the options to each worker (no secrets in it)
INSTALL_HINT = "the guard server needs the server extra: pip install 'valueguard[server]'"


def _require_server_packages() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "httpx", "prometheus_client") if importlib.util.find_spec(m) is None]
    if missing:
        raise CliError(f"{INSTALL_HINT} (missing: {', '.join(missing)})")


def build_app(options: dict[str, Any]) -> Any:
    """The app from the command's options: the policies, the index, the keys, the upstream's key."""
    from valueguard.estimation.estimator import ValueEstimator
    from valueguard.guard.guard import ValueGuard
    from valueguard.index.manifest import ValueIndexError
    from valueguard.policy.model import Policy, PolicyError
    from valueguard.server import ServerSettings, Tenants, create_app
    from valueguard.server.auth import ApiKeys

    key_env = options.get("upstream_key_env")
    upstream_key = None
    if key_env:
        upstream_key = os.environ.get(key_env)
        if not upstream_key:
            raise CliError(f"--upstream-key-env {key_env}: that environment variable is not set")
    try:
        settings = ServerSettings(
            upstream=options["upstream"], upstream_key=upstream_key, stream_mode=options["stream_mode"],
            max_body_bytes=options["max_body_bytes"], body_timeout_s=options["body_timeout"],
            upstream_timeout_s=options["upstream_timeout"], max_concurrent_checks=options["max_concurrent_checks"],
            max_pending=options["max_pending"], queue_timeout_s=options["queue_timeout"])
        keys = ApiKeys.load(options.get("api_key_file"))
        index = options.get("index_dir")
        estimator = ValueEstimator.from_index(index) if index else ValueEstimator.default()
        guard_options = {"log_text": options["log_text"]}
        default = ValueGuard(Policy.load(options["policy"]), estimator, **guard_options)
        tenants = Tenants.from_dir(default, options.get("policies_dir"), **guard_options)
    except (ValueError, PolicyError, ValueIndexError, OSError) as e:
        raise CliError(str(e)) from e
    unbound = sorted({k.policy for k in keys.keys if k.policy} - set(tenants.names()))
    if unbound:
        raise CliError(f"--api-key-file binds keys to policies that --policies does not have: {', '.join(unbound)}")
    return create_app(tenants, settings, keys)


def app_from_environment() -> Any:
    """uvicorn's factory for `--workers N`: each worker process builds its own app (and loads its own model)."""
    return build_app(json.loads(os.environ[OPTIONS_ENV]))


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@cli.command()
@click.option("--upstream", required=True, metavar="URL",
              help="The upstream's OpenAI-compatible base URL, e.g. http://127.0.0.1:8080/v1.")
@click.option("--policy", default="default", show_default=True,
              help="The policy for requests that name none: a bundled name or a YAML path.")
@click.option("--policies", "policies_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="A folder of NAME.yaml policies, chosen per request by the x-valueguard-policy header or the "
                   "API key; an unknown name is a 400.")
@index_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (loopback unless told).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes; each loads the model and keeps its own metrics.")
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="API keys, one a line (KEY, or KEY POLICY to bind it to a policy); VALUEGUARD_API_KEYS adds "
                   "comma-separated ones. With any key set, every endpoint but /healthz needs Bearer KEY.")
@click.option("--upstream-key-env", metavar="VAR", default=None,
              help="Environment variable holding the upstream's API key (sent upstream, never logged).")
@click.option("--stream-mode", type=click.Choice(["hold", "incremental"]), default="hold", show_default=True,
              help="hold: nothing streams before the whole answer is checked; incremental: per checked sentence.")
@click.option("--max-body-bytes", default=1 << 20, show_default=True, type=click.IntRange(1),
              help="Larger request bodies are a 413.")
@click.option("--body-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds for a request body to arrive (else 408).")
@click.option("--upstream-timeout", default=60.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds the upstream may stay silent (else 504).")
@click.option("--max-concurrent-checks", default=4, show_default=True, type=click.IntRange(1),
              help="Checks running at once; more queue.")
@click.option("--max-pending", default=256, show_default=True, type=click.IntRange(1),
              help="Requests in the proxy at once; more are a 503 with Retry-After.")
@click.option("--queue-timeout", default=10.0, show_default=True, type=click.FloatRange(min=0.001),
              help="Seconds a check may wait for a slot (else 503 with Retry-After).")
@click.option("--log-text", is_flag=True, help="Put prompts and answers in the decision logs (off: ids and scores).")
def serve(host: str, port: int, workers: int, **options: Any) -> None:
    """Serve an OpenAI-compatible proxy in front of --upstream that checks every answer."""
    _require_server_packages()
    import uvicorn

    options["policies_dir"] = str(options["policies_dir"]) if options["policies_dir"] else None
    options["index_dir"] = str(options["index_dir"]) if options["index_dir"] else None
    options["api_key_file"] = str(options["api_key_file"]) if options["api_key_file"] else None
    app = build_app(options)  # in this process first: a bad option fails here, before any worker starts
    keys_on = bool(app.state.valueguard.keys.enabled)
    if not _is_loopback(host) and not keys_on:
        click.echo(f"warning: serving on {host} without API keys: anyone who can reach it can use the upstream "
                   "through it (set VALUEGUARD_API_KEYS or --api-key-file)", err=True)
    click.echo(f"valueguard serve: http://{host}:{port}/v1 -> {options['upstream']} "
               f"(policy {options['policy']}, API keys {'on' if keys_on else 'off'})", err=True)
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level="warning", server_header=False)
        return
    os.environ[OPTIONS_ENV] = json.dumps(options)
    uvicorn.run("valueguard.cli.server:app_from_environment", factory=True, host=host, port=port, workers=workers,
                log_level="warning", server_header=False)
