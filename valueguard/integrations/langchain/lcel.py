"""The LCEL step, `guard.as_runnable()`: a response in, the checked response out.

A step sees only its own input, never the chain's: in `prompt | model | guard.as_runnable()` it gets the model's
AIMessage and so checks without the user's prompt (and can differ from `guard.wrap(model)`, which sees it). Give it
the prompt one of two ways: a message list (the conversation, ending with the response), or a dict with the prompt
under `prompt_key` and the response under `response_key`, e.g.
`RunnablePassthrough.assign(response=prompt | model) | guard.as_runnable(prompt_key="question")`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.prompt_values import PromptValue
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda
from langchain_core.runnables.config import var_child_runnable_config

from valueguard.guard.guard import ValueGuard, Verdict
from valueguard.integrations.langchain.messages import OnVerdict, Reporter, guarded_message, last_human_text


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, BaseMessage):
        return str(value.text)
    raise TypeError(f"the valueguard step checks an AIMessage or a str, got {type(value).__name__}")


def _prompt_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, PromptValue):
        value = value.to_messages()
    if isinstance(value, (list, tuple)):
        return last_human_text(value)
    raise TypeError(f"the prompt for the valueguard step is a str, a message list or a prompt value, "
                    f"got {type(value).__name__}")


def split_input(value: Any, prompt_key: str | None, response_key: str) -> tuple[Any, str | None]:
    """(the response to check, the user's prompt or None) from what the step was given."""
    if isinstance(value, Mapping):
        if prompt_key is None:
            raise TypeError("the valueguard step got a dict: name its keys with "
                            "guard.as_runnable(prompt_key=..., response_key=...)")
        missing = [k for k in (prompt_key, response_key) if k not in value]
        if missing:
            raise TypeError(f"the valueguard step's input has no key {missing[0]!r} (it has {sorted(value)})")
        return value[response_key], _prompt_text(value[prompt_key])
    if isinstance(value, (list, tuple)) and value and all(isinstance(m, BaseMessage) for m in value):
        return value[-1], last_human_text(value[:-1])
    return value, None


def _checked(value: Any, verdict: Verdict) -> Any:
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


def guard_runnable(guard: ValueGuard, *, prompt_key: str | None = None, response_key: str = "response",
                   on_verdict: OnVerdict | None = None) -> Runnable:
    """An LCEL step: an AIMessage (flagged: text replaced, tool calls dropped) or a str in, the checked one out;
    a message list or a dict (see the module) in, its checked response out. Rewrites use the guard's own
    `rewriter` (none: a rewrite becomes a block). Streamed, the step gathers its whole input first."""
    Reporter(guard, on_verdict)  # refuses a bad on_verdict now, not at the first call

    def check_output(value: Any, config: RunnableConfig) -> Any:
        response, prompt = split_input(value, prompt_key, response_key)
        text = _text(response)
        with _outside_the_run():
            return _checked(response, Reporter(guard, on_verdict, config=config).check(text, prompt))

    async def acheck_output(value: Any, config: RunnableConfig) -> Any:
        response, prompt = split_input(value, prompt_key, response_key)
        text = _text(response)
        with _outside_the_run():  # acheck's worker thread copies this context
            return _checked(response, await Reporter(guard, on_verdict, config=config).acheck(text, prompt))

    return RunnableLambda(check_output, afunc=acheck_output, name="valueguard")
