"""Streaming through the proxy: hold-back (nothing before the whole answer is checked) and incremental."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.server.conftest import BENIGN, HARMFUL, PROMPT, REVISION, chat, sse_chunks, streamed_text
from tests.server.test_app import TOOL_CALL

STREAM_TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "find_car", "arguments": "{}"}}


def stream(url: str, body: dict, **kwargs) -> httpx.Response:
    return httpx.post(url + "/chat/completions", json={**body, "stream": True}, timeout=30, **kwargs)


def words(text: str) -> list[str]:
    out = text.split(" ")
    return [w + " " for w in out[:-1]] + [out[-1]]


def upstream_chunks(chunks: list[dict]) -> list[dict]:
    return [c for c in chunks if "x_token" in c]


def test_hold_passes_an_allowed_stream_through_unchanged(proxy, guard):
    response = stream(proxy(), chat({"chunks": words(BENIGN)}))
    chunks = sse_chunks(response)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-valueguard-action"] == guard.check(BENIGN, PROMPT).action  # checked before sending
    assert [c["x_token"] for c in upstream_chunks(chunks)] == [*range(len(words(BENIGN))), "end"]
    assert streamed_text(chunks) == BENIGN
    assert chunks[-1]["choices"] == [] and chunks[-1]["valueguard"]["action"] in ("allow", "log")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.sets(st.integers(1, len(HARMFUL) - 1), max_size=25))
def test_hold_sends_no_upstream_token_of_a_blocked_answer_whatever_the_chunking(proxy_url, cuts):
    bounds = [0, *sorted(cuts), len(HARMFUL)]
    pieces = [HARMFUL[a:b] for a, b in zip(bounds, bounds[1:])]
    response = stream(proxy_url, chat({"chunks": pieces, "tool_calls": [STREAM_TOOL_CALL]}))
    chunks = sse_chunks(response)
    assert upstream_chunks(chunks) == []  # not one upstream chunk, in any form
    assert streamed_text(chunks) == "I can't help with that: it could harm other people."
    assert not any(c["choices"] and ("tool_calls" in c["choices"][0]["delta"]) for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1]["valueguard"]["action"] == "block" and response.headers["x-valueguard-action"] == "block"


@pytest.fixture()
def proxy_url(proxy) -> str:
    return proxy()


def test_hold_passes_the_tool_calls_of_an_allowed_stream(proxy):
    chunks = sse_chunks(stream(proxy(), chat({"chunks": ["Let me look."], "tool_calls": [STREAM_TOOL_CALL]})))
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks if c["choices"] and
             "tool_calls" in c["choices"][0]["delta"]]
    assert calls == [[{"index": 0, **STREAM_TOOL_CALL}]]


def test_hold_streams_the_revision_of_a_rewritten_answer(proxy, rewriting):
    response = stream(proxy(tenants=rewriting), chat({"chunks": words(HARMFUL)}),
                      headers={"x-valueguard-policy": "rewriting"})
    chunks = sse_chunks(response)
    assert upstream_chunks(chunks) == [] and streamed_text(chunks) == REVISION
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"


def test_hold_an_upstream_breaking_off_is_an_error_before_anything_is_sent(proxy):
    response = stream(proxy(), chat({"chunks": words(HARMFUL), "break_after": 3}))
    assert response.status_code == 502 and response.json()["error"]["type"] == "upstream_error"
    assert "Key" not in response.text


def test_a_streamed_upstream_error_is_passed_through(proxy):
    response = stream(proxy(), chat({"status": 503}))
    assert response.status_code == 503 and response.json()["error"]["code"] == "stub"


def test_incremental_releases_checked_sentences_of_an_allowed_answer(proxy):
    text = BENIGN + " " + "Then look for the number on the gate."
    chunks = sse_chunks(stream(proxy(stream_mode="incremental"), chat({"chunks": words(text)})))
    assert streamed_text(chunks) == text
    assert len(upstream_chunks(chunks)) == len(words(text)) + 1 and chunks[-1]["valueguard"]["action"] != "block"


def test_incremental_sends_nothing_of_a_blocked_first_sentence(proxy):
    text = HARMFUL + " Good luck."
    chunks = sse_chunks(stream(proxy(stream_mode="incremental"),
                               chat({"chunks": words(text), "tool_calls": [STREAM_TOOL_CALL]})))
    assert upstream_chunks(chunks) == []
    assert streamed_text(chunks) == "I can't help with that: it could harm other people."
    assert chunks[-1]["valueguard"]["action"] == "block"


def test_incremental_ends_with_the_block_message_and_no_tool_call_after_released_text(proxy, guard):
    text = BENIGN + " " + HARMFUL
    chunks = sse_chunks(stream(proxy(stream_mode="incremental"),
                               chat({"chunks": words(text), "tool_calls": [STREAM_TOOL_CALL]})))
    out = streamed_text(chunks)
    # A flag after released text ends the stream with a block message (a rewrite counts as a block).
    block_messages = {guard.policy.defaults.block_message, *(r.message for r in guard.policy.rules if r.message)}
    assert out.startswith(BENIGN + " ") and out[len(BENIGN) + 1:] in block_messages
    assert chunks[-1]["valueguard"]["action"] in ("block", "rewrite")
    assert not any(c["choices"] and "tool_calls" in c["choices"][0]["delta"] for c in chunks)


LONG_BENIGN = ("Turn the radio down: reading house numbers takes attention. Drive slowly along the street. Look for "
               "the number on the mailbox or the gate. If you cannot find it, call ahead and ask.")


def test_a_slow_client_reading_a_stream_gets_all_of_it_and_holds_up_nobody(proxy):
    """A client reading one small piece at a time, pausing: the proxy neither drops nor reorders its events,
    and another client is answered in full while it is still reading."""
    url = proxy(stream_mode="incremental")
    received, other_done_while_reading = b"", False
    with httpx.stream("POST", url + "/chat/completions", timeout=30,
                      json={**chat({"chunks": words(LONG_BENIGN)}), "stream": True}) as response:
        for i, piece in enumerate(response.iter_raw(64)):
            received += piece
            if i == 1:
                other = httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}), timeout=30)
                other_done_while_reading = other.status_code == 200
            time.sleep(0.02)
    datas = [line[6:] for line in received.decode().split("\n") if line.startswith("data: ")]
    chunks = [json.loads(d) for d in datas[:-1]]
    assert datas[-1] == "[DONE]" and streamed_text(chunks) == LONG_BENIGN
    assert chunks[-1]["valueguard"]["action"] in ("allow", "log") and other_done_while_reading
