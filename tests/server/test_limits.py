"""Limits: the body (413, 408), the upstream's timeout (504), admission and check slots (503, Retry-After)."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest

from tests.server.conftest import BENIGN, HARMFUL, chat


def test_a_body_over_the_limit_is_a_413(proxy, stub):
    url = proxy(max_body_bytes=2000)
    big = chat({"answer": BENIGN}, prompt="x" * 3000)
    declared = httpx.post(url + "/chat/completions", json=big, timeout=30)

    def chunked():  # no Content-Length: the limit holds while reading
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}]}'

    streamed = httpx.post(url + "/chat/completions", content=chunked(), timeout=30)
    for response in (declared, streamed):
        assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert stub.requests == []


def test_a_client_trickling_its_body_gets_a_408_and_holds_up_nobody(proxy):
    url = proxy(body_timeout_s=1.0)
    port = int(url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as slow:
        slow.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 500\r\n\r\n{\"messages\": ")
        other = httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}), timeout=30)
        slow.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = slow.recv(4096)
            if not piece:
                break
            answer += piece
    assert other.status_code == 200  # answered while the slow client was still sending
    assert answer.startswith(b"HTTP/1.1 408") and b'"request_timeout"' in answer


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_that_does_not_answer_in_time_is_a_504(proxy, stream):
    url = proxy(upstream_timeout_s=0.5)
    script = {"answer": BENIGN, "delay": 3} if not stream else {"chunks": ["Turn ", "the radio"], "chunk_delay": 3}
    response = httpx.post(url + "/chat/completions", json=chat(script, stream=stream), timeout=30)
    assert response.status_code == 504
    assert response.json()["error"] == {"message": "the upstream did not answer within 0.5 s",
                                        "type": "upstream_error", "param": None, "code": "upstream_timeout"}


def test_over_the_request_limit_is_a_503_with_retry_after_before_the_upstream_is_called(proxy, stub):
    url = proxy(max_pending=2, retry_after_s=3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN, "delay": 2}), timeout=30)))
        for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while len(stub.requests) < 2 and time.monotonic() < deadline:  # both admitted: they are at the upstream
        time.sleep(0.01)
    shed = httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}), timeout=30)
    for t in threads:
        t.join()
    assert shed.status_code == 503 and shed.headers["retry-after"] == "3"
    assert shed.json()["error"]["code"] == "overloaded"
    assert len(stub.requests) == 2  # the shed request never reached the upstream
    assert [r.status_code for r in results] == [200, 200]
    again = httpx.post(url + "/chat/completions", json=chat({"answer": BENIGN}), timeout=30)
    assert again.status_code == 200  # the places came free


def test_a_check_that_waits_too_long_for_a_slot_is_a_503(proxy, stub, rewriting):
    stub.revision_delay = 3  # the first check holds the only slot while its revision is made
    url = proxy(tenants=rewriting, max_concurrent_checks=1, queue_timeout_s=0.5)
    first = []
    holder = threading.Thread(target=lambda: first.append(httpx.post(
        url + "/chat/completions", json=chat({"answer": HARMFUL}), headers={"x-valueguard-policy": "rewriting"},
        timeout=30)))
    holder.start()
    deadline = time.monotonic() + 20
    while len(stub.requests) < 2 and time.monotonic() < deadline:  # the revision request is at the upstream
        time.sleep(0.01)
    waiting = httpx.post(url + "/check", json={"response": BENIGN}, timeout=30)
    holder.join()
    assert waiting.status_code == 503 and waiting.headers["retry-after"] == "1"
    assert first[0].json()["valueguard"]["action"] == "rewrite"
