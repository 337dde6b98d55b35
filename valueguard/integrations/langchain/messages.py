"""What the LangChain integrations share: checked messages, and how a verdict is reported.

A verdict is reported three ways on every check: `on_verdict(verdict)` when the caller gave one, a LangChain custom
event named `valueguard_verdict` with the verdict's summary as data (seen by `astream_events(version="v2")`, tracers
and LangSmith, as an event of the run that made the check), and the summary in the message's
`response_metadata["valueguard"]`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

try:
    from langchain_core.callbacks import AsyncCallbackManager, CallbackManager
    from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("valueguard's LangChain integration needs langchain-core: "
                      "pip install 'valueguard[langchain]'") from e

from valueguard.guard.rewrite import ResponseBlocked
from valueguard.policy.actions import FLAGGING
from valueguard.guard.guard import ValueGuard, Verdict

VERDICT_EVENT = "valueguard_verdict"
OnVerdict = Callable[[Verdict], Any]
_TOOL_FIELDS = ("tool_calls", "invalid_tool_calls", "tool_call_chunks")

__all__ = ["AIMessage", "AIMessageChunk", "VERDICT_EVENT", "Reporter", "guarded_message", "last_human_text",
           "quiet_rewriter", "verdict_summary"]


def last_human_text(messages: Sequence[Any]) -> str | None:
    return next((str(m.text) for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def verdict_summary(verdict: Verdict) -> dict[str, Any]:
    summary = {"action": verdict.action, "rules": list(verdict.rules), "decision_id": verdict.decision_id,
               "values": dict(verdict.values), "confidence": verdict.confidence, "error": verdict.error,
               "policy": verdict.policy, "policy_version": verdict.policy_version}
    if verdict.reason:
        summary["reason"] = verdict.reason
    return summary


def flagged(verdict: Verdict | None) -> bool:
    """A rewrite or a block: the turn's text is replaced and it must not act (no tool call goes on)."""
    return verdict is not None and verdict.action in FLAGGING


def text_content(content: str | list, text: str) -> str | list:
    """`text` in the shape of `content`. Nothing else of a flagged turn is kept: tool-use, reasoning and other
    blocks belong to the response that was flagged."""
    return text if isinstance(content, str) else [{"type": "text", "text": text}]


def guarded_message(message: BaseMessage, verdict: Verdict | None) -> BaseMessage:
    """The message to hand on, with the verdict in its metadata. Allowed: unchanged. Flagged: the verdict's text,
    and no tool call, no tool-call chunk, no additional_kwargs (which may hold the flagged reasoning or calls)."""
    if verdict is None:
        return message
    update: dict[str, Any] = {"response_metadata": {**message.response_metadata,
                                                    "valueguard": verdict_summary(verdict)}}
    if flagged(verdict):
        update.update(content=text_content(message.content, verdict.text), additional_kwargs={},
                      **{name: [] for name in _TOOL_FIELDS if hasattr(message, name)})
    return message.model_copy(update=update)


def quiet_rewriter(model: Any) -> Callable[[str], str]:
    """A rewriter that calls `model` outside the caller's callbacks: a revision is checked before it is handed
    on, so its tokens must not reach stream_events or an agent's message stream while it is being written."""
    def rewrite(instruction: str) -> str:
        out = model.invoke(instruction, config={"callbacks": []})
        return str(getattr(out, "text", out))
    return rewrite


class Reporter:
    """Checks with the guard and reports each verdict: on_verdict, then the custom event. The event goes to
    `run` (a run manager: the event belongs to that run), else to the run in `config` or in the context; with no
    run at all, there is no one to tell and no event."""

    def __init__(self, guard: ValueGuard, on_verdict: OnVerdict | None = None, *, run: Any = None,
                 config: Any = None) -> None:
        if on_verdict is not None and not callable(on_verdict):
            raise TypeError(f"on_verdict is a callable taking a Verdict, got {on_verdict!r}")
        self.guard, self.on_verdict, self.run, self.config = guard, on_verdict, run, config

    def check(self, text: str, prompt: str | None, rewriter: Any = None) -> Verdict:
        try:
            verdict = self.guard.check(text, prompt, rewriter=rewriter)
        except ResponseBlocked as e:
            self.report(e.verdict)
            raise
        self.report(verdict)
        return verdict

    async def acheck(self, text: str, prompt: str | None, rewriter: Any = None) -> Verdict:
        try:
            verdict = await self.guard.acheck(text, prompt, rewriter=rewriter)
        except ResponseBlocked as e:
            await self.areport(e.verdict)
            raise
        await self.areport(verdict)
        return verdict

    def report(self, verdict: Verdict) -> None:
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        data = verdict_summary(verdict)
        if self.run is not None:
            _manager(CallbackManager, self.run).on_custom_event(VERDICT_EVENT, data, run_id=self.run.run_id)
            return
        try:
            dispatch_custom_event(VERDICT_EVENT, data, config=self.config)
        except RuntimeError:  # called outside any run: no callbacks to tell
            pass

    async def areport(self, verdict: Verdict) -> None:
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        data = verdict_summary(verdict)
        if self.run is not None:
            await _manager(AsyncCallbackManager, self.run).on_custom_event(VERDICT_EVENT, data,
                                                                            run_id=self.run.run_id)
            return
        try:
            await adispatch_custom_event(VERDICT_EVENT, data, config=self.config)
        except RuntimeError:
            pass


def _manager(cls: type, run: Any) -> Any:
    """A callback manager whose handlers are `run`'s: the event is then an event of that run (a chat model's run
    manager has no get_child)."""
    parent: UUID = run.run_id
    return cls(handlers=run.handlers, inheritable_handlers=run.inheritable_handlers, parent_run_id=parent,
               tags=run.tags, inheritable_tags=run.inheritable_tags, metadata=run.metadata,
               inheritable_metadata=run.inheritable_metadata)
