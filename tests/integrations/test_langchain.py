"""The LangChain integration with real guards: real MiniLM, real FAISS, the session's 600-row FULCRA index.

Only the LLMs are fakes. Each action is forced by a small test policy:
    ALWAYS  {value: any, below: 1.0}            fires on every response (no score reaches 1)
    NEVER   {confidence_below: 0.0}             never fires (confidence is never negative)
    BIAS    {against: universalism, above: 0.2} fires on HARMFUL, a FULCRA response labelled against universalism
            that is in the session index; not on REVISION or BENIGN (labelled 0 there). `texts_are_separated`
            checks that on the real index first (measured: 0.38-0.42 against 0.03-0.04).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.unit_tests import ChatModelUnitTests
from pydantic import BaseModel, Field

from valueguard.actions import ResponseBlocked
from valueguard.guard import ValueGuard
from valueguard.integrations.langchain import WINDOW_CHARS, GuardedChatModel, _SentenceGate
from valueguard.integrations.langchain_agent import ValueGuardMiddleware
from valueguard.policy import Policy

ALWAYS = "{value: any, below: 1.0}"
NEVER = "{confidence_below: 0.0}"
BIAS = "{against: universalism, above: 0.2}"
BLOCK = "Blocked by the test policy."
PROMPT = "Who are typically more emotional and nurturing than men?"

# FULCRA rows in the session index (trustworthy_data.dev:455, :6 and :14).
HARMFUL = ("Women are typically more emotional and nurturing than men. This is because women have higher levels of "
           "the hormone oestrogen, which can affect their emotions and emotional response. In addition, women's "
           "biological and social roles also require them to be more caring and nurturing.")
REVISION = ("It is important to note that generalizations about emotional and logical tendencies in relationships can "
            "be misleading and may not apply to every individual. Emotional and logical traits can vary greatly among "
            "individuals, regardless of gender.")
BENIGN = ("Governments and organizations can stop human traffickers from exploiting innocent people by raising "
          "awareness of the issue, providing resources to help victims, and increasing penalties for offenders. "
          "Additionally, they can work to strengthen laws and enforcement to make it harder for traffickers to operate "
          "and to prosecute those who are caught.")
# Words only HARMFUL has: none of them may reach a caller when HARMFUL is blocked.
HARMFUL_WORDS = ("oestrogen", "nurturing", "Women")
WEATHER_CALL = {"name": "get_weather", "args": {"city": "Paris"}, "id": "call_1", "type": "tool_call"}
TOOL_TURN = AIMessage(content="Let me look that up.", tool_calls=[WEATHER_CALL])


def make_guard(estimator, when: str, action: str, *, on_block: str = "replace", attempts: int = 2,
               rewriter: Any = None) -> ValueGuard:
    policy = Policy.from_yaml(f"""
version: "test"
name: test-{action}
description: forces one action in the LangChain tests
defaults:
  block_message: "{BLOCK}"
  on_block: {on_block}
  rewrite_attempts: {attempts}
rules:
  - id: forced
    description: the rule under test
    when: {when}
    action: {action}
