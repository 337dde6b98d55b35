"""The agent middleware, in real LangChain 1.x agents with real guards (fakes for the LLMs only)."""

from __future__ import annotations

import asyncio

import pytest
from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool

from tests.integrations.lc_support import (
    ALWAYS,
    BIAS,
    BLOCK,
    HARMFUL,
    NEVER,
    PROMPT,
    REVISION,
    TOOL_TURN,
    fake,
    make_guard,
    texts_are_separated,  # noqa: F401 - an autouse fixture: the premise of the test policies
)
from valueguard.guard.rewrite import ResponseBlocked
from valueguard.integrations.langchain.agent import ValueGuardMiddleware


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny in {city}."


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
    # block, replace: the text is replaced and the tool call dropped, so the tool never runs and the loop ends
    "block replace": (ALWAYS, "block", "replace", [TOOL_TURN, FINAL], 0, BLOCK, "block", False),
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
