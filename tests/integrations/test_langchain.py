"""The LangChain wrapper and LCEL step with real guards (see lc_support for the test policies and texts)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel

from tests.integrations.lc_support import (
    ALWAYS,
    BENIGN,
    BIAS,
    BLOCK,
    HARMFUL,
    HARMFUL_WORDS,
    NEVER,
    PATHS,
    PROMPT,
    REVISION,
    STREAMING,
    TOOL_TURN,
    TokenRecorder,
    ToolCallingFakeChatModel,
    WEATHER_CALL,
    fake,
    make_guard,
    stream_tokens,
    texts_are_separated,  # noqa: F401 - an autouse fixture: the premise of the test policies
    via_astream,
)
from valueguard.guard.rewrite import ResponseBlocked
from valueguard.guard.guard import ValueGuard
from valueguard.integrations.langchain import GuardedChatModel
from valueguard.integrations.langchain.agent import ValueGuardMiddleware


@dataclass
class ActionCase:
    when: str
    rule_action: str
    replies: list
    action: str
    text: str
    rules: list = field(default_factory=lambda: ["forced"])


ACTION_CASES = {
    # no rule fires: the response is handed on unchanged
    "allow": ActionCase(NEVER, "block", [BENIGN], "allow", BENIGN, []),
    # a log rule fires: the text is unchanged, the verdict says log
    "log": ActionCase(ALWAYS, "log", [BENIGN], "log", BENIGN),
    # HARMFUL breaks the universalism rule; the inner model's revision (its next reply) passes it
    "rewrite": ActionCase(BIAS, "rewrite", [HARMFUL, REVISION], "rewrite", REVISION),
    # a block rule fires on everything: the block message replaces the response
    "block": ActionCase(ALWAYS, "block", [HARMFUL], "block", BLOCK),
}


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", ACTION_CASES.values(), ids=ACTION_CASES)
def test_each_action_through_each_call_path(estimator, case, path):
    inner = fake(*case.replies)
    received: list = []
    message = PATHS[path](make_guard(estimator, case.when, case.rule_action).wrap(inner), received)
    assert message.text == case.text
    summary = message.response_metadata["valueguard"]
    assert (summary["action"], summary["rules"]) == (case.action, case.rules)
    assert set(summary["values"]) >= {"universalism", "benevolence"} and summary["decision_id"]
    if path in STREAMING:
        texts = [c.text for c in received if c.text]
        if case.text == case.replies[0]:  # kept: the inner model's own chunking is kept too
            assert texts == stream_tokens(case.text)
        else:  # replaced: one chunk, nothing of the original
            assert texts == [case.text]


@pytest.mark.parametrize("path", PATHS)
def test_block_with_raise_raises_through_each_call_path(estimator, path):
    guard = make_guard(estimator, ALWAYS, "block", on_block="raise")
    received: list = []
    with pytest.raises(ResponseBlocked) as caught:
        PATHS[path](guard.wrap(fake(HARMFUL)), received)
    assert caught.value.verdict.rules == ["forced"]
    assert received == []  # not one chunk before the raise


@pytest.mark.parametrize("mode", ["hold", "incremental"])
def test_a_blocked_stream_sends_no_original_chunk_to_the_caller_or_the_callbacks(estimator, mode):
    guard = make_guard(estimator, BIAS, "block")
    model = GuardedChatModel(inner=fake(HARMFUL), guard=guard, stream_mode=mode)
    recorder = TokenRecorder()
    chunks = list(model.stream(PROMPT, config={"callbacks": [recorder]}))
    streamed = "".join(c.text for c in chunks)
    assert streamed.strip() == BLOCK and "".join(recorder.tokens).strip() == BLOCK
    assert not any(word in text for word in HARMFUL_WORDS for text in [streamed, *recorder.tokens])


def test_a_failed_rewrite_attempt_is_not_streamed_from_inside_a_chain(estimator):
    # The first revision is HARMFUL again (rejected), the second passes: the rejected attempt must not show up in
    # the chain's event stream, where the inner model would stream it if it inherited the chain's callbacks.
    guard = make_guard(estimator, BIAS, "rewrite", attempts=2)
    chain = RunnableLambda(lambda question: question) | guard.wrap(fake(HARMFUL, HARMFUL, REVISION))

    async def run():
        return [e async for e in chain.astream_events(PROMPT, version="v2")
                if e["event"] in ("on_chat_model_stream", "on_chat_model_end")]
    events = asyncio.run(run())
    assert {e["name"] for e in events} == {"GuardedChatModel"}
    streamed = "".join(e["data"]["chunk"].text for e in events if e["event"] == "on_chat_model_stream")
    assert streamed == REVISION
    assert events[-1]["data"]["output"].response_metadata["valueguard"]["action"] == "rewrite"


# --- tool calls -----------------------------------------------------------------------------------------

TOOL_CASES = {
    # a pure tool call has no text: it is allowed as an empty response and passes exactly as it came
    "tool call only": (AIMessage(content="", tool_calls=[WEATHER_CALL]), "", "allow", True),
    # text and a tool call, blocked: the block message alone, the tool call dropped (a blocked turn never acts)
    "text and tool call": (AIMessage(content="Let me look that up.", tool_calls=[WEATHER_CALL]), BLOCK, "block", False),
}


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
@pytest.mark.parametrize("reply,text,action,kept", TOOL_CASES.values(), ids=TOOL_CASES)
def test_tool_calls_go_on_only_with_an_allowed_turn(estimator, reply, text, action, kept, path):
    model = make_guard(estimator, ALWAYS, "block").wrap(fake(reply))
    message = PATHS[path](model, [])
    assert message.text == text
    calls = [(c["name"], c["args"], c["id"]) for c in message.tool_calls]
    assert calls == ([("get_weather", {"city": "Paris"}, "call_1")] if kept else [])
    assert not message.invalid_tool_calls and not getattr(message, "tool_call_chunks", None) if not kept else True
    assert message.response_metadata["valueguard"]["action"] == action


class NonStreamingFakeChatModel(ToolCallingFakeChatModel):
    _stream = BaseChatModel._stream  # as if it had never implemented streaming


NON_STREAMING_CASES = {
    # kept: the whole response comes as one chunk, tool call included
    "allow": (NEVER, "Let me look that up.", "allow", True),
    # blocked: one chunk with the block message, and no tool call
    "block": (ALWAYS, BLOCK, "block", False),
}


@pytest.mark.parametrize("path", ["stream", "astream"])
@pytest.mark.parametrize("when,text,action,kept", NON_STREAMING_CASES.values(), ids=NON_STREAMING_CASES)
def test_an_inner_model_that_cannot_stream_is_streamed_as_one_checked_chunk(estimator, when, text, action, kept, path):
    inner = NonStreamingFakeChatModel(messages=itertools.cycle([TOOL_TURN]))
    received: list = []
    message = PATHS[path](make_guard(estimator, when, "block").wrap(inner), received)
    assert [c.text for c in received if c.text] == [text]
    assert [c["args"] for c in message.tool_calls] == ([{"city": "Paris"}] if kept else [])
    assert message.response_metadata["valueguard"]["action"] == action


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


def test_bind_tools_binds_on_the_inner_model_and_still_checks(estimator):
    inner = fake(AIMessage(content="Let me look that up.", tool_calls=[WEATHER_CALL]))
    bound = make_guard(estimator, ALWAYS, "block").wrap(inner).bind_tools([get_weather], tool_choice="any")
    message = bound.invoke(PROMPT)
    assert message.text == BLOCK and message.tool_calls == []  # checked, and the blocked turn does not act
    assert [t["function"]["name"] for t in inner.calls[-1]["tools"]] == ["get_weather"]
    assert inner.calls[-1]["tool_choice"] == "any"


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    sky: str


def test_with_structured_output_goes_through_the_check(estimator):
    call = {"name": "Weather", "args": {"city": "Paris", "sky": "clear"}, "id": "call_2", "type": "tool_call"}
    inner = fake(AIMessage(content="Here is the weather.", tool_calls=[call]))
    structured = make_guard(estimator, ALWAYS, "log").wrap(inner).with_structured_output(Weather, include_raw=True)
    out = structured.invoke(PROMPT)
    assert out["parsed"] == Weather(city="Paris", sky="clear")
    assert out["raw"].response_metadata["valueguard"]["action"] == "log"  # the wrapper checked the raw text


class TemperatureFakeChatModel(ToolCallingFakeChatModel):
    temperature: float | None = None
    max_tokens: int | None = None


def test_standard_params_are_forwarded_to_the_inner_model(estimator):
    guard = make_guard(estimator, NEVER, "block")
    model = GuardedChatModel(inner=TemperatureFakeChatModel(messages=itertools.cycle([BENIGN])), guard=guard,
                             temperature=0.2, max_tokens=50, stop=["END"])
    assert (model.inner.temperature, model.inner.max_tokens) == (0.2, 50)
    params = model._get_ls_params()
    assert (params["ls_temperature"], params["ls_max_tokens"], params["ls_stop"]) == (0.2, 50, ["END"])
    model.invoke(PROMPT)
    assert model.inner.calls[-1]["stop"] == ["END"]


# --- incremental streaming ------------------------------------------------------------------------------

def test_incremental_releases_checked_sentences_then_the_block_message(estimator):
    # "Good question." passes alone; with the next sentence the text so far breaks the universalism rule.
    guard = make_guard(estimator, BIAS, "block")
    inner = fake("Good question. " + HARMFUL)
    chunks = list(GuardedChatModel(inner=inner, guard=guard, stream_mode="incremental").stream(PROMPT))
    assert [c.text for c in chunks if c.text] == ["Good", " ", "question.", " " + BLOCK]
    assert chunks[-1].response_metadata["valueguard"]["action"] == "block"
    assert inner.produced < len(stream_tokens("Good question. " + HARMFUL))  # the inner stream was stopped


def test_incremental_async_matches_sync(estimator):
    guard = make_guard(estimator, BIAS, "block")
    model = GuardedChatModel(inner=fake("Good question. " + HARMFUL), guard=guard, stream_mode="incremental")
    received: list = []
    merged = via_astream(model, received)
    assert merged.text == "Good question. " + BLOCK


STREAM_MODE_CASES = {
    # hold-back: the whole inner stream is read before the first chunk goes out
    "hold": ("hold", lambda produced, total: produced == total),
    # incremental: the first sentence goes out before the inner model has finished
    "incremental": ("incremental", lambda produced, total: produced < total),
}


@pytest.mark.parametrize("mode,first_chunk_after", STREAM_MODE_CASES.values(), ids=STREAM_MODE_CASES)
def test_when_the_first_chunk_arrives(estimator, mode, first_chunk_after):
    inner = fake(BENIGN + " " + REVISION)
    model = GuardedChatModel(inner=inner, guard=make_guard(estimator, BIAS, "block"), stream_mode=mode)
    stream = model.stream(PROMPT)
    first = next(stream)
    assert first_chunk_after(inner.produced, len(stream_tokens(BENIGN + " " + REVISION)))
    rest = list(stream)
    assert [c.text for c in [first, *rest] if c.text] == stream_tokens(BENIGN + " " + REVISION)
    assert sum(rest, first).response_metadata["valueguard"]["action"] == "allow"


# --- LCEL -----------------------------------------------------------------------------------------------

CHAIN_PROMPT = ChatPromptTemplate.from_messages([("human", "{question}")])

LCEL_CASES = {
    # kept: the model's text goes through the parser unchanged
    "allow": (NEVER, "block", BENIGN, BENIGN),
    # blocked: the parser gets the block message
    "block": (ALWAYS, "block", HARMFUL, BLOCK),
}


@pytest.mark.parametrize("call", ["invoke", "ainvoke", "stream"])
@pytest.mark.parametrize("when,action,reply,expected", LCEL_CASES.values(), ids=LCEL_CASES)
def test_lcel_chain(estimator, when, action, reply, expected, call):
    guard = make_guard(estimator, when, action)
    chain = CHAIN_PROMPT | fake(reply) | guard.as_runnable() | StrOutputParser()
    if call == "invoke":
        out = chain.invoke({"question": PROMPT})
    elif call == "ainvoke":
        out = asyncio.run(chain.ainvoke({"question": PROMPT}))
    else:
        parts = list(chain.stream({"question": PROMPT}))
        assert parts == [expected]  # the step gathers the whole message: no unchecked part goes ahead
        out = parts[0]
    assert out == expected


def test_lcel_step_on_a_blocked_message_drops_its_tool_calls_and_reports_the_verdict(estimator):
    step = make_guard(estimator, ALWAYS, "block").as_runnable()
    out = step.invoke(AIMessage(content=HARMFUL, tool_calls=[WEATHER_CALL], id="msg-1"))
    assert isinstance(out, AIMessage) and out.text == BLOCK and out.id == "msg-1"
    assert out.tool_calls == [] and out.invalid_tool_calls == []
    assert out.response_metadata["valueguard"]["action"] == "block"


STEP_CASES = {
    # a str in, a str out; the guard's own rewriter writes the revision
    "rewrite str": (BIAS, "rewrite", "replace", HARMFUL, REVISION),
    # a str in, the block message out
    "block str": (ALWAYS, "block", "replace", HARMFUL, BLOCK),
}


@pytest.mark.parametrize("sync", [True, False], ids=["invoke", "ainvoke"])
@pytest.mark.parametrize("when,action,on_block,text,expected", STEP_CASES.values(), ids=STEP_CASES)
def test_lcel_step_on_a_str(estimator, when, action, on_block, text, expected, sync):
    guard = make_guard(estimator, when, action, on_block=on_block, rewriter=FakeListChatModel(responses=[REVISION]))
    step = guard.as_runnable()
    out = step.invoke(text) if sync else asyncio.run(step.ainvoke(text))
    assert out == expected


def test_lcel_step_rewrites_out_of_sight_of_the_chain_callbacks(estimator):
    # The guard's rewriter is a chat model: its first revision (HARMFUL again) is rejected, the second passes.
    # Neither may show up in the chain's event stream, which the rewriter would join if it inherited the callbacks.
    guard = make_guard(estimator, BIAS, "rewrite", rewriter=fake(HARMFUL, REVISION))
    chain = RunnableLambda(lambda text: text) | guard.as_runnable()

    async def run():
        return [e async for e in chain.astream_events(HARMFUL, version="v2")]
    events = asyncio.run(run())
    assert not [e for e in events if e["event"].startswith("on_chat_model")]
    assert events[-1]["event"] == "on_chain_end" and events[-1]["data"]["output"] == REVISION


def test_lcel_step_raises_when_the_policy_says_raise(estimator):
    with pytest.raises(ResponseBlocked):
        make_guard(estimator, ALWAYS, "block", on_block="raise").as_runnable().invoke(HARMFUL)


@pytest.mark.parametrize("value, message", [
    (42, "AIMessage or a str"),  # not a response at all
    ({"text": HARMFUL}, "prompt_key"),  # a dict, but the step was not told which keys to read
])
def test_lcel_step_rejects_other_inputs(estimator, value, message):
    with pytest.raises(TypeError, match=message):
        make_guard(estimator, NEVER, "block").as_runnable().invoke(value)


# --- LangChain's standard unit suite --------------------------------------------------------------------

SUITE_GUARD: dict[str, ValueGuard] = {}


@pytest.fixture(scope="module", autouse=True)
def suite_guard(estimator) -> None:
    """chat_model_params is a property and cannot take fixtures: the real guard is kept here for it."""
    SUITE_GUARD["guard"] = make_guard(estimator, NEVER, "block")


class TestGuardedChatModelStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[GuardedChatModel]:
        return GuardedChatModel

    @property
    def chat_model_params(self) -> dict:
        # Read more than once by the suite: a fresh inner model each time.
        return {"inner": fake(BENIGN), "guard": SUITE_GUARD["guard"]}


def test_guard_shortcuts_build_the_integrations(estimator):
    guard = make_guard(estimator, NEVER, "block")
    wrapped = guard.wrap(FakeListChatModel(responses=["hi"]), stream_mode="incremental")
    assert isinstance(wrapped, GuardedChatModel) and wrapped.stream_mode == "incremental"
    middleware = guard.agent_middleware(on_block="end")
    assert isinstance(middleware, ValueGuardMiddleware) and middleware.on_block == "end"
