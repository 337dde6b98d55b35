"""ValueGuard: estimator + policy + actions -> Verdict. The middleware's centre; integrations call check()."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from valueguard.guard.rewrite import ResponseBlocked, Rewriter, as_rewriter, rewrite_instruction
from valueguard.estimation.estimate import Estimate, Neighbor
from valueguard.estimation.estimator import ValueEstimator
from valueguard.guard.limits import call_before, estimate_bounded, require_text, scrub
from valueguard.logs import get_logger
from valueguard.policy.model import PRECEDENCE, Action, Decision, Policy

log = get_logger("valueguard.guard")


class Revision(BaseModel):
    """One rewrite attempt: what the policy says of the revised text, and its values."""

    model_config = ConfigDict(frozen=True)
    attempt: int = Field(description="1 for the first revision.")
    action: Action = Field(description="What the policy says of the revision.")
    rules: list[str] = Field(description="Rules that fired on the revision.")
    values: dict[str, float] = Field(description="The revision's estimated values.")


class Verdict(BaseModel):
    """The outcome of one check: what to do, why, and the text to hand on."""

    model_config = ConfigDict(frozen=True)
    decision_id: str = Field(description="Unique id of this decision, also in the log event.")
    action: Action = Field(description="allow, log, rewrite (text is the accepted revision) or block.")
    text: str = Field(description="The text to hand on: the original, the accepted revision or the block message.")
    values: dict[str, float] = Field(description="The checked response's estimated values (all 10).")
    against: dict[str, float] = Field(
        default_factory=dict, description="Estimated probability that the response works against each value.")
    confidence: float = Field(description="The estimator's confidence in those values.")
    rules: list[str] = Field(description="Ids of the rules that fired on the response.")
    neighbors: list[Neighbor] = Field(description="The evidence: nearest labelled reference rows.")
    revisions: list[Revision] = Field(default_factory=list, description="Each rewrite attempt, in order.")
    error: str | None = Field(default=None, description="Why the check could not be made (then on_error applied).")
    reason: str | None = Field(
        default=None, description="Why the verdict was reached without an estimate, e.g. 'empty response'.")
    truncated: str | None = Field(
        default=None, description="Set when the text was over the policy's max_chars: what was read instead "
        "(the head, the tail and evenly spaced windows); None when all of it was checked.")
    elapsed_ms: float = Field(description="Time the check took, rewrites included.")
    policy: str = Field(description="Name of the policy applied.")
    policy_version: str = Field(description="Version of the policy applied.")

    @property
    def blocked(self) -> bool:
        return self.action == "block"


class ValueGuard:
    """The guard: estimates a response's values, applies the policy's rules and actions, returns a Verdict."""

    def __init__(self, policy: Policy, estimator: ValueEstimator, *, rewriter: object | None = None,
                 log_text: bool = False) -> None:
        """`rewriter`: the default LLM for rewrite actions (a callable str -> str, a LangChain chat model or an
        `llm` model); integrations pass the wrapped model. `log_text`: put raw prompt/response text in logs."""
        self.policy = policy
        self.estimator = estimator
        self.rewriter: Rewriter | None = as_rewriter(rewriter) if rewriter is not None else None
        self.log_text = log_text

    @classmethod
    def from_policy(cls, policy: str | Path | Policy = "default", *, index: str | Path | None = None,
                    estimator: ValueEstimator | None = None, **kwargs: Any) -> ValueGuard:
        """`policy`: a bundled name, a YAML path or a Policy. `index`: an index folder (default index if None)."""
        pol = policy if isinstance(policy, Policy) else Policy.load(policy)
        if estimator is None:
            estimator = ValueEstimator.from_index(index) if index is not None else ValueEstimator.default()
        return cls(pol, estimator, **kwargs)

    # --- checking -----------------------------------------------------------------------------------------

    def check(self, response: str, prompt: str | None = None, *, rewriter: object | None = None) -> Verdict:
        """TypeError unless `response` is a str and `prompt` a str or None. At most the policy's max_chars of the
        response are read, and a rewrite past its rewrite_timeout fails (docs/reliability.md)."""
        require_text(response, prompt)
        start = time.perf_counter()
        decision_id = uuid.uuid4().hex[:16]
        if not response.strip():
            # Nothing was said, so nothing can work against a value: an estimate of "" is the embedding's noise.
            return self._finish(self._empty_verdict(decision_id, response, start), response, prompt)
        try:
            estimate, truncated = self._estimate(response, prompt)
        except Exception as e:  # the estimator itself failed: the policy's on_error decides
            failure = scrub(e, (response, prompt), self.log_text)
            return self._finish(self._error_verdict(decision_id, response, failure, start), response, prompt)
        decision = self.policy.decide(estimate)
        action: Action = decision.action
        text = response
        error: str | None = None
        revisions: list[Revision] = []
        if action == "rewrite":
            rw = as_rewriter(rewriter) if rewriter is not None else self.rewriter
            try:
                action, text, revisions = self._rewrite(response, prompt, estimate, decision, rw)
            except Exception as e:  # a failing (or too slow) rewriter is a failed check, not a pass
                action = "block" if self.policy.defaults.on_error == "block" else "allow"
                text, error = response, f"rewrite failed: {scrub(e, (response, prompt), self.log_text)}"
        if action == "block":
            text = self._block_message(decision)
        verdict = Verdict(
            decision_id=decision_id, action=action, text=text,
            values={k: round(v, 4) for k, v in estimate.values.items()}, confidence=round(estimate.confidence, 4),
            against={k: round(v, 4) for k, v in estimate.against.items()}, rules=decision.rule_ids,
            neighbors=estimate.neighbors, revisions=revisions, error=error, truncated=truncated,
            elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
            policy=self.policy.name, policy_version=self.policy.version,
        )
        return self._finish(verdict, response, prompt)

    async def acheck(self, response: str, prompt: str | None = None, *, rewriter: object | None = None) -> Verdict:
        """check() on a worker thread: the event loop is never blocked by embedding or rewriting."""
        require_text(response, prompt)  # in the caller, before any thread
        return await asyncio.to_thread(self.check, response, prompt, rewriter=rewriter)

    def _rewrite(self, response: str, prompt: str | None, estimate: Estimate, decision: Decision,
                 rewriter: Rewriter | None) -> tuple[Action, str, list[Revision]]:
        if rewriter is None:
            # Nothing to revise with: the violation stands, so the response does not go out.
            return "block", response, []
        revisions: list[Revision] = []
        current, current_estimate, current_decision = response, estimate, decision
        # One deadline for the whole rewrite, all attempts: past it the rewrite has failed and on_error applies.
        deadline = time.monotonic() + self.policy.defaults.rewrite_timeout
        for attempt in range(1, self.policy.defaults.rewrite_attempts + 1):
            reasons = [r.description for r in current_decision.fired] or ["policy rule"]
            revised = call_before(rewriter, rewrite_instruction(current, current_estimate.values, reasons, prompt),
                                  deadline)
            if not isinstance(revised, str):
                raise TypeError(f"the rewriter returned {type(revised).__name__}, not a str")
            current_estimate, _ = self._estimate(revised, prompt)
            current_decision = self.policy.decide(current_estimate)
            revisions.append(Revision(attempt=attempt, action=current_decision.action,
                                      rules=current_decision.rule_ids,
                                      values={k: round(v, 4) for k, v in current_estimate.values.items()}))
            if PRECEDENCE[current_decision.action] <= PRECEDENCE["log"]:
                return "rewrite", revised, revisions
            current = revised
        return "block", response, revisions

    def _estimate(self, text: str, prompt: str | None) -> tuple[Estimate, str | None]:
        return estimate_bounded(self.estimator, text, prompt, self.policy.defaults.max_chars)

    def _block_message(self, decision: Decision) -> str:
        for rule in decision.fired:
            if rule.action == "block" and rule.message:
                return rule.message
        return self.policy.defaults.block_message

    def _error_verdict(self, decision_id: str, response: str, error: str, start: float) -> Verdict:
        fail_closed = self.policy.defaults.on_error == "block"
        return Verdict(
            decision_id=decision_id, action="block" if fail_closed else "allow",
            text=self.policy.defaults.block_message if fail_closed else response,
            values={}, confidence=0.0, rules=[], neighbors=[],
            error=error, elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
            policy=self.policy.name, policy_version=self.policy.version,
        )

    def _empty_verdict(self, decision_id: str, response: str, start: float) -> Verdict:
        return Verdict(
            decision_id=decision_id, action="allow", text=response, values={}, confidence=0.0, rules=[],
            neighbors=[], reason="empty response", elapsed_ms=round((time.perf_counter() - start) * 1000, 2),
            policy=self.policy.name, policy_version=self.policy.version,
        )

    def _finish(self, verdict: Verdict, response: str, prompt: str | None) -> Verdict:
        fields: dict[str, Any] = dict(
            decision_id=verdict.decision_id, action=verdict.action, rules=verdict.rules, values=verdict.values,
            confidence=verdict.confidence, evidence=[n.id for n in verdict.neighbors],
            revisions=len(verdict.revisions), latency_ms=verdict.elapsed_ms, policy=verdict.policy,
            policy_version=verdict.policy_version, index=self.estimator.index.version,
        )
        if verdict.reason:
            fields["reason"] = verdict.reason
        if verdict.truncated:
            fields["truncated"] = verdict.truncated
        if self.log_text:
            fields.update(prompt=prompt, response=response, text=verdict.text)
        if verdict.error:
            log.error("check failed", error=verdict.error, **fields)
        else:
            log.info("response checked", **fields)
        if verdict.action == "block" and self.policy.defaults.on_block == "raise":
            raise ResponseBlocked(verdict)
        return verdict

    # --- integrations (imported lazily: the core never imports them) ---------------------------------------

    def wrap(self, chat_model: Any, **options: Any) -> Any:
        """A LangChain chat model that checks every response of `chat_model` (or of a binding of one, e.g.
        `model.bind_tools([...])`); needs the `langchain` extra. `options`: stream_mode, on_verdict, ...
        (valueguard.integrations.langchain.wrap_chat_model); an unknown one is a TypeError."""
        from valueguard.integrations.langchain.chat_model import wrap_chat_model

        return wrap_chat_model(chat_model, self, **options)

    def agent_middleware(self, on_block: str = "replace", **options: Any) -> Any:
        """A LangChain v1 agent middleware that checks each model response (`create_agent(..., middleware=[...])`).
        on_block: "replace" hands on the block message and lets the agent go on; "end" ends the run there."""
        from valueguard.integrations.langchain.agent import ValueGuardMiddleware

        return ValueGuardMiddleware(self, on_block=on_block, **options)  # type: ignore[arg-type]

    def as_runnable(self, **options: Any) -> Any:
        """An LCEL step: AIMessage or str in, the checked AIMessage or str out (options: prompt_key, ...)."""
        from valueguard.integrations.langchain.lcel import guard_runnable

        return guard_runnable(self, **options)

    def guarded(self, fn: Any = None, **options: Any) -> Any:
        """Decorator for functions that return (or stream) a model response; see valueguard.integrations.decorator."""
        from valueguard.integrations.decorator import guarded

        return guarded(self, fn, **options)
