"""`@guard.guarded`: check what an existing LLM call returns or streams, without changing its signature.

Works on sync, async, generator and async-generator functions. A result may be a str, a LangChain message
(anything with a str `.content` and `model_copy`), an OpenAI SDK chat completion (`choices[0].message.content`)
or an `llm` Response (`.text()`); a streamed chunk may be a str, a message chunk (`.content`) or an OpenAI
chunk (`choices[0].delta.content`). The same type comes back, with the checked text.

Streaming: `stream="hold"` (default) or `"incremental"`, the behaviour of valueguard.guard.streaming's gate (the same
as the LangChain wrapper's): hold sends nothing before the whole response is checked; incremental releases text
per checked sentence, holds tool calls to the end, checks the whole text once at the end and ends the stream with
the block message on a flag after text was released (a rewrite counts as a block).

A flagged response (rewrite or block) never carries the original's tool calls: the replacement has none.
`on_verdict=fn` calls fn(verdict) for every check made (each window in incremental mode, then the whole text).
"""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from valueguard.guard.rewrite import ResponseBlocked, as_rewriter
from valueguard.guard.streaming import STREAM_MODES, Release, StreamGate, StreamMode

PROMPT_ARGUMENTS = ("prompt", "question", "query", "messages", "message", "input", "text")
_TOOL_FIELDS = ("tool_calls", "invalid_tool_calls", "tool_call_chunks")


# --- prompt discovery --------------------------------------------------------------------------------------

def _last_user_text(messages: Any) -> str | None:
    for m in reversed(list(messages)):
        role = m.get("role") if isinstance(m, dict) else getattr(m, "type", None)
        if role in ("user", "human"):
            content = m.get("content") if isinstance(m, dict) else getattr(m, "content", None)
            return content if isinstance(content, str) else None
    return None


def prompt_finder(fn: Callable[..., Any], prompt: str | Callable[..., str | None] | None) -> Callable[..., str | None]:
    """How the prompt is found: a callable given the call's arguments, an argument name, or by default the
    first of PROMPT_ARGUMENTS present (a list of chat messages gives its last user message)."""
    if callable(prompt):
        return prompt
    sig = inspect.signature(fn)
    if prompt is not None and prompt not in sig.parameters:
        raise ValueError(f"{fn.__qualname__} has no argument {prompt!r} to take the prompt from")
    names = [prompt] if prompt else [n for n in PROMPT_ARGUMENTS if n in sig.parameters]

    def find(*args: Any, **kwargs: Any) -> str | None:
        try:
            bound = sig.bind_partial(*args, **kwargs).arguments
        except TypeError:
            return None
        for name in names:
            value = bound.get(name)
            if isinstance(value, str):
                return value
            if isinstance(value, (list, tuple)):
                return _last_user_text(value)
        return None

    return find


# --- result and chunk adapters -----------------------------------------------------------------------------

def result_text(result: Any) -> str:
    if isinstance(result, str):
        return result
    if hasattr(result, "choices"):  # OpenAI SDK chat completion
        return result.choices[0].message.content or ""
    if isinstance(getattr(result, "content", None), str):  # LangChain message
        return result.content
    if callable(getattr(result, "text", None)):  # llm Response
        return result.text()
    raise TypeError(f"@guarded cannot read a response of type {type(result).__name__}: return a str, a LangChain "
                    "message, an OpenAI chat completion or an llm Response")


def with_text(result: Any, text: str) -> Any:
    """A copy of `result` carrying `text` and no tool call (the original when the text is unchanged)."""
    if isinstance(result, str) or result_text(result) == text:
        return text if isinstance(result, str) else result
    if hasattr(result, "choices"):
        new = result.model_copy(deep=True) if hasattr(result, "model_copy") else copy.deepcopy(result)
        choice = new.choices[0]
        choice.message.content = text
        _drop_openai_calls(choice.message)
        if getattr(choice, "finish_reason", None) in ("tool_calls", "function_call"):
            choice.finish_reason = "stop"
        return new
    if isinstance(getattr(result, "content", None), str):
        return result.model_copy(update={"content": text, **_no_message_calls(result)})
    return _llm_response_with_text(result, text)


def _drop_openai_calls(message_or_delta: Any) -> None:
    for name in ("tool_calls", "function_call"):
        if getattr(message_or_delta, name, None) is not None:
            setattr(message_or_delta, name, None)


def _no_message_calls(message: Any) -> dict[str, Any]:
    """The update that takes every tool call off a LangChain message (a flagged turn must not act)."""
    update: dict[str, Any] = {name: [] for name in _TOOL_FIELDS if getattr(message, name, None)}
    kwargs = getattr(message, "additional_kwargs", None)
    if isinstance(kwargs, dict) and ("tool_calls" in kwargs or "function_call" in kwargs):
        update["additional_kwargs"] = {k: v for k, v in kwargs.items() if k not in ("tool_calls", "function_call")}
    return update


def _llm_response_with_text(response: Any, text: str) -> Any:
    """An `llm` Response carrying `text`: text() and iteration read `_chunks`; messages() and log_to_db() read
    `_stream_events`, so both are replaced, or the logs database would keep the unchecked text."""
    response.text()  # finish it: a lazy response would otherwise run the model again
    new = copy.copy(response)
    new._chunks = [text]
    if hasattr(response, "_stream_events"):
        from llm.parts import StreamEvent

        new._stream_events = [StreamEvent(type="text", chunk=text, part_index=0)]
    if getattr(response, "_tool_calls", None):
        new._tool_calls = []
    return new


