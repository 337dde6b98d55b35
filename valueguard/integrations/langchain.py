"""LangChain integration: a guarded chat model, an LCEL step, and (lazily) an agent middleware.

    guarded = guard.wrap(chat_model)                     # GuardedChatModel: a drop-in chat model
    chain = prompt | chat_model | guard.as_runnable() | StrOutputParser()
    agent = create_agent(model, tools, middleware=[ValueGuardMiddleware(guard)])

Only text content is checked: tool calls, and the structured data in their arguments, pass unchecked and intact.
A message with no text (a pure tool call) is passed on without a check.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import structlog
from pydantic import ConfigDict, Field, model_validator

try:
    from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    # AIMessage is also what langchain_agent imports from here: langchain_core is imported in this module only.
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
    from langchain_core.messages.tool import tool_call_chunk
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from langchain_core.outputs.chat_generation import merge_chat_generation_chunks
    from langchain_core.runnables import Runnable, RunnableBinding, RunnableLambda
    from langchain_core.runnables.config import var_child_runnable_config
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("valueguard's LangChain integration needs langchain-core: "
                      "pip install 'valueguard[langchain]'") from e

from valueguard.guard import ValueGuard, Verdict

log = structlog.get_logger("valueguard.langchain")

# Sentence end: terminal punctuation (maybe closed by a quote or bracket) before whitespace or the end, or a newline.
_SENTENCE_END = re.compile(r"[.!?…][\"'’”)\]]*(?:\s|$)|\n")
# The embedder reads about 1,000 characters from a text's start (README, "Benchmarks"), so incremental checks
# look at the trailing window of that size: on a long response, the accumulated text would hide new sentences.
WINDOW_CHARS = 1000
# On a rewrite or block these additional_kwargs are kept (they carry tool calls); others may hold the flagged
# response's reasoning or refusal text and are dropped.
_TOOL_KWARGS = ("tool_calls", "function_call")
_CALL_TIME_PARAMS = ("temperature", "max_tokens")


# --- message helpers (shared with the agent middleware) ----------------------------------------------------

def last_human_text(messages: Sequence[Any]) -> str | None:
    return next((str(m.text) for m in reversed(messages) if isinstance(m, HumanMessage)), None)


def verdict_summary(verdict: Verdict) -> dict[str, Any]:
    return {"action": verdict.action, "rules": list(verdict.rules), "decision_id": verdict.decision_id,
            "values": dict(verdict.values), "confidence": verdict.confidence, "error": verdict.error}


def replace_text(content: str | list, text: str) -> str | list:
    """`content` with its text replaced by `text`; non-text blocks (tool use) are kept, reasoning is dropped."""
    if isinstance(content, str):
        return text
    kept = [b for b in content if isinstance(b, dict) and b.get("type") not in ("text", "reasoning", "thinking")]
    return [{"type": "text", "text": text}, *kept]


def guarded_message(message: BaseMessage, verdict: Verdict | None) -> BaseMessage:
    """The message to hand on: tool calls and ids kept, text replaced when the verdict changed it."""
    if verdict is None:
        return message
    metadata = {**message.response_metadata, "valueguard": verdict_summary(verdict)}
    update: dict[str, Any] = {"response_metadata": metadata}
    if verdict.text != str(message.text):
        update["content"] = replace_text(message.content, verdict.text)
        update["additional_kwargs"] = {k: v for k, v in message.additional_kwargs.items() if k in _TOOL_KWARGS}
    return message.model_copy(update=update)


def quiet_rewriter(model: Any) -> Callable[[str], str]:
    """A rewriter that calls `model` outside the caller's callbacks: a revision is checked before it is handed
    on, so its tokens must not reach stream_events or an agent's message stream while it is being written."""
    def rewrite(instruction: str) -> str:
        out = model.invoke(instruction, config={"callbacks": []})
        return str(getattr(out, "text", out))
    return rewrite


def _text_of(chunk: ChatGenerationChunk) -> str:
    return str(chunk.message.text)


def _with_verdict(chunk: ChatGenerationChunk, verdict: Verdict | None) -> ChatGenerationChunk:
    if verdict is None:
        return chunk
    meta = {**chunk.message.response_metadata, "valueguard": verdict_summary(verdict)}
    return ChatGenerationChunk(message=chunk.message.model_copy(update={"response_metadata": meta}),
                               generation_info=chunk.generation_info)


def _verdict_chunk(verdict: Verdict, like: AIMessageChunk | None = None, prefix: str = "") -> ChatGenerationChunk:
    """One chunk with the verdict's text; with `like`, that message's tool calls and metadata are kept."""
    like = like if like is not None else AIMessageChunk(content="")
    return ChatGenerationChunk(message=AIMessageChunk(
        content=replace_text(like.content, prefix + verdict.text), id=like.id, chunk_position="last",
        tool_call_chunks=like.tool_call_chunks, usage_metadata=like.usage_metadata,
        additional_kwargs={k: v for k, v in like.additional_kwargs.items() if k in _TOOL_KWARGS},
        response_metadata={**like.response_metadata, "valueguard": verdict_summary(verdict)}))


