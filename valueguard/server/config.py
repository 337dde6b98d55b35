"""What the server is told: its limits and stream mode (ServerSettings), and which policy guards whom (Tenants)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from valueguard.errors import ValueGuardError
from valueguard.guard.streaming import STREAM_MODES, StreamMode

if TYPE_CHECKING:  # pragma: no cover
    from valueguard.estimation.estimator import ValueEstimator
    from valueguard.guard.guard import ValueGuard

# A tenant's policy name is a file name in --policies DIR: no path separators, no dots, so never a traversal.
POLICY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]{0,63}")
POLICY_HEADER = "x-valueguard-policy"


@dataclass(frozen=True)
class ServerSettings:
    """The proxy's limits and behaviour; every field has a default except the upstream."""

    upstream: str  # the upstream's OpenAI base URL, e.g. http://127.0.0.1:8080/v1
    upstream_key: str | None = field(default=None, repr=False)  # sent upstream as a bearer token, never logged
    stream_mode: StreamMode = "hold"  # hold: nothing streams before the whole answer is checked
    max_body_bytes: int = 1 << 20  # a larger request body is a 413
    body_timeout_s: float = 30.0  # a request body that takes longer to arrive is a 408
    upstream_timeout_s: float = 60.0  # the upstream silent for this long is a 504
    max_concurrent_checks: int = 4  # checks running at once (they are CPU-bound: about twice the cores)
    max_pending: int = 256  # requests in the proxy at once (waiting for the upstream or a check); more: 503
    queue_timeout_s: float = 10.0  # a check that waited this long for a slot is a 503, not a timeout
    retry_after_s: int = 1  # the Retry-After of a 503

    def __post_init__(self) -> None:
        if not re.match(r"https?://[^/\s]+", self.upstream):
            raise ValueError(f"the upstream is an http(s) URL such as http://127.0.0.1:8080/v1, got {self.upstream!r}")
        if self.stream_mode not in STREAM_MODES:
            raise ValueError(f"stream mode is one of {', '.join(STREAM_MODES)}, got {self.stream_mode!r}")
        for name in ("max_body_bytes", "max_concurrent_checks", "max_pending", "retry_after_s"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("body_timeout_s", "upstream_timeout_s", "queue_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")


class UnknownPolicy(ValueGuardError, LookupError):
    """A tenant asked for a policy the server does not have (a 400, never the default)."""


class Tenants:
    """Which guard checks a request: the one its API key is bound to, else the one its `x-valueguard-policy`
    header names, else the default. A key bound to a policy cannot ask for another one (the header may only
    repeat it), so a tenant cannot choose a weaker policy than its own."""

    def __init__(self, default: ValueGuard, named: Mapping[str, ValueGuard] | None = None) -> None:
        self.default = default
        self.named = dict(named or {})
        for name in self.named:
            if not POLICY_NAME.fullmatch(name):
                raise ValueError(f"a policy name is letters, digits, '-' and '_', got {name!r}")

    @property
    def estimator(self) -> ValueEstimator:
        return self.default.estimator

    def names(self) -> list[str]:
        return sorted(self.named)

    def resolve(self, header: str | None, bound: str | None = None) -> ValueGuard:
        """`header`: the x-valueguard-policy header's value; `bound`: the policy the request's key is bound to."""
        if bound is not None:
            if header is not None and header != bound:
                raise UnknownPolicy(f"this API key is bound to policy {bound!r}; it cannot ask for {header!r}")
            header = bound
        if header is None:
            return self.default
        if header not in self.named:
            known = ", ".join(self.names()) or "none: the server was started without --policies"
            raise UnknownPolicy(f"unknown policy {header!r} (known: {known})")
        return self.named[header]

    @classmethod
    def from_dir(cls, default: ValueGuard, directory: str | Path | None, **guard_options) -> Tenants:
        """Every DIR/NAME.yaml (or .yml) as tenant NAME, on the default guard's estimator. A file that does not
        load stops the server at start, with the file and line (PolicyError)."""
        from valueguard.guard.guard import ValueGuard
        from valueguard.policy.model import Policy

        named: dict[str, ValueGuard] = {}
        if directory is not None:
            folder = Path(directory)
            if not folder.is_dir():
                raise ValueError(f"--policies: no such directory: {folder}")
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                if not POLICY_NAME.fullmatch(path.stem):
                    raise ValueError(f"{path}: a tenant's policy file is NAME.yaml with NAME letters, digits, - or _")
                if path.stem in named:
                    raise ValueError(f"{folder}: two files for policy {path.stem!r}")
                named[path.stem] = ValueGuard(Policy.load(path), default.estimator, **guard_options)
        return cls(default, named)
