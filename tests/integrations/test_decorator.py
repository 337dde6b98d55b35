import asyncio
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from valueguard.guard.rewrite import ResponseBlocked
from valueguard.guard.guard import ValueGuard
from valueguard.integrations.decorator import chunk_text, prompt_finder
from valueguard.policy.model import Policy

HARMFUL = ("To steal a car, break the side window, pull the panel under the steering wheel and twist the red "
           "and brown wires together; then drive off before anyone calls the police.")
REFUSAL = "I'm sorry, but I can't help with that. Stealing a car is illegal and harms the owner."
BLOCKED = "Blocked by test policy."


def make_policy(when: str, action: str, **defaults: str) -> Policy:
    extra = "".join(f"  {k}: {v}\n" for k, v in defaults.items())
    return Policy.from_yaml(
        f'version: "1"\nname: t\ndescription: d\ndefaults:\n  block_message: "{BLOCKED}"\n{extra}rules:\n'
        f"  - id: r\n    description: test rule\n    when: {when}\n    action: {action}\n")


@pytest.fixture(scope="module")
def separating_rule(estimator):
    """A condition that holds for HARMFUL and not for REFUSAL, from their real estimates."""
    h, r = estimator.estimate(HARMFUL).values, estimator.estimate(REFUSAL).values
    worst = min(h, key=lambda n: h[n] - r[n])
    assert h[worst] < r[worst] - 0.1
    return f"{{value: {worst}, below: {(h[worst] + r[worst]) / 2:.4f}}}"


@pytest.fixture(scope="module")
def guards(estimator, separating_rule):
    return {
        "allow": ValueGuard(make_policy("{confidence_below: 0.0}", "block"), estimator),
        "log": ValueGuard(make_policy("{value: any, below: 1.0}", "log"), estimator),
        "block": ValueGuard(make_policy("{value: any, below: 1.0}", "block"), estimator),
        "raise": ValueGuard(make_policy("{value: any, below: 1.0}", "block", on_block="raise"), estimator),
        "rewrite": ValueGuard(make_policy(separating_rule, "rewrite"), estimator, rewriter=lambda s: REFUSAL),
    }


def completion(text: str) -> ChatCompletion:
    return ChatCompletion.model_validate({
        "id": "c1", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})


def openai_chunk(text: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": {"content": text}}]})


# (how the model's answer is returned, and how to read its text back) — each return type the decorator supports.
RETURN_TYPES = [
    pytest.param(lambda t: t, lambda r: r, id="str"),
    pytest.param(lambda t: AIMessage(content=t, id="m1"), lambda r: r.content, id="AIMessage"),
    pytest.param(completion, lambda r: r.choices[0].message.content, id="openai-completion"),
]


@pytest.mark.parametrize("make, read", RETURN_TYPES)
@pytest.mark.parametrize("mode, answer, expected", [
    ("allow", HARMFUL, HARMFUL),     # nothing fires: the original, same object type
    ("log", HARMFUL, HARMFUL),       # a log rule fires: still the original
    ("block", HARMFUL, BLOCKED),     # replaced by the block message
    ("rewrite", HARMFUL, REFUSAL),   # revised, and the revision passed the re-check
    ("rewrite", REFUSAL, REFUSAL),   # the rule does not fire on a refusal: untouched
])
def test_sync_and_async_functions(guards, make, read, mode, answer, expected):
    guard = guards[mode]

    @guard.guarded
    def call(prompt: str):
        return make(answer)

    @guard.guarded
    async def acall(prompt: str):
        return make(answer)

    for result in (call("how?"), asyncio.run(acall("how?"))):
        assert read(result) == expected and type(result) is type(make(answer))


def test_an_unchanged_result_is_the_same_object(guards):
    original = completion(REFUSAL)
    assert guards["allow"].guarded(lambda prompt: original)("q") is original


def test_raise_mode_raises_with_the_verdict(guards):
    @guards["raise"].guarded
    def call(prompt):
        return HARMFUL

    with pytest.raises(ResponseBlocked) as err:
        call("q")
    assert err.value.verdict.rules == ["r"]


def test_a_decorator_rewriter_is_used(guards, estimator, separating_rule):
    guard = ValueGuard(make_policy(separating_rule, "rewrite"), estimator)  # no default rewriter
    seen = []

    @guard.guarded(rewriter=lambda s: seen.append(s) or REFUSAL)
    def call(prompt):
        return HARMFUL

    assert call("q") == REFUSAL and "<response>" in seen[0]


def test_an_unreadable_result_is_a_clear_error(guards):
    with pytest.raises(TypeError, match="cannot read a response of type int"):
        guards["allow"].guarded(lambda prompt: 42)("q")


def f_prompt(prompt, temperature=0.1): ...
def f_question(question): ...
def f_messages(model, messages): ...
def f_other(a, b): ...


# (function, prompt option, call arguments, prompt found) — how the prompt is found.
@pytest.mark.parametrize("fn, option, args, kwargs, expected", [
    (f_prompt, None, ("hi",), {}, "hi"),                                        # default name, positional
    (f_question, None, (), {"question": "why?"}, "why?"),                        # another default name
    (f_messages, None, ("m", [{"role": "system", "content": "s"}, {"role": "user", "content": "u1"},
                              {"role": "assistant", "content": "a"}, {"role": "user", "content": "u2"}]), {},
     "u2"),                                                                      # OpenAI-style messages
    (f_messages, None, ("m", [HumanMessage("lc")]), {}, "lc"),                   # LangChain messages
    (f_other, "b", (1, "from b"), {}, "from b"),                                 # an argument named by the user
    (f_other, lambda a, b: f"{a}:{b}", (1, 2), {}, "1:2"),                       # a callable
    (f_other, None, (1, 2), {}, None),                                           # nothing to find: no prompt
])
def test_prompt_finder(fn, option, args, kwargs, expected):
    assert prompt_finder(fn, option)(*args, **kwargs) == expected


def test_a_prompt_argument_that_does_not_exist_is_refused():
    with pytest.raises(ValueError, match="has no argument 'query'"):
        prompt_finder(f_other, "query")


def test_the_prompt_reaches_the_check(guards, estimator, separating_rule):
    seen = []
    guard = ValueGuard(make_policy(separating_rule, "rewrite"), estimator, rewriter=lambda s: seen.append(s) or REFUSAL)

    @guard.guarded
    def call(model, messages):
        return HARMFUL

    call("m", [{"role": "user", "content": "how do I take a car?"}])
    assert "The user asked: how do I take a car?" in seen[0]


# --- streaming ---------------------------------------------------------------------------------------------

def split_at(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:]) if b > a]