def _as_chunk(result: ChatResult) -> ChatGenerationChunk:
    """A whole response as one chunk, for inner models that do not stream."""
    message = result.generations[0].message
    calls = [tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
             for i, c in enumerate(getattr(message, "tool_calls", []))]
    return ChatGenerationChunk(message=AIMessageChunk(
        content=message.content, id=message.id, tool_call_chunks=calls, chunk_position="last",
        additional_kwargs=message.additional_kwargs, response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None)))


def _hold_release(chunks: list[ChatGenerationChunk], merged: ChatGenerationChunk | None,
                  verdict: Verdict | None) -> list[ChatGenerationChunk]:
    """Hold-back mode: the original chunks when the verdict kept the text, else one chunk with the verdict's."""
    if verdict is None or merged is None:
        return chunks
    if verdict.text == _text_of(merged):
        return [*chunks[:-1], _with_verdict(chunks[-1], verdict)]
    return [_verdict_chunk(verdict, like=merged.message)]  # type: ignore[arg-type]


class _SentenceGate:
    """Incremental mode's state: chunks held since the last check and the text already released."""

    def __init__(self) -> None:
        self.held: list[ChatGenerationChunk] = []
        self.held_text = ""
        self.released = ""
        self.stopped = False
        self.last_verdict: Verdict | None = None

    def hold(self, chunk: ChatGenerationChunk) -> bool:
        """Keep the chunk; True when it ends a sentence, so a check is due."""
        self.held.append(chunk)
        self.held_text += _text_of(chunk)
        return bool(_SENTENCE_END.search(_text_of(chunk)))

    def window(self) -> str:
        text = self.released + self.held_text
        if len(text) <= WINDOW_CHARS:
            return text
        tail = text[-WINDOW_CHARS:]
        boundary = _SENTENCE_END.search(tail)  # start the window at a sentence, not mid-word
        return tail[boundary.end():] if boundary and tail[boundary.end():].strip() else tail

    def release(self, verdict: Verdict | None, checked: str, final: bool) -> list[ChatGenerationChunk]:
        if verdict is not None and verdict.text != checked:
            # Flagged: nothing held goes out; the verdict's text stands in for the rest of the response.
            self.stopped = True
            sep = " " if self.released and not self.released[-1].isspace() else ""
            return [_verdict_chunk(verdict, prefix=sep)]
        self.last_verdict = verdict or self.last_verdict
        out, self.held = self.held, []
        self.released, self.held_text = self.released + self.held_text, ""
        if final and self.last_verdict is not None:
            # The verdict rides on the last chunk, or on an empty one when everything is already out.
            out = [*out[:-1], _with_verdict(out[-1], self.last_verdict)] if out else [
                ChatGenerationChunk(message=AIMessageChunk(
                    content="", response_metadata={"valueguard": verdict_summary(self.last_verdict)}))]
        return out


