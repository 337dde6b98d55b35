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
    from langgraph.types import Command
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("ValueGuardMiddleware needs the langchain package (v1): "
                      "pip install 'valueguard[langchain]'") from e

from valueguard.guard import ValueGuard, Verdict
from valueguard.integrations.langchain import (
    AIMessage,
    guarded_message,
    last_human_text,
    quiet_rewriter,
    verdict_summary,
)


class ValueGuardMiddleware(AgentMiddleware):
    """Checks the text of every AI message the agent's model returns, after the model call and before the agent
    acts on it: allow and log hand it on (with the verdict in `response_metadata["valueguard"]`), rewrite hands on
    the revision (written by the agent's model), block hands on the block message. With `on_block: raise` in the
    policy, `ResponseBlocked` ends the agent run with an exception.

    `on_block="replace"` (default): the blocked text is replaced and the message's tool calls are kept, so the agent
    goes on (tool calls are not checked, only text; the next answer is checked again). `on_block="end"`: the message
    is replaced by the block message alone, without tool calls, and the run ends there (`jump_to: end`).

    Streaming: the middleware sees the finished message. An agent streamed with `stream_mode="messages"` sends the
    model's tokens before the check: for streamed agents, give `create_agent` a `guard.wrap(model)` (hold-back) too.
    """

    def __init__(self, guard: ValueGuard, *, on_block: Literal["replace", "end"] = "replace") -> None:
        super().__init__()
        if on_block not in ("replace", "end"):
            raise ValueError(f"on_block is 'replace' or 'end', got {on_block!r}")
        self.guard = guard
        self.on_block = on_block

    def wrap_model_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        response, command = _unwrap(handler(request))
        prompt, rewriter = last_human_text(request.messages), quiet_rewriter(request.model)
        verdicts = [self.guard.check(text, prompt, rewriter=rewriter) if text.strip() else None
                    for text in _texts(response)]
        return self._apply(response, command, verdicts)

    async def awrap_model_call(self, request: Any, handler: Callable[[Any], Awaitable[Any]]) -> Any:
        response, command = _unwrap(await handler(request))
        prompt, rewriter = last_human_text(request.messages), quiet_rewriter(request.model)
        verdicts = [await self.guard.acheck(text, prompt, rewriter=rewriter) if text.strip() else None
                    for text in _texts(response)]
        return self._apply(response, command, verdicts)

    def _apply(self, response: Any, command: Any, verdicts: list[Verdict | None]) -> Any:
        ai_messages = [m for m in response.result if isinstance(m, AIMessage)]
        blocked = next((v for v in verdicts if v is not None and v.blocked), None)
        if blocked is not None and self.on_block == "end":
            first = ai_messages[0]
            stop = AIMessage(content=blocked.text, id=first.id,
                             response_metadata={**first.response_metadata, "valueguard": verdict_summary(blocked)})
            # No tool calls and an explicit jump: the agent loop ends on the block message.
            update = {**(command.update if command is not None and isinstance(command.update, dict) else {}),
                      "jump_to": "end"}
            return ExtendedModelResponse(model_response=ModelResponse(result=[stop]), command=Command(update=update))
        checked = dict(zip(map(id, ai_messages), verdicts))
        result = [guarded_message(m, checked[id(m)]) if id(m) in checked else m for m in response.result]
        checked_response = ModelResponse(result=result, structured_response=response.structured_response)
        return ExtendedModelResponse(checked_response, command) if command is not None else checked_response


def _unwrap(result: Any) -> tuple[Any, Any]:
    """(ModelResponse, the inner middleware's command or None) from any handler result."""
    if isinstance(result, AIMessage):
        return ModelResponse(result=[result]), None
    if isinstance(result, ExtendedModelResponse):
        return result.model_response, result.command
    return result, None


def _texts(response: Any) -> list[str]:
    return [str(m.text) for m in response.result if isinstance(m, AIMessage)]
