"""`@guard.guarded`: check what an existing LLM call returns or streams, without changing its signature.

Works on sync, async, generator and async-generator functions. A result may be a str, a LangChain message
(anything with a str `.content` and `model_copy`), an OpenAI SDK chat completion (`choices[0].message.content`)
or an `llm` Response (`.text()`); a streamed chunk may be a str, a message chunk (`.content`) or an OpenAI
chunk (`choices[0].delta.content`). The same type comes back, with the checked text.

Streaming modes:
- "hold" (default): nothing reaches the caller until the whole response is checked; then the original chunks
  (if the text stands) or one chunk with the replacement. Zero unchecked chunks.
- "incremental": text is released at sentence boundaries once the window (the previous sentence plus the new
  ones) is checked. What can slip through: everything released before a later window is flagged (it cannot be
  recalled; the stream then ends with the block message, and a rewrite counts as a block), and harm spread
  over several windows that no single window shows. The whole text is checked once more at the end and logged.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, Literal

from valueguard.actions import as_rewriter

PROMPT_ARGUMENTS = ("prompt", "question", "query", "messages", "message", "input", "text")
_SENTENCE_END = re.compile(r"[.!?](\s|$)|\n")


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
    """A copy of `result` carrying `text` (the original when the text is unchanged)."""
    if isinstance(result, str) or result_text(result) == text:
        return text if isinstance(result, str) else result
    if hasattr(result, "choices"):
        new = result.model_copy(deep=True) if hasattr(result, "model_copy") else copy.deepcopy(result)
        new.choices[0].message.content = text
        return new
    if isinstance(getattr(result, "content", None), str):
        return result.model_copy(update={"content": text})
    return _llm_response_with_text(result, text)


def _llm_response_with_text(response: Any, text: str) -> Any:
    """An `llm` Response carrying `text`: text() and iteration read `_chunks`; messages() and log_to_db() read
    `_stream_events`, so both are replaced, or the logs database would keep the unchecked text."""
    response.text()  # finish it: a lazy response would otherwise run the model again
    new = copy.copy(response)
    new._chunks = [text]
    if hasattr(response, "_stream_events"):
        from llm.parts import StreamEvent

        new._stream_events = [StreamEvent(type="text", chunk=text, part_index=0)]
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


def chunk_with_text(template: Any, text: str) -> Any:
    if isinstance(template, str):
        return text
    if hasattr(template, "choices"):
        new = template.model_copy(deep=True)
        new.choices[0].delta.content = text
        return new
    return template.model_copy(update={"content": text})


# --- the decorator -----------------------------------------------------------------------------------------

def guarded(guard: Any, fn: Callable[..., Any] | None = None, *, prompt: str | Callable[..., str | None] | None = None,
            rewriter: object | None = None, stream: Literal["hold", "incremental"] = "hold") -> Any:
    if fn is None:
        return lambda f: guarded(guard, f, prompt=prompt, rewriter=rewriter, stream=stream)
    if stream not in ("hold", "incremental"):
        raise ValueError("stream must be 'hold' or 'incremental'")
    find_prompt = prompt_finder(fn, prompt)
    rw = as_rewriter(rewriter) if rewriter is not None else None

    if inspect.isasyncgenfunction(fn):
        @functools.wraps(fn)
        async def agen_wrapper(*args: Any, **kwargs: Any) -> Any:
            p = find_prompt(*args, **kwargs)
            if stream == "hold":
                chunks = [c async for c in fn(*args, **kwargs)]
                verdict = await guard.acheck("".join(map(chunk_text, chunks)), p, rewriter=rw)
                for c in _release(chunks, verdict.text):
                    yield c
            else:
                window = _Window(guard, p)
                async for c in fn(*args, **kwargs):
                    for out in await window.apush(c):
                        yield out
                    if window.stopped:
                        return
                for out in await window.aclose():
                    yield out
        return agen_wrapper

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
            p = find_prompt(*args, **kwargs)
            if stream == "hold":
                chunks = list(fn(*args, **kwargs))
                verdict = guard.check("".join(map(chunk_text, chunks)), p, rewriter=rw)
                yield from _release(chunks, verdict.text)
            else:
                window = _Window(guard, p)
                for c in fn(*args, **kwargs):
                    yield from window.push(c)
                    if window.stopped:
                        return
                yield from window.close()
        return gen_wrapper

    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            result = await fn(*args, **kwargs)
            verdict = await guard.acheck(result_text(result), find_prompt(*args, **kwargs), rewriter=rw)
            return with_text(result, verdict.text)
        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        verdict = guard.check(result_text(result), find_prompt(*args, **kwargs), rewriter=rw)
        return with_text(result, verdict.text)
    return wrapper


def _release(chunks: list[Any], text: str) -> list[Any]:
    """After the check: the original chunks if the text stands, else one chunk with the replacement."""
    if "".join(map(chunk_text, chunks)) == text:
        return chunks
    return [chunk_with_text(chunks[0] if chunks else "", text)]


class _Window:
    """Incremental mode: holds chunks until a sentence ends, checks the window, releases or stops."""

    def __init__(self, guard: Any, prompt: str | None) -> None:
        self.guard, self.prompt = guard, prompt
        self.pending: list[Any] = []
        self.previous_sentence = ""
        self.released = ""
        self.stopped = False

    def _ready(self) -> bool:
        return bool(_SENTENCE_END.search("".join(map(chunk_text, self.pending))))

    def _window_text(self) -> str:
        return self.previous_sentence + "".join(map(chunk_text, self.pending))

    def _after(self, verdict: Any) -> list[Any]:
        if verdict.action in ("allow", "log"):
            out, self.pending = self.pending, []
            new = "".join(map(chunk_text, out))
            self.released += new
            self.previous_sentence = new
            return out
        self.stopped = True
        template = self.pending[0] if self.pending else ""
        self.pending = []
        # Released text cannot be recalled; a rewrite would repeat it, so the stream ends with the block text.
        return [chunk_with_text(template, self.guard.policy.defaults.block_message if verdict.action == "rewrite"
                                else verdict.text)]

    def push(self, chunk: Any) -> list[Any]:
        self.pending.append(chunk)
        return self._after(self.guard.check(self._window_text(), self.prompt)) if self._ready() else []

    async def apush(self, chunk: Any) -> list[Any]:
        self.pending.append(chunk)
        return self._after(await self.guard.acheck(self._window_text(), self.prompt)) if self._ready() else []

    def close(self) -> list[Any]:
        out = self._after(self.guard.check(self._window_text(), self.prompt)) if self.pending else []
        if not self.stopped:
            self.guard.check(self.released, self.prompt)  # the whole text, for the log
        return out

    async def aclose(self) -> list[Any]:
        out = self._after(await self.guard.acheck(self._window_text(), self.prompt)) if self.pending else []
        if not self.stopped:
            await self.guard.acheck(self.released, self.prompt)
        return out
