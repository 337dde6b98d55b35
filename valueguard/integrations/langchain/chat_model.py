"""LangChain integration: a guarded chat model, an LCEL step, and (lazily) an agent middleware.

    guarded = guard.wrap(chat_model)                     # GuardedChatModel: a drop-in chat model
    chain = prompt | chat_model | guard.as_runnable() | StrOutputParser()
    agent = create_agent(model, tools, middleware=[ValueGuardMiddleware(guard)])

Only text content is checked; a message with no text (a pure tool call) gets `allow` ("empty response"). A
flagged message (rewrite or block) never carries a tool call on. The user guide is docs/langchain.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from pydantic import ConfigDict, Field, model_validator

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage
    from langchain_core.messages.tool import tool_call_chunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.runnables import Runnable, RunnableBinding
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("valueguard's LangChain integration needs langchain-core: "
                      "pip install 'valueguard[langchain]'") from e

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.integrations.langchain.lcel import guard_runnable
from valueguard.integrations.langchain.messages import (
    AIMessageChunk,
    OnVerdict,
    Reporter,
    guarded_message,
    last_human_text,
    quiet_rewriter,
    verdict_summary,
)
from valueguard.logs import get_logger
from valueguard.guard.streaming import Release, StreamGate, StreamMode

log = get_logger("valueguard.langchain")

_CALL_TIME_PARAMS = ("temperature", "max_tokens")
__all__ = ["GuardedChatModel", "ValueGuardMiddleware", "guard_runnable", "wrap_chat_model"]


# --- streaming helpers ---------------------------------------------------------------------------------------

def _text_of(chunk: ChatGenerationChunk) -> str:
    return str(chunk.message.text)


def _acts(chunk: ChatGenerationChunk) -> bool:
    message = chunk.message
    return bool(getattr(message, "tool_call_chunks", None) or getattr(message, "tool_calls", None)
                or getattr(message, "invalid_tool_calls", None) or "tool_calls" in message.additional_kwargs
                or "function_call" in message.additional_kwargs)


def _with_verdict(chunk: ChatGenerationChunk, verdict: Verdict) -> ChatGenerationChunk:
    meta = {**chunk.message.response_metadata, "valueguard": verdict_summary(verdict)}
    return ChatGenerationChunk(message=chunk.message.model_copy(update={"response_metadata": meta}),
                               generation_info=chunk.generation_info)


def _released(release: Release, verdict: Verdict, first: ChatGenerationChunk | None) -> list[ChatGenerationChunk]:
    """The chunks to send on: the originals (the last one carrying the verdict when the stream is done), or one
    stand-in with the replacement text and nothing else of the flagged response: no tool call, no kwargs."""
    if release.replacement is not None:
        message_id = first.message.id if first is not None else None
        return [ChatGenerationChunk(message=AIMessageChunk(
            content=release.replacement, id=message_id, chunk_position="last",
            response_metadata={"valueguard": verdict_summary(verdict)}))]
    if not release.done:
        return release.chunks
    if release.chunks:
        return [*release.chunks[:-1], _with_verdict(release.chunks[-1], verdict)]
    return [ChatGenerationChunk(message=AIMessageChunk(content="", chunk_position="last",
                                                       response_metadata={"valueguard": verdict_summary(verdict)}))]


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    """A whole response as one chunk, for inner models that do not stream."""
    message = result.generations[0].message
    calls = [tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
             for i, c in enumerate(getattr(message, "tool_calls", []))]
    return ChatGenerationChunk(message=AIMessageChunk(
        content=message.content, id=message.id, tool_call_chunks=calls, chunk_position="last",
        additional_kwargs=message.additional_kwargs, response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None)))


class GuardedChatModel(BaseChatModel):
    """A chat model that checks every response of `inner` with a ValueGuard before handing it on.

    A drop-in for `inner` (invoke, ainvoke, batch, stream, astream, astream_events). Each response's text is checked
    with `guard.check(text, prompt=<last human message>, rewriter=<inner>)` (the revisions are written by `inner`,
    called outside the caller's callbacks). Allowed (allow, log): the message as it came. Flagged (rewrite,
    block): the verdict's text (the accepted revision or the block message) and no tool call, so a flagged turn
    never acts. Every check is reported: `on_verdict(verdict)`, the custom event `valueguard_verdict`, and the
    summary in `response_metadata["valueguard"]` (and in `llm_output` when not streamed). With `on_block: raise`
    in the policy a block raises `valueguard.ResponseBlocked`.

    Streaming follows valueguard.guard.streaming's gate: `stream_mode="hold"` (default) sends nothing before the whole
    response is checked; `"incremental"` sends checked sentences early and holds tool calls to the end.

    Tools: `bind_tools` binds on `inner` and re-binds the resulting arguments on this wrapper, so tool-bound calls
    are still checked. `with_structured_output` is BaseChatModel's default (tool calling through `bind_tools`): the
    call goes through the check, but a structured answer lives in tool-call arguments, which are not checked.

    Parameters: `temperature` and `max_tokens` are set on a copy of `inner` when it has such a field; `stop` is
    passed on each call; `timeout` and `max_retries` (and anything else) must be set on `inner` itself, where its
    client is built. The inner model's own callbacks, cache and rate limiter are not used (the wrapper's are).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseChatModel = Field(description="The chat model whose responses are checked.")
    guard: ValueGuard = Field(exclude=True, description="The guard that checks each response.")
    stream_mode: StreamMode = Field(
        default="hold", description="hold: check the whole response before any chunk; incremental: per sentence.")
    on_verdict: OnVerdict | None = Field(default=None, exclude=True,
                                         description="Called with the Verdict of every check.")
    temperature: float | None = Field(default=None, description="Set on a copy of inner when it has the field.")
    max_tokens: int | None = Field(default=None, description="Set on a copy of inner when it has the field.")
    stop: list[str] | None = Field(default=None, description="Stop sequences passed to inner on each call.")
    timeout: float | None = Field(default=None, description="Not forwarded: set it on inner.")
    max_retries: int | None = Field(default=None, description="Not forwarded: set it on inner.")

    @model_validator(mode="before")
    @classmethod
    def _forward_standard_params(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not isinstance(data.get("inner"), BaseChatModel):
            return data
        inner = data["inner"]
        updates = {k: data[k] for k in _CALL_TIME_PARAMS if data.get(k) is not None and k in type(inner).model_fields}
        ignored = [k for k in (*_CALL_TIME_PARAMS, "timeout", "max_retries") if data.get(k) is not None
                   and k not in updates]
        if ignored:
            log.warning("params not forwarded", params=ignored, inner=inner._llm_type)
        return {**data, "inner": inner.model_copy(update=updates)} if updates else data

    @property
    def _llm_type(self) -> str:
        return "valueguard"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"inner": self.inner._llm_type, "inner_params": self.inner._identifying_params,
                "policy": self.guard.policy.name, "policy_version": self.guard.policy.version,
                "stream_mode": self.stream_mode}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = self.inner._get_ls_params(stop=stop or self.stop, **kwargs)
        if "ls_model_name" not in params:  # inner has no model name of its own: name it by its type
            model = kwargs.get("model")
            params["ls_model_name"] = model if isinstance(model, str) else self.inner._llm_type
        return params

    def bind_tools(self, tools: Sequence[Any], *, tool_choice: Any = None, **kwargs: Any) -> Runnable:
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        bound = self.inner.bind_tools(tools, **kwargs)
        if not isinstance(bound, RunnableBinding) or bound.bound is not self.inner:
            raise NotImplementedError(f"{type(self.inner).__name__}.bind_tools returned {type(bound).__name__}, not a "
                                      "binding of the model: its tool calls could not be checked")
        # The inner binding would call the inner model directly; its arguments go on the wrapper instead.
        return self.bind(**bound.kwargs)

    # --- checking ------------------------------------------------------------------------------------------

    def _stop(self, stop: list[str] | None) -> list[str] | None:
        return stop or self.stop or None

    def _reporter(self, run: Any) -> Reporter:
        return Reporter(self.guard, self.on_verdict, run=run)

    def _checked_result(self, result: ChatResult, verdicts: list[Verdict]) -> ChatResult:
        generations = [ChatGeneration(message=guarded_message(g.message, v), generation_info=g.generation_info)
                       for g, v in zip(result.generations, verdicts)]
        # Run metadata and tags are fixed when the run starts; the run's output is where a tracer sees the verdict.
        llm_output = {**(result.llm_output or {}), "valueguard": [verdict_summary(v) for v in verdicts]}
        return ChatResult(generations=generations, llm_output=llm_output)

    def _combine_llm_outputs(self, llm_outputs: list[dict | None]) -> dict:
        return {"valueguard": [s for out in llm_outputs if out for s in out.get("valueguard", [])]}

    # run_manager is never forwarded to inner: it would emit inner's tokens to the callbacks before the check.

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        result = self.inner._generate(messages, stop=self._stop(stop), **kwargs)
        prompt, reporter, rewriter = last_human_text(messages), self._reporter(run_manager), quiet_rewriter(self.inner)
        return self._checked_result(result, [reporter.check(str(g.message.text), prompt, rewriter)
                                             for g in result.generations])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        result = await self.inner._agenerate(messages, stop=self._stop(stop), **kwargs)
        prompt, reporter, rewriter = last_human_text(messages), self._reporter(run_manager), quiet_rewriter(self.inner)
        return self._checked_result(result, [await reporter.acheck(str(g.message.text), prompt, rewriter)
                                             for g in result.generations])

    # --- streaming: the core gate decides, these loops do the I/O -------------------------------------------

    def _gate(self) -> StreamGate:
        return StreamGate(self.stream_mode, block_message=self.guard.policy.defaults.block_message)

    def _inner_chunks(self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict) -> Iterator:
        if type(self.inner)._stream is BaseChatModel._stream:  # inner does not stream: one chunk
            return iter([_as_chunk(self.inner._generate(messages, stop=self._stop(stop), **kwargs))])
        return self.inner._stream(messages, stop=self._stop(stop), **kwargs)

    async def _ainner_chunks(self, messages: list[BaseMessage], stop: list[str] | None,
                             kwargs: dict) -> AsyncIterator[ChatGenerationChunk]:
        inner_type = type(self.inner)
        if inner_type._astream is BaseChatModel._astream and inner_type._stream is BaseChatModel._stream:
            yield _as_chunk(await self.inner._agenerate(messages, stop=self._stop(stop), **kwargs))
            return
        async for chunk in self.inner._astream(messages, stop=self._stop(stop), **kwargs):
            yield chunk

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        prompt, reporter, rewriter = last_human_text(messages), self._reporter(run_manager), quiet_rewriter(self.inner)
        gate, first, source = self._gate(), None, self._inner_chunks(messages, stop, kwargs)
        try:
            for chunk in source:
                first = chunk if first is None else first
                window = gate.push(chunk, _text_of(chunk), acts=_acts(chunk))
                if window is not None:
                    verdict = reporter.check(window, prompt, rewriter)
                    release = gate.decide(verdict)
                    yield from self._sent(_released(release, verdict, first), run_manager)
                    if release.done:
                        return
            verdict = reporter.check(gate.finish(), prompt, rewriter)
            yield from self._sent(_released(gate.decide(verdict), verdict, first), run_manager)
        finally:
            getattr(source, "close", lambda: None)()  # stops the inner model when a check flagged

    @staticmethod
    def _sent(chunks: list[ChatGenerationChunk], run_manager: Any) -> Iterator[ChatGenerationChunk]:
        for chunk in chunks:
            if run_manager:
                run_manager.on_llm_new_token(_text_of(chunk), chunk=chunk)
            yield chunk

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        prompt, reporter, rewriter = last_human_text(messages), self._reporter(run_manager), quiet_rewriter(self.inner)
        gate, first, source = self._gate(), None, self._ainner_chunks(messages, stop, kwargs)
        try:
            async for chunk in source:
                first = chunk if first is None else first
                window = gate.push(chunk, _text_of(chunk), acts=_acts(chunk))
                if window is not None:
                    verdict = await reporter.acheck(window, prompt, rewriter)
                    release = gate.decide(verdict)
                    for out in _released(release, verdict, first):
                        if run_manager:
                            await run_manager.on_llm_new_token(_text_of(out), chunk=out)
                        yield out
                    if release.done:
                        return
            verdict = await reporter.acheck(gate.finish(), prompt, rewriter)
            for out in _released(gate.decide(verdict), verdict, first):
                if run_manager:
                    await run_manager.on_llm_new_token(_text_of(out), chunk=out)
                yield out
        finally:
            await source.aclose()  # type: ignore[attr-defined]  # an async generator, typed as its iterator


