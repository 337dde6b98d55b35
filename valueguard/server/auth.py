"""API keys: `Authorization: Bearer KEY` on every endpoint but /healthz, when keys are configured.

Keys come from VALUEGUARD_API_KEYS (comma-separated) and --api-key-file (one key a line, optionally followed by
the name of the policy the key is bound to; `#` starts a comment). A presented key is compared with every key
in constant time (hmac.compare_digest, and no early exit), so timing tells nothing about which bytes matched.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from valueguard.server.config import POLICY_NAME
from valueguard.server.errors import ApiError

KEYS_ENV = "VALUEGUARD_API_KEYS"
MIN_KEY_CHARS = 16


@dataclass(frozen=True)
class ApiKey:
    """One API key of the guard server (its secret never in repr or logs), optionally bound to a tenant's policy."""

    secret: bytes = field(repr=False)
    policy: str | None = None  # the policy this key's requests are checked with (a tenant's own)
    label: str = ""  # a non-secret name for logs: the key's position, never its bytes


class ApiKeys:
    """The server's API keys; compares a request's bearer key to each in constant time."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def match(self, presented: str) -> ApiKey | None:
        token = presented.encode("utf-8")
        found = None
        for key in self.keys:  # every key compared, whichever matches
            if hmac.compare_digest(token, key.secret) and found is None:
                found = key
        return found

    def authorize(self, authorization: str | None) -> ApiKey | None:
        """The key a request presents, or None when keys are off; a 401 when they are on and it has none that fits."""
        if not self.enabled:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        key = self.match(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if key is None:
            raise ApiError(401, "a valid API key is required: Authorization: Bearer KEY", type="invalid_request_error",
                           code="invalid_api_key", headers={"www-authenticate": "Bearer"})
        return key

    @classmethod
    def load(cls, key_file: str | Path | None = None, env: str | None = None) -> ApiKeys:
        """From the environment's comma-separated list (`env`: its value, default os.environ) and the key file."""
        raw = os.environ.get(KEYS_ENV, "") if env is None else env
        entries: list[tuple[str, str | None, str]] = [(k.strip(), None, f"env:{i + 1}") for i, k in enumerate(raw.split(",")) if k.strip()]
        if key_file is not None:
            path = Path(key_file)
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                parts = line.split("#", 1)[0].split()
                if not parts:
                    continue
                if len(parts) > 2 or (len(parts) == 2 and not POLICY_NAME.fullmatch(parts[1])):
                    raise ValueError(f"{path}:{n}: a line is KEY or KEY POLICY_NAME")
                entries.append((parts[0], parts[1] if len(parts) == 2 else None, f"file:{n}"))
        for secret, _, label in entries:
            if len(secret) < MIN_KEY_CHARS:
                raise ValueError(f"API key {label} is shorter than {MIN_KEY_CHARS} characters")
        return cls([ApiKey(s.encode("utf-8"), p, label) for s, p, label in entries])
