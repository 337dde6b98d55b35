"""LangChain: `guard.wrap(model)` (chat_model.py), the v1 agent middleware (agent.py), an LCEL step (lcel.py) and
the messages and events they share (messages.py). Needs the `langchain` extra.

ValueGuardMiddleware is imported lazily: it needs the `langchain` package, which the chat model wrapper does not.
"""

from __future__ import annotations

from typing import Any

from valueguard.integrations.langchain.chat_model import GuardedChatModel, wrap_chat_model

__all__ = ["GuardedChatModel", "ValueGuardMiddleware", "wrap_chat_model"]


def __getattr__(name: str) -> Any:
    if name == "ValueGuardMiddleware":
        from valueguard.integrations.langchain.agent import ValueGuardMiddleware

        return ValueGuardMiddleware
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
