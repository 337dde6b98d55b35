"""One check, as every endpoint makes it: under the limits, in a span, counted; a failure follows on_error.

ValueGuard.check already turns an estimator failure into the policy's on_error verdict. Whatever else escapes
a check (a policy with `on_block: raise`, an unexpected error) becomes a verdict here too, so a request never
ends in a 500 with a traceback: ResponseBlocked carries its verdict, anything else is on_error's.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from valueguard.guard.rewrite import ResponseBlocked
from valueguard.policy.actions import FLAGGING
from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.logs import get_logger
from valueguard.server.config import ServerSettings, Tenants
from valueguard.server.limits import Limiter
from valueguard.server.metrics import Metrics, Tracing
from valueguard.server.upstream import Upstream

log = get_logger("valueguard.server")


@dataclass
class State:
    """Everything a request handler needs, made once per app."""

    settings: ServerSettings
    tenants: Tenants
    keys: Any  # ApiKeys
    limiter: Limiter
    metrics: Metrics
    tracing: Tracing
    upstream: Upstream


async def check(state: State, guard: ValueGuard, text: str, prompt: str | None, rewriter: Any = None) -> Verdict:
    async with state.limiter.check_slot():
        with state.tracing.span("valueguard.check", policy=guard.policy.name) as span:
            try:
                verdict = await guard.acheck(text, prompt, rewriter=rewriter)
            except ResponseBlocked as e:  # `on_block: raise`: the proxy answers with the block message anyway
                verdict = e.verdict
            except Exception as e:
                verdict = failed_verdict(guard, text, e)
                log.error("check failed", decision_id=verdict.decision_id, error=verdict.error,
                          action=verdict.action, policy=verdict.policy)
            if span is not None:
                span.set_attribute("valueguard.action", verdict.action)
                span.set_attribute("valueguard.rules", ",".join(verdict.rules))
    state.metrics.observe_verdict(verdict)
    if verdict.error:
        state.metrics.errors.labels("check_failed").inc()
    return verdict


def failed_verdict(guard: ValueGuard, text: str, error: Exception, start: float | None = None) -> Verdict:
    policy = guard.policy
    fail_closed = policy.defaults.on_error == "block"
    return Verdict(
        decision_id=uuid.uuid4().hex[:16], action="block" if fail_closed else "allow",
        text=policy.defaults.block_message if fail_closed else text, values={}, confidence=0.0, rules=[],
        neighbors=[], error=f"{type(error).__name__}: {error}", policy=policy.name, policy_version=policy.version,
        elapsed_ms=round((time.perf_counter() - start) * 1000, 2) if start else 0.0,
    )


def summary(verdict: Verdict) -> dict[str, Any]:
    """The verdict as the proxy adds it to an answer (`valueguard`): everything but the evidence and the text."""
    return {
        "decision_id": verdict.decision_id, "action": verdict.action, "rules": verdict.rules,
        "policy": verdict.policy, "policy_version": verdict.policy_version, "values": verdict.values,
        "against": verdict.against, "confidence": verdict.confidence, "revisions": len(verdict.revisions),
        "error": verdict.error, "reason": verdict.reason, "elapsed_ms": verdict.elapsed_ms,
    }


def flagged(verdict: Verdict) -> bool:
    return verdict.action in FLAGGING