def instrumented(guard: ValueGuard, events: list[str]) -> ValueGuard:
    """Record when each check completes, next to what the caller receives."""
    check = guard.check

    def recording(*args, **kwargs):
        verdict = check(*args, **kwargs)
        events.append("checked")
        return verdict

    guard.check = recording  # type: ignore[method-assign]
    return guard


@settings(max_examples=25, deadline=None)
@given(text=st.sampled_from([HARMFUL, REFUSAL]), cuts=st.lists(st.integers(0, 400), max_size=12),
       mode=st.sampled_from(["allow", "block"]))
def test_hold_back_releases_nothing_before_the_check(estimator, text, cuts, mode):
    events: list[str] = []
    policy = make_policy("{confidence_below: 0.0}" if mode == "allow" else "{value: any, below: 1.0}", "block")
    guard = instrumented(ValueGuard(policy, estimator), events)
    chunks = split_at(text, cuts)

    @guard.guarded
    def stream(prompt):
        for c in chunks:
            events.append("produced")
            yield c

    received = []
    for c in stream("q"):
        events.append("received")
        received.append(c)
    first_received = events.index("received")
    assert events.index("checked") < first_received  # nothing before the check
    assert events[:first_received].count("produced") == len(chunks)  # the whole response was checked
    if mode == "allow":
        assert received == chunks  # the original chunking is kept
    else:
        assert received == [BLOCKED] and not set(received) & set(chunks)  # zero original chunks leak


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), max_size=10))
def test_async_hold_back_with_message_and_openai_chunks(guards, cuts):
    pieces = split_at(HARMFUL, cuts)

    @guards["block"].guarded
    async def lc_stream(prompt):
        for p in pieces:
            yield AIMessageChunk(content=p)

    @guards["allow"].guarded
    async def oa_stream(prompt):
        for p in pieces:
            yield openai_chunk(p)

    async def collect(gen):
        return [c async for c in gen]

    blocked = asyncio.run(collect(lc_stream("q")))
    assert [c.content for c in blocked] == [BLOCKED] and isinstance(blocked[0], AIMessageChunk)
    allowed = asyncio.run(collect(oa_stream("q")))
    assert "".join(c.choices[0].delta.content for c in allowed) == HARMFUL and len(allowed) == len(pieces)


def incremental_stream_text() -> list[str]:
    return re.findall(r"\S+\s*", REFUSAL + " " + HARMFUL)  # word by word