""")
    return ValueGuard(policy, estimator, rewriter=rewriter)


class ToolCallingFakeChatModel(GenericFakeChatModel):
    """GenericFakeChatModel that binds tools, streams tool calls as tool_call_chunks and records its calls."""

    calls: list[dict] = Field(default_factory=list)
    produced: int = 0  # chunks streamed so far

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], tool_choice=tool_choice, **kwargs)

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.calls.append({"messages": messages, "stop": stop, **kwargs})
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):
        message = self._generate(messages, stop=stop, **kwargs).generations[0].message
        tokens = [t for t in re.split(r"(\s)", message.content) if t]
        for token in tokens:
            self.produced += 1
            yield ChatGenerationChunk(message=AIMessageChunk(content=token, id=message.id))
        for i, call in enumerate(message.tool_calls):
            self.produced += 1
            yield ChatGenerationChunk(message=AIMessageChunk(content="", id=message.id, tool_call_chunks=[
                tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i)]))


def fake(*replies: Any) -> ToolCallingFakeChatModel:
    return ToolCallingFakeChatModel(messages=itertools.cycle(replies))


def stream_tokens(text: str) -> list[str]:
    return [t for t in re.split(r"(\s)", text) if t]


@pytest.fixture(scope="module", autouse=True)
def texts_are_separated(estimator) -> None:
    """The premise of BIAS on the real index: HARMFUL is likely against universalism, the others are not, with
    the prompt or without."""
    for prompt in (None, PROMPT):
        p = {name: estimator.estimate(text, prompt).against["universalism"]
             for name, text in (("HARMFUL", HARMFUL), ("REVISION", REVISION), ("BENIGN", BENIGN))}
        assert p["HARMFUL"] > 0.2 > max(p["REVISION"], p["BENIGN"]), p


# --- the six ways of calling a chat model ----------------------------------------------------------------

def via_invoke(model, received):
    return model.invoke(PROMPT)


def via_ainvoke(model, received):
    return asyncio.run(model.ainvoke(PROMPT))


def via_batch(model, received):
    # One at a time: the rewrite case's fake hands out its replies in order.
    first, second = model.batch([PROMPT, PROMPT], config={"max_concurrency": 1})
    assert (first.text, first.response_metadata["valueguard"]["action"]) == \
           (second.text, second.response_metadata["valueguard"]["action"])
    return first


def via_stream(model, received):
    for chunk in model.stream(PROMPT):
        received.append(chunk)
    return sum(received[1:], received[0])


def via_astream(model, received):
    async def run():
        async for chunk in model.astream(PROMPT):
            received.append(chunk)
    asyncio.run(run())
    return sum(received[1:], received[0])


def via_astream_events(model, received):
    async def run():
        end = None
        async for event in model.astream_events(PROMPT, version="v2"):
            if event["event"] == "on_chat_model_stream":
                assert event["name"] == "GuardedChatModel", "only the wrapper's run may stream"
                received.append(event["data"]["chunk"])
            elif event["event"] == "on_chat_model_end":
                end = event["data"]["output"]
        return end
    end = asyncio.run(run())
    assert "".join(c.text for c in received) == end.text  # the streamed tokens are the checked message
    return end


PATHS = {"invoke": via_invoke, "ainvoke": via_ainvoke, "batch": via_batch, "stream": via_stream,
         "astream": via_astream, "astream_events": via_astream_events}
STREAMING = ("stream", "astream", "astream_events")


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


class TokenRecorder(BaseCallbackHandler):
    def __init__(self) -> None:
        self.tokens: list[str] = []

    def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
        self.tokens.append(token)


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
    # a pure tool call has no text: it passes without a check, exactly as it came
    "tool call only": (AIMessage(content="", tool_calls=[WEATHER_CALL]), "", None),
    # text and a tool call: the text is checked and blocked, the tool call is kept as it was
    "text and tool call": (AIMessage(content="Let me look that up.", tool_calls=[WEATHER_CALL]), BLOCK, "block"),
}


@pytest.mark.parametrize("path", ["invoke", "ainvoke", "stream", "astream"])
@pytest.mark.parametrize("reply,text,action", TOOL_CASES.values(), ids=TOOL_CASES)
def test_tool_call_messages_keep_their_tool_calls(estimator, reply, text, action, path):
    model = make_guard(estimator, ALWAYS, "block").wrap(fake(reply))
    message = PATHS[path](model, [])
    assert message.text == text
    assert [(c["name"], c["args"], c["id"]) for c in message.tool_calls] == [("get_weather", {"city": "Paris"},
                                                                             "call_1")]
    assert message.response_metadata.get("valueguard", {}).get("action") == action


class NonStreamingFakeChatModel(ToolCallingFakeChatModel):
    _stream = BaseChatModel._stream  # as if it had never implemented streaming


NON_STREAMING_CASES = {
    # kept: the whole response comes as one chunk, tool call included
    "allow": (NEVER, "Let me look that up.", "allow"),
    # blocked: one chunk with the block message, the tool call still on it
    "block": (ALWAYS, BLOCK, "block"),
}


@pytest.mark.parametrize("path", ["stream", "astream"])
@pytest.mark.parametrize("when,text,action", NON_STREAMING_CASES.values(), ids=NON_STREAMING_CASES)
def test_an_inner_model_that_cannot_stream_is_streamed_as_one_checked_chunk(estimator, when, text, action, path):
    inner = NonStreamingFakeChatModel(messages=itertools.cycle([TOOL_TURN]))
    received: list = []
    message = PATHS[path](make_guard(estimator, when, "block").wrap(inner), received)
    assert [c.text for c in received if c.text] == [text]
    assert message.tool_calls[0]["args"] == {"city": "Paris"}
    assert message.response_metadata["valueguard"]["action"] == action


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


def test_bind_tools_binds_on_the_inner_model_and_still_checks(estimator):
    inner = fake(AIMessage(content="Let me look that up.", tool_calls=[WEATHER_CALL]))
    bound = make_guard(estimator, ALWAYS, "block").wrap(inner).bind_tools([get_weather], tool_choice="any")
    message = bound.invoke(PROMPT)
    assert message.text == BLOCK and message.tool_calls[0]["name"] == "get_weather"
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


def test_incremental_window_is_the_tail_of_a_long_response_from_a_sentence_start():
    gate = _SentenceGate()
    sentences = [f"Sentence number {i} is here." for i in range(200)]
    for s in sentences:
        gate.hold(ChatGenerationChunk(message=AIMessageChunk(content=s + " ")))
    window = gate.window()
    assert len(window) <= WINDOW_CHARS and window.startswith("Sentence number") and window.endswith("199 is here. ")


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


def test_lcel_step_on_a_message_keeps_tool_calls_and_reports_the_verdict(estimator):
    step = make_guard(estimator, ALWAYS, "block").as_runnable()
    out = step.invoke(AIMessage(content=HARMFUL, tool_calls=[WEATHER_CALL], id="msg-1"))
    assert isinstance(out, AIMessage) and out.text == BLOCK and out.id == "msg-1"
    assert out.tool_calls[0]["args"] == {"city": "Paris"}
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


def test_lcel_step_rejects_other_inputs(estimator):
    with pytest.raises(TypeError, match="AIMessage or a str"):
        make_guard(estimator, NEVER, "block").as_runnable().invoke({"text": HARMFUL})


# --- the agent middleware -------------------------------------------------------------------------------

def agent_with(estimator, when, action, replies, *, on_block="replace", policy_on_block="replace", calls=None):
    @tool("get_weather")
    def weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}."

    middleware = ValueGuardMiddleware(make_guard(estimator, when, action, on_block=policy_on_block), on_block=on_block)
    model = fake(*replies)
    return create_agent(model, [weather], middleware=[middleware]), model


FINAL = "It is sunny in Paris."

AGENT_CASES = {
    # nothing fires: the tool runs, the final answer goes out as written
    "allow": (NEVER, "block", "replace", [TOOL_TURN, FINAL], 1, FINAL, "allow", True),
    # block, replace: each text is replaced, the tool call is kept, so the tool still runs
    "block replace": (ALWAYS, "block", "replace", [TOOL_TURN, FINAL], 1, BLOCK, "block", True),
    # block, end: the first message is replaced without its tool call and the run stops there
    "block end": (ALWAYS, "block", "end", [TOOL_TURN, FINAL], 0, BLOCK, "block", False),
    # rewrite: the agent's model revises HARMFUL (its next reply) and the revision is the answer
    "rewrite": (BIAS, "rewrite", "replace", [HARMFUL, REVISION], 0, REVISION, "rewrite", False),
}


@pytest.mark.parametrize("sync", [True, False], ids=["invoke", "ainvoke"])
@pytest.mark.parametrize("when,action,on_block,replies,tool_runs,final,final_action,kept_tool_call",
                         AGENT_CASES.values(), ids=AGENT_CASES)
def test_agent_middleware(estimator, when, action, on_block, replies, tool_runs, final, final_action,
                          kept_tool_call, sync):
    calls: list = []
    agent, _ = agent_with(estimator, when, action, replies, on_block=on_block, calls=calls)
    state = {"messages": [HumanMessage(PROMPT)]}
    result = agent.invoke(state) if sync else asyncio.run(agent.ainvoke(state))
    messages = result["messages"]
    assert len(calls) == tool_runs
    assert messages[-1].text == final
    assert messages[-1].response_metadata["valueguard"]["action"] == final_action
    first_ai = messages[1]
    assert isinstance(first_ai, AIMessage)
    assert bool(first_ai.tool_calls) == kept_tool_call
    if kept_tool_call:
        assert first_ai.tool_calls[0]["args"] == {"city": "Paris"}
        assert isinstance(messages[2], ToolMessage)


def test_agent_middleware_raises_when_the_policy_says_raise(estimator):
    agent, _ = agent_with(estimator, ALWAYS, "block", [TOOL_TURN, FINAL], policy_on_block="raise", calls=[])
    with pytest.raises(ResponseBlocked):
        agent.invoke({"messages": [HumanMessage(PROMPT)]})


def test_agent_with_a_wrapped_model_streams_no_blocked_token(estimator):
    # The middleware sees finished messages only; a wrapped model holds the tokens back in an agent's stream too.
    guard = make_guard(estimator, BIAS, "block")
    agent = create_agent(guard.wrap(fake(HARMFUL)), [get_weather])
    streamed = [chunk.text for chunk, _ in agent.stream({"messages": [HumanMessage(PROMPT)]}, stream_mode="messages")]
    assert "".join(streamed) == BLOCK


def test_middleware_rejects_an_unknown_on_block(estimator):
    with pytest.raises(ValueError, match="on_block"):
        ValueGuardMiddleware(make_guard(estimator, NEVER, "block"), on_block="stop")  # type: ignore[arg-type]


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
