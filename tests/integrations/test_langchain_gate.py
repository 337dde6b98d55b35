"""A flagged turn never acts and never leaks, over random chunkings; every check is reported; what wrap() takes.

Real guards (see lc_support); the chat models are fakes that stream exactly the chunks a test scripts.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.outputs.chat_generation import merge_chat_generation_chunks
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from langchain_core.tools import tool
from pydantic import Field

from tests.integrations.lc_support import (
    ALWAYS,
    BENIGN,
    BIAS,
    BLOCK,
    HARMFUL,
    HARMFUL_WORDS,
    NEVER,
    PROMPT,
    REVISION,
    fake,
    make_guard,
    texts_are_separated,  # noqa: F401 - an autouse fixture: the premise of the test policies
)
from valueguard.integrations.langchain import GuardedChatModel
from valueguard.integrations.langchain.agent import ValueGuardMiddleware
from valueguard.integrations.langchain.messages import VERDICT_EVENT

LOCATE = {"name": "get_location", "args": {"person": "her"}, "id": "call_9"}
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class ScriptedChatModel(BaseChatModel):
    """Streams exactly `chunks` (or returns them merged)."""

    chunks: list[Any] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools, **kwargs):
        return self.bind(tools=[t.name for t in tools], **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs) -> ChatResult:
        merged = merge_chat_generation_chunks(list(self._stream(messages)))
        message = AIMessage(content=merged.message.content, tool_calls=merged.message.tool_calls, id="run-1")
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        for c in self.chunks:
            yield ChatGenerationChunk(message=c.model_copy())


def scripted(text: str, cuts: list[int], call_at: int, arg_cut: int) -> ScriptedChatModel:
    """`text` cut at `cuts`, with a get_location call streamed in two parts at position `call_at`."""
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    chunks: list[Any] = [AIMessageChunk(content=text[a:b], id="run-1") for a, b in zip(points, points[1:]) if b > a]
    args = json.dumps(LOCATE["args"])
    cut = arg_cut % len(args)
    call = [AIMessageChunk(content="", id="run-1", tool_call_chunks=[
                tool_call_chunk(name=LOCATE["name"], args=args[:cut], id=LOCATE["id"], index=0)]),
            AIMessageChunk(content="", id="run-1", tool_call_chunks=[
                tool_call_chunk(name=None, args=args[cut:], id=None, index=0)])]
    at = call_at % (len(chunks) + 1)
    return ScriptedChatModel(chunks=[*chunks[:at], *call, *chunks[at:]])


def received_chunks(model: Any, sync: bool) -> list[AIMessageChunk]:
    if sync:
        return list(model.stream(PROMPT))

    async def collect():
        return [c async for c in model.astream(PROMPT)]
    return asyncio.run(collect())


def assert_nothing_acts(chunks: list[AIMessageChunk]) -> None:
    for c in chunks:
        assert not (c.tool_calls or c.tool_call_chunks or c.invalid_tool_calls), c
    merged = sum(chunks[1:], chunks[0])
    assert not merged.tool_calls and not merged.tool_call_chunks


chunking = dict(cuts=st.lists(st.integers(0, 600), max_size=15), call_at=st.integers(0, 40),
                arg_cut=st.integers(0, 40), mode=st.sampled_from(["hold", "incremental"]), sync=st.booleans())


@SETTINGS
@given(**chunking)
def test_a_blocked_turn_sends_no_original_chunk_and_no_tool_call(estimator, cuts, call_at, arg_cut, mode, sync):
    # Every check flags: not one original chunk may reach the caller, in either mode.
    model = GuardedChatModel(inner=scripted(HARMFUL, cuts, call_at, arg_cut), guard=make_guard(estimator, ALWAYS,
                                                                                               "block"),
                             stream_mode=mode)
    chunks = received_chunks(model, sync)
    assert [c.text for c in chunks if c.text] == [BLOCK]
    assert_nothing_acts(chunks)


@SETTINGS
@given(**chunking)
def test_incremental_never_sends_the_tool_call_of_a_turn_flagged_late(estimator, cuts, call_at, arg_cut, mode, sync):
    # The first sentence passes and may go out; the harm comes later: its words and the tool call never do.
    inner = scripted("Good question. " + HARMFUL, cuts, call_at, arg_cut)
    model = GuardedChatModel(inner=inner, guard=make_guard(estimator, BIAS, "block"), stream_mode=mode)
    chunks = received_chunks(model, sync)
    text = "".join(c.text for c in chunks)
    assert text.endswith(BLOCK) and not any(word in text for word in HARMFUL_WORDS)
    assert_nothing_acts(chunks)
    assert chunks[-1].response_metadata["valueguard"]["action"] == "block"


@pytest.mark.parametrize("sync", [True, False])
def test_invoke_of_a_blocked_turn_has_no_tool_call(estimator, sync):
    model = make_guard(estimator, ALWAYS, "block").wrap(scripted(HARMFUL, [40], 1, 5))
    message = model.invoke(PROMPT) if sync else asyncio.run(model.ainvoke(PROMPT))
    assert message.text == BLOCK and message.tool_calls == [] and message.invalid_tool_calls == []


# --- every check is reported ----------------------------------------------------------------------------

def verdict_events(runnable: Any, value: Any) -> list[dict]:
    async def run():
        return [e async for e in runnable.astream_events(value, version="v2") if e["event"] == "on_custom_event"]
    events = asyncio.run(run())
    assert {e["name"] for e in events} <= {VERDICT_EVENT}
    return [e["data"] for e in events]


def test_the_wrapper_reports_each_check_to_on_verdict_and_as_a_custom_event(estimator):
    seen: list = []
    model = make_guard(estimator, NEVER, "block").wrap(fake("Good question. " + BENIGN), stream_mode="incremental",
                                                      on_verdict=seen.append)
    # Inside a chain: BaseChatModel.astream gives _astream no run manager, so the event goes to the enclosing run.
    events = verdict_events(RunnableLambda(lambda question: question) | model, PROMPT)
    # One check per sentence window (three sentences), then the whole text once.
    assert len(seen) == len(events) == 4
    assert [e["decision_id"] for e in events] == [v.decision_id for v in seen]
    assert all(e["action"] == "allow" and e["policy"] == "test-block" for e in events)


def test_invoke_reports_the_verdict_in_the_run_output_too(estimator):
    seen: list = []
    model = make_guard(estimator, ALWAYS, "block").wrap(fake(HARMFUL), on_verdict=seen.append)
    result = model.generate([[HumanMessage(PROMPT)]])
    assert result.llm_output["valueguard"][0]["decision_id"] == seen[0].decision_id
    assert seen[0].action == "block"


def test_the_lcel_step_and_the_middleware_report_as_custom_events(estimator):
    guard = make_guard(estimator, ALWAYS, "block")
    chain = RunnableLambda(lambda text: text) | guard.as_runnable()
    assert [e["action"] for e in verdict_events(chain, HARMFUL)] == ["block"]
    seen: list = []
    agent = create_agent(fake(HARMFUL), [], middleware=[ValueGuardMiddleware(guard, on_verdict=seen.append)])
    events = verdict_events(agent, {"messages": [HumanMessage(PROMPT)]})
    assert [e["action"] for e in events] == ["block"] and [v.action for v in seen] == ["block"]


# --- an empty response is allowed, with the reason, everywhere ---------------------------------------------

def test_an_empty_response_is_allowed_with_a_reason_in_each_integration(estimator):
    guard = make_guard(estimator, ALWAYS, "block")
    seen: list = []
    wrapped = guard.wrap(fake(""), on_verdict=seen.append).invoke(PROMPT)
    assert (wrapped.text, wrapped.response_metadata["valueguard"]["reason"]) == ("", "empty response")
    assert guard.as_runnable(on_verdict=seen.append).invoke("  ") == "  "
    agent = create_agent(fake(""), [], middleware=[guard.agent_middleware(on_verdict=seen.append)])
    assert agent.invoke({"messages": [HumanMessage(PROMPT)]})["messages"][-1].text == ""
    assert [(v.action, v.reason) for v in seen] == [("allow", "empty response")] * 3


# --- agent streaming ------------------------------------------------------------------------------------

@tool
def get_location(person: str) -> str:
    """Where a person is."""
    raise AssertionError("a blocked turn's tool ran")


@pytest.mark.parametrize("sync", [True, False])
def test_an_agent_streamed_by_messages_sends_only_checked_tokens(estimator, sync):
    # The middleware makes the model call through a hold-back wrapper: no token of the blocked turn goes out.
    inner = scripted(HARMFUL, [20, 50, 90], 2, 7)
    agent = create_agent(inner, [get_location], middleware=[ValueGuardMiddleware(make_guard(estimator, BIAS,
                                                                                              "block"))])
    state = {"messages": [HumanMessage(PROMPT)]}
    if sync:
        chunks = [c for c, _ in agent.stream(state, stream_mode="messages")]
    else:
        async def collect():
            return [c async for c, _ in agent.astream(state, stream_mode="messages")]
        chunks = asyncio.run(collect())
    ai = [c for c in chunks if isinstance(c, AIMessageChunk)]
    assert "".join(c.text for c in ai) == BLOCK
    assert not any(c.tool_call_chunks or c.tool_calls for c in ai)


# --- what wrap() and the LCEL step take ----------------------------------------------------------------

def test_wrap_takes_a_binding_and_keeps_its_arguments(estimator):
    inner = fake(AIMessage(content=BENIGN))
    guard = make_guard(estimator, NEVER, "block")
    message = guard.wrap(inner.bind_tools([get_location], tool_choice="any")).invoke(PROMPT)
    assert message.response_metadata["valueguard"]["action"] == "allow"  # it went through the check
    assert [t["function"]["name"] for t in inner.calls[-1]["tools"]] == ["get_location"]
    guard.wrap(inner.bind(stop=["END"])).invoke(PROMPT)
    assert inner.calls[-1]["stop"] == ["END"]


@pytest.mark.parametrize("model, options, message", [
    (RunnableLambda(lambda x: x), {}, "takes a LangChain chat model"),  # not a chat model at all
    (RunnableLambda(lambda x: x).bind(stop=["x"]), {}, "over RunnableLambda"),  # a binding, of no chat model
    (None, {"rewriter": print}, "rewriter goes on the guard"),  # a guard option given to wrap
    (None, {"bogus_option": 1}, "unknown option"),  # a typo
])
def test_wrap_refuses_what_it_cannot_check(estimator, model, options, message):
    with pytest.raises(TypeError, match=message):
        make_guard(estimator, NEVER, "block").wrap(model if model is not None else fake(BENIGN), **options)


def prompt_of_the_check(estimator, run) -> str:
    seen: list[str] = []
    guard = make_guard(estimator, BIAS, "rewrite", rewriter=lambda s: seen.append(s) or REVISION)
    assert run(guard) == REVISION
    return seen[0]


def test_the_lcel_step_takes_the_prompt_from_a_message_list(estimator):
    instruction = prompt_of_the_check(estimator, lambda guard: guard.as_runnable().invoke(
        [HumanMessage(PROMPT), AIMessage(HARMFUL)]).text)
    assert f"The user asked: {PROMPT}" in instruction


def test_the_lcel_step_takes_the_prompt_from_a_dict_by_key(estimator):
    prompt = ChatPromptTemplate.from_messages([("human", "{question}")])
    def run(guard):
        chain = RunnablePassthrough.assign(response=prompt | fake(HARMFUL)) | guard.as_runnable(prompt_key="question")
        return chain.invoke({"question": PROMPT}).text
    assert f"The user asked: {PROMPT}" in prompt_of_the_check(estimator, run)