# --- guard.wrap ---------------------------------------------------------------------------------------------

_WRAP_OPTIONS = ("stream_mode", "on_verdict", "temperature", "max_tokens", "stop", "timeout", "max_retries")


def wrap_chat_model(chat_model: Any, guard: ValueGuard, **options: Any) -> Runnable:
    """`guard.wrap(...)`: a GuardedChatModel over `chat_model`, or over the model of a binding of one
    (`model.bind_tools([...])`, `model.bind(stop=[...])`), re-bound with the binding's arguments and config."""
    unknown = sorted(set(options) - set(_WRAP_OPTIONS))
    if unknown:
        hint = " (a rewriter goes on the guard: ValueGuard(..., rewriter=...))" if "rewriter" in unknown else ""
        raise TypeError(f"guard.wrap() got unknown option(s) {', '.join(map(repr, unknown))}{hint}; "
                        f"it takes {', '.join(_WRAP_OPTIONS)}")
    bindings: list[RunnableBinding] = []
    model = chat_model
    while isinstance(model, RunnableBinding):
        bindings.append(model)
        model = model.bound
    if not isinstance(model, BaseChatModel):
        raise TypeError(
            f"guard.wrap() takes a LangChain chat model (a BaseChatModel) or a binding of one "
            f"(model.bind_tools([...]), model.bind(stop=[...])), got {type(chat_model).__name__}"
            + (f" over {type(model).__name__}" if bindings else "")
            + ": for any other runnable, check its output with `runnable | guard.as_runnable()`")
    wrapped: Runnable = GuardedChatModel(inner=model, guard=guard, **options)
    for binding in reversed(bindings):  # innermost first, as they were made
        wrapped = wrapped.bind(**binding.kwargs)
        if binding.config:
            wrapped = wrapped.with_config(binding.config)
    return wrapped