def chunk_text(chunk: Any) -> str:
    if isinstance(chunk, str):
        return chunk
    if hasattr(chunk, "choices"):
        return (chunk.choices[0].delta.content or "") if chunk.choices else ""
    content = getattr(chunk, "content", None)
    if isinstance(content, str):
        return content
    raise TypeError(f"@guarded cannot read a streamed chunk of type {type(chunk).__name__}")


def chunk_acts(chunk: Any) -> bool:
    """Whether a streamed chunk carries (part of) a tool call."""
    if isinstance(chunk, str):
        return False
    if hasattr(chunk, "choices"):
        delta = chunk.choices[0].delta if chunk.choices else None
        return bool(delta is not None and (getattr(delta, "tool_calls", None) or getattr(delta, "function_call", None)))
    return bool(_no_message_calls(chunk))


def chunk_with_text(template: Any, text: str) -> Any:
    """A chunk like `template` with `text` and no tool call: the stand-in for a flagged response."""
    if isinstance(template, str):
        return text
    if hasattr(template, "choices"):
        new = template.model_copy(deep=True)
        new.choices[0].delta.content = text
        _drop_openai_calls(new.choices[0].delta)
        return new
    return template.model_copy(update={"content": text, **_no_message_calls(template)})


# --- the decorator -----------------------------------------------------------------------------------------

class _Checker:
    """The guard's check for one call: the prompt and rewriter bound, on_verdict told of every verdict."""

    def __init__(self, guard: Any, prompt: str | None, rewriter: Any, on_verdict: Callable[[Any], Any] | None):
        self.guard, self.prompt, self.rewriter, self.on_verdict = guard, prompt, rewriter, on_verdict

    def _told(self, verdict: Any) -> Any:
        if self.on_verdict is not None:
            self.on_verdict(verdict)
        return verdict

    def check(self, text: str) -> Any:
        try:
            return self._told(self.guard.check(text, self.prompt, rewriter=self.rewriter))
        except ResponseBlocked as e:
            self._told(e.verdict)
            raise

    async def acheck(self, text: str) -> Any:
        try:
            return self._told(await self.guard.acheck(text, self.prompt, rewriter=self.rewriter))
        except ResponseBlocked as e:
            self._told(e.verdict)
            raise

    def gate(self, mode: StreamMode) -> StreamGate:
        return StreamGate(mode, block_message=self.guard.policy.defaults.block_message)


def _released(release: Release, template: Any) -> list[Any]:
    if release.replacement is None:
        return release.chunks
    return [chunk_with_text(template if template is not None else "", release.replacement)]


def _gated(checker: _Checker, source: Iterator[Any], mode: StreamMode) -> Iterator[Any]:
    gate, first = checker.gate(mode), None
    try:
        for chunk in source:
            first = chunk if first is None else first
            window = gate.push(chunk, chunk_text(chunk), acts=chunk_acts(chunk))
            if window is not None:
                release = gate.decide(checker.check(window))
                yield from _released(release, first)
                if release.done:
                    return
        yield from _released(gate.decide(checker.check(gate.finish())), first)
    finally:
        getattr(source, "close", lambda: None)()  # stops the model when a check flagged


async def _agated(checker: _Checker, source: AsyncIterator[Any], mode: StreamMode) -> AsyncIterator[Any]:
    gate, first = checker.gate(mode), None
    try:
        async for chunk in source:
            first = chunk if first is None else first
            window = gate.push(chunk, chunk_text(chunk), acts=chunk_acts(chunk))
            if window is not None:
                release = gate.decide(await checker.acheck(window))
                for out in _released(release, first):
                    yield out
                if release.done:
                    return
        for out in _released(gate.decide(await checker.acheck(gate.finish())), first):
            yield out
    finally:
        aclose = getattr(source, "aclose", None)
        if aclose is not None:
            await aclose()


def guarded(guard: Any, fn: Callable[..., Any] | None = None, *, prompt: str | Callable[..., str | None] | None = None,
            rewriter: object | None = None, stream: StreamMode = "hold",
            on_verdict: Callable[[Any], Any] | None = None) -> Any:
    if fn is None:
        return lambda f: guarded(guard, f, prompt=prompt, rewriter=rewriter, stream=stream, on_verdict=on_verdict)
    if stream not in STREAM_MODES:
        raise ValueError("stream must be 'hold' or 'incremental'")
    if on_verdict is not None and not callable(on_verdict):
        raise TypeError(f"on_verdict is a callable taking a Verdict, got {on_verdict!r}")
    find_prompt = prompt_finder(fn, prompt)
    rw = as_rewriter(rewriter) if rewriter is not None else None

    def checker(args: Any, kwargs: Any) -> _Checker:
        return _Checker(guard, find_prompt(*args, **kwargs), rw, on_verdict)

    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            async for out in _agated(checker(args, kwargs), fn(*args, **kwargs), stream):
                yield out
        return agen_wrapper

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            yield from _gated(checker(args, kwargs), fn(*args, **kwargs), stream)
        return gen_wrapper

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            result = await fn(*args, **kwargs)
            return with_text(result, (await checker(args, kwargs).acheck(result_text(result))).text)
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        return with_text(result, checker(args, kwargs).check(result_text(result)).text)
    return wrapper
