"""Agent middleware: checks each model response inside a LangChain v1 agent (`langchain.agents.create_agent`).

    agent = create_agent(model, tools, middleware=[ValueGuardMiddleware(guard)])

Imported lazily (`from valueguard.integrations.langchain import ValueGuardMiddleware` works too), so that the chat
model wrapper and the LCEL step need only langchain-core.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

try:
    from langchain.agents.middleware import AgentMiddleware, ExtendedModelResponse, ModelResponse
    from langchain_core.language_models import BaseChatModel
    from langgraph.types import Command
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("ValueGuardMiddleware needs the langchain package (v1): "
                      "pip install 'valueguard[langchain]'") from e

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.integrations.langchain.chat_model import GuardedChatModel
from valueguard.integrations.langchain.messages import (
    AIMessage,
    OnVerdict,
    Reporter,
    guarded_message,
    last_human_text,
    quiet_rewriter,
    verdict_summary,
)
from valueguard.guard.streaming import StreamMode


class ValueGuardMiddleware(AgentMiddleware):
    """Checks the text of every AI message the agent's model returns, before the agent acts on it: allow and log
    hand it on (with the verdict in `response_metadata["valueguard"]`), rewrite hands on the revision (written by
    the agent's model), block hands on the block message. A flagged message (rewrite or block) carries no tool
    call, so its tools never run. With `on_block: raise` in the policy, `ResponseBlocked` ends the run.

    `on_block="replace"` (default): the flagged message stands, without its tool calls, and the agent loop goes
    on as it would after any answer without tool calls (it ends there). `on_block="end"`: the message is replaced
    by the block message alone and the run ends there explicitly (`jump_to: end`), whatever other middleware does.

    Streaming: the model call is made through a GuardedChatModel over the request's model (`stream_mode`, hold by
    default), so an agent streamed with `stream_mode="messages"` (or `stream_events(version="v3")`) sends only
    checked tokens. Each check is reported to `on_verdict` and as the `valueguard_verdict` custom event.
    """

    def __init__(self, guard: ValueGuard, *, on_block: Literal["replace", "end"] = "replace",
                 stream_mode: StreamMode = "hold", on_verdict: OnVerdict | None = None) -> None:
        super().__init__()
        if on_block not in ("replace", "end"):
            raise ValueError(f"on_block is 'replace' or 'end', got {on_block!r}")
        if stream_mode not in ("hold", "incremental"):
            raise ValueError(f"stream_mode is 'hold' or 'incremental', got {stream_mode!r}")
        Reporter(guard, on_verdict)  # refuses a bad on_verdict now
        self.guard, self.on_block, self.stream_mode, self.on_verdict = guard, on_block, stream_mode, on_verdict

    def _guarded(self, request: Any, verdicts: list[Verdict]) -> Any:
        """The request with its model wrapped, so that streamed tokens are checked before they go out."""
        model = request.model
        if not isinstance(model, BaseChatModel) or isinstance(model, GuardedChatModel):
            return request

        def told(verdict: Verdict) -> None:
            verdicts.append(verdict)
            if self.on_verdict is not None:
                self.on_verdict(verdict)

        wrapped = GuardedChatModel(inner=model, guard=self.guard, stream_mode=self.stream_mode, on_verdict=told,
                                   profile=model.profile)
        return request.override(model=wrapped)

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        verdicts: list[Verdict] = []
        response, command = _unwrap(handler(self._guarded(request, verdicts)))
        reporter, prompt = Reporter(self.guard, self.on_verdict), last_human_text(request.messages)
        checked = {}
        for message in _ai_messages(response):
            done = _made_here(message, verdicts)
            checked[id(message)] = done if done is not None else reporter.check(
                str(message.text), prompt, quiet_rewriter(request.model))
        return self._apply(response, command, checked)

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        verdicts: list[Verdict] = []
        response, command = _unwrap(await handler(self._guarded(request, verdicts)))
        reporter, prompt = Reporter(self.guard, self.on_verdict), last_human_text(request.messages)
        checked = {}
        for message in _ai_messages(response):
            done = _made_here(message, verdicts)
            checked[id(message)] = done if done is not None else await reporter.acheck(
                str(message.text), prompt, quiet_rewriter(request.model))
        return self._apply(response, command, checked)

    def _apply(self, response: Any, command: Any, checked: dict[int, Verdict]) -> Any:
        blocked = next((v for v in checked.values() if v.blocked), None)
        if blocked is not None and self.on_block == "end":
            first = _ai_messages(response)[0]
            stop = AIMessage(content=blocked.text, id=first.id,
                             response_metadata={**first.response_metadata, "valueguard": verdict_summary(blocked)})
            # No tool calls and an explicit jump: the agent loop ends on the block message.
            update = {**(command.update if command is not None and isinstance(command.update, dict) else {}),
                      "jump_to": "end"}
            return ExtendedModelResponse(model_response=ModelResponse(result=[stop]), command=Command(update=update))
        result = [guarded_message(m, checked[id(m)]) if id(m) in checked else m for m in response.result]
        checked_response = ModelResponse(result=result, structured_response=response.structured_response)
        return ExtendedModelResponse(checked_response, command) if command is not None else checked_response


def _made_here(message: Any, verdicts: list[Verdict]) -> Verdict | None:
    """The verdict our own wrapper gave this message in this call (matched by decision id), if any."""
    summary = message.response_metadata.get("valueguard")
    decision = summary.get("decision_id") if isinstance(summary, dict) else None
    return next((v for v in verdicts if v.decision_id == decision), None) if decision else None


def _unwrap(result: Any) -> tuple[Any, Any]:
    """(ModelResponse, the inner middleware's command or None) from any handler result."""
    if isinstance(result, AIMessage):
        return ModelResponse(result=[result]), None
    if isinstance(result, ExtendedModelResponse):
        return result.model_response, result.command
    return result, None


def _ai_messages(response: Any) -> list[Any]:
    return [m for m in response.result if isinstance(m, AIMessage)]