class GuardedChatModel(BaseChatModel):
    """A chat model that checks every response of `inner` with a ValueGuard before handing it on.

    A drop-in for `inner` (invoke, ainvoke, batch, stream, astream, astream_events). Each response's text is checked
    with `guard.check(text, prompt=<last human message>, rewriter=<inner>)` (the revisions are written by `inner`,
    called outside the caller's callbacks): the text is replaced by the verdict's (the original, an accepted
    revision or the block message), tool calls and other fields are kept, and the verdict's summary goes into
    `response_metadata["valueguard"]`. With `on_block: raise` in the policy a block raises
    `valueguard.actions.ResponseBlocked`.

    Streaming, `stream_mode="hold"` (default): the whole inner stream is read first and checked; then the original
    chunks go out when the text is kept, else one chunk with the verdict's text. No unchecked token ever reaches the
    caller or the callbacks; the price is that the first token arrives only when the response is complete.

    `stream_mode="incremental"`: chunks are held until a sentence ends; then the text so far (its last ~1,000
    characters, the embedder's reach, so earlier sentences are context) is checked and the held chunks go out.
    When a check flags, nothing more of the original goes out: the verdict's text (block message or revision)
    follows, and the rest of the inner stream, tool calls included, is dropped. What slips through: sentences
    released before a later one flags stay with the caller (a harmful second sentence is caught; the harmless first
    one, already out, is not taken back, and a sentence that is only harmful in the light of a later one is out
    before that one arrives). A revision covers the whole checked window, so it may repeat released text. Each
    check is a decision of its own (own decision_id in the log); the last one goes into the metadata.

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
    stream_mode: Literal["hold", "incremental"] = Field(
        default="hold", description="hold: check the whole response before any chunk; incremental: per sentence.")
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

    def _check(self, text: str, prompt: str | None) -> Verdict | None:
        return self.guard.check(text, prompt, rewriter=quiet_rewriter(self.inner)) if text.strip() else None

    async def _acheck(self, text: str, prompt: str | None) -> Verdict | None:
        return await self.guard.acheck(text, prompt, rewriter=quiet_rewriter(self.inner)) if text.strip() else None

    def _checked_result(self, result: ChatResult, verdicts: list[Verdict | None]) -> ChatResult:
        generations = [ChatGeneration(message=guarded_message(g.message, v), generation_info=g.generation_info)
                       for g, v in zip(result.generations, verdicts)]
        return ChatResult(generations=generations, llm_output=result.llm_output)

    # run_manager is never forwarded to inner: it would emit inner's tokens to the callbacks before the check.

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        result = self.inner._generate(messages, stop=self._stop(stop), **kwargs)
        prompt = last_human_text(messages)
        return self._checked_result(result, [self._check(str(g.message.text), prompt) for g in result.generations])

    async def _agenerate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                         run_manager: AsyncCallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        result = await self.inner._agenerate(messages, stop=self._stop(stop), **kwargs)
        prompt = last_human_text(messages)
        return self._checked_result(result, [await self._acheck(str(g.message.text), prompt)
                                             for g in result.generations])

    # --- streaming -----------------------------------------------------------------------------------------

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
        prompt = last_human_text(messages)
        source = self._inner_chunks(messages, stop, kwargs)
        if self.stream_mode == "hold":
            chunks = list(source)
            merged = merge_chat_generation_chunks(chunks)
            out = _hold_release(chunks, merged, self._check(_text_of(merged), prompt) if merged else None)
        else:
            out = self._incremental(source, prompt)
        for chunk in out:
            if run_manager:
                run_manager.on_llm_new_token(_text_of(chunk), chunk=chunk)
            yield chunk

    def _incremental(self, source: Iterator[ChatGenerationChunk], prompt: str | None) -> Iterator:
        gate = _SentenceGate()
        try:
            for chunk in source:
                if gate.hold(chunk):
                    checked = gate.window()
                    yield from gate.release(self._check(checked, prompt), checked, final=False)
                    if gate.stopped:
                        return
            checked = gate.window() if gate.held_text.strip() else ""
            yield from gate.release(self._check(checked, prompt) if checked else None, checked, final=True)
        finally:
            getattr(source, "close", lambda: None)()  # stop the inner model when a check flagged

    async def _astream(self, messages: list[BaseMessage], stop: list[str] | None = None,
                       run_manager: AsyncCallbackManagerForLLMRun | None = None,
                       **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        prompt = last_human_text(messages)
        source = self._ainner_chunks(messages, stop, kwargs)
        if self.stream_mode == "hold":
            chunks = [chunk async for chunk in source]
            merged = merge_chat_generation_chunks(chunks)
            out = _hold_release(chunks, merged, await self._acheck(_text_of(merged), prompt) if merged else None)
            for chunk in out:
                if run_manager:
                    await run_manager.on_llm_new_token(_text_of(chunk), chunk=chunk)
                yield chunk
            return
        gate = _SentenceGate()
        try:
            async for chunk in source:
                if gate.hold(chunk):
                    checked = gate.window()
                    for released in gate.release(await self._acheck(checked, prompt), checked, final=False):
                        if run_manager:
                            await run_manager.on_llm_new_token(_text_of(released), chunk=released)
                        yield released
                    if gate.stopped:
                        return
            checked = gate.window() if gate.held_text.strip() else ""
            for released in gate.release(await self._acheck(checked, prompt) if checked else None, checked, True):
                if run_manager:
                    await run_manager.on_llm_new_token(_text_of(released), chunk=released)
                yield released
        finally:
            await source.aclose()


# --- LCEL ---------------------------------------------------------------------------------------------------

def _output_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return str(value.text)
    raise TypeError(f"the valueguard step takes an AIMessage or a str, got {type(value).__name__}")


def _checked_output(value: Any, verdict: Verdict) -> Any:
    return verdict.text if isinstance(value, str) else guarded_message(value, verdict)


@contextmanager
def _outside_the_run() -> Iterator[None]:
    """Runnables called in here (the guard's own rewriter) do not join the caller's run: revisions being checked
    would otherwise stream to its callbacks (astream_events) before the check."""
    token = var_child_runnable_config.set(None)
    try:
        yield
    finally:
        var_child_runnable_config.reset(token)


def guard_runnable(guard: ValueGuard) -> Runnable:
    """An LCEL step: an AIMessage (text replaced, tool calls kept) or a str in, the checked one out.

    The step sees no prompt, so checks are made without one, and rewrites use the guard's own `rewriter` (none:
    a rewrite becomes a block). Streamed, the step gathers the whole message first: nothing unchecked passes.
    """
    def check_output(value: Any) -> Any:
        text = _output_text(value)
        if not text.strip():
            return value
        with _outside_the_run():
            return _checked_output(value, guard.check(text))

    async def acheck_output(value: Any) -> Any:
        text = _output_text(value)
        if not text.strip():
            return value
        with _outside_the_run():  # acheck's worker thread copies this context
            return _checked_output(value, await guard.acheck(text))

    return RunnableLambda(check_output, afunc=acheck_output, name="valueguard")


def __getattr__(name: str) -> Any:
    # The middleware needs the `langchain` package, which this module must not require.
    if name == "ValueGuardMiddleware":
        from valueguard.integrations.langchain_agent import ValueGuardMiddleware

        return ValueGuardMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