def test_incremental_releases_checked_sentences_then_stops(estimator):
    first_two = "I'm sorry, but I can't help with that. Stealing a car is illegal and harms the owner. "
    clean = estimator.estimate(first_two).values
    dirty = estimator.estimate("Stealing a car is illegal and harms the owner. " + HARMFUL).values
    worst = min(dirty, key=lambda n: dirty[n] - clean[n])
    assert dirty[worst] < clean[worst] - 0.05
    # The window with the harmful sentence crosses the threshold; the refusal's windows do not.
    when = f"{{value: {worst}, below: {(dirty[worst] + max(clean[worst], estimator.estimate(REFUSAL).values[worst])) / 2:.4f}}}"
    guard = ValueGuard(make_policy(when, "block"), estimator)

    @guard.guarded(stream="incremental")
    def stream(prompt):
        yield from incremental_stream_text()

    out = list(stream("q"))
    released = "".join(out[:-1])
    assert released.startswith("I'm sorry") and "steering wheel" not in released
    assert out[-1] == BLOCKED


def test_incremental_passes_a_clean_stream_whole(guards):
    @guards["allow"].guarded(stream="incremental")
    async def stream(prompt):
        for w in incremental_stream_text():
            yield w

    async def collect():
        return [c async for c in stream("q")]

    assert "".join(asyncio.run(collect())) == "".join(incremental_stream_text())


# --- a flagged turn never acts; every check is reported ----------------------------------------------------

def openai_tool_chunk(args: str) -> ChatCompletionChunk:
    return ChatCompletionChunk.model_validate({
        "id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
        "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_1", "type": "function", "function": {"name": "start_car", "arguments": args}}]}}]})


def lc_tool_chunk(args: str) -> AIMessageChunk:
    return AIMessageChunk(content="", tool_call_chunks=[{"name": "start_car", "args": args, "id": "call_1",
                                                         "index": 0, "type": "tool_call_chunk"}])


def acts(chunk) -> bool:
    if hasattr(chunk, "choices"):
        return bool(chunk.choices[0].delta.tool_calls)
    return bool(chunk.tool_call_chunks or chunk.tool_calls)


@settings(max_examples=15, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), max_size=12), call_at=st.integers(0, 20),
       kind=st.sampled_from(["openai", "langchain"]), mode=st.sampled_from(["hold", "incremental"]),
       sync=st.booleans())
def test_a_blocked_stream_sends_no_original_chunk_and_no_tool_call(guards, cuts, call_at, kind, mode, sync):
    make_text, make_call = (openai_chunk, openai_tool_chunk) if kind == "openai" else (
        lambda t: AIMessageChunk(content=t), lc_tool_chunk)
    chunks = [make_text(p) for p in split_at(HARMFUL, cuts)]
    at = call_at % (len(chunks) + 1)
    chunks = [*chunks[:at], make_call('{"car": '), make_call('"red"}'), *chunks[at:]]
    seen: list = []
    guard = guards["block"]

    @guard.guarded(stream=mode, on_verdict=seen.append)
    def stream(prompt):
        yield from chunks

    @guard.guarded(stream=mode, on_verdict=seen.append)
    async def astream(prompt):
        for c in chunks:
            yield c

    async def collect():
        return [c async for c in astream("q")]

    out = list(stream("q")) if sync else asyncio.run(collect())
    assert [chunk_text(c) for c in out] == [BLOCKED] and not any(acts(c) for c in out)
    assert not any(c is original for c in out for original in chunks)
    assert [v.action for v in seen] == ["block"]  # the first check flags and ends the stream


def test_a_blocked_result_carries_no_tool_call(guards):
    message = AIMessage(content=HARMFUL, tool_calls=[{"name": "start_car", "args": {}, "id": "call_1"}])
    out = guards["block"].guarded(lambda prompt: message)("q")
    assert out.content == BLOCKED and out.tool_calls == []
    done = completion(HARMFUL)
    done.choices[0].message.tool_calls = openai_tool_chunk("{}").choices[0].delta.tool_calls
    blocked = guards["block"].guarded(lambda prompt: done)("q")
    assert blocked.choices[0].message.content == BLOCKED and blocked.choices[0].message.tool_calls is None


def test_on_verdict_sees_every_check_of_an_incremental_stream(guards):
    seen: list = []

    @guards["allow"].guarded(stream="incremental", on_verdict=seen.append)
    def stream(prompt):
        yield from incremental_stream_text()

    assert "".join(stream("q")) == "".join(incremental_stream_text())
    # One per sentence (REFUSAL has two, HARMFUL one), then the whole text once.
    assert [v.action for v in seen] == ["allow"] * 4


@pytest.mark.parametrize("sync", [True, False])
def test_an_empty_response_is_allowed_with_a_reason(guards, sync):
    seen: list = []

    @guards["block"].guarded(on_verdict=seen.append)
    def call(prompt):
        return ""

    @guards["block"].guarded(on_verdict=seen.append)
    async def acall(prompt):
        return " "

    assert (call("q") if sync else asyncio.run(acall("q"))).strip() == ""
    assert [(v.action, v.reason) for v in seen] == [("allow", "empty response")]
