"""`make bench-server`: the guard server under load, on loopback, against a stub upstream with a fixed delay.

Three processes: a stub upstream (this file with --stub: answers each request with the text its body names,
after a fixed delay), `valueguard serve` in front of it (default policy and backend, decision logs on, to
a file), and this process's clients (httpx, asyncio). Distinct FULCRA responses, each
reaches the proxy once, so no check there is a cache hit (the library's baseline runs with its cache off). Measured:

- the library: `ValueGuard.check` on the same texts, one at a time, in this process (the baseline);
- 1 client: the latency the proxy adds to the upstream's (p50/p99), next to the library's check;
- 64 clients: errors (must be 0), every verdict against `guard.check` of the same text, latencies, requests/s;
- 256 clients over a --max-pending of 96: the overflow must be 503s with Retry-After, never a timeout.

A table on stdout, JSON in bench-results/bench_server.json.

    .venv/bin/python benchmarks/bench_server.py [--requests 640] [--delay-ms 50]      (after `make index`)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

OUT = Path("bench-results")
MAX_PENDING = 96
REVISION = "I would rather not help with that, but I am glad to talk it through or point you to someone who can."


def stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"p50_ms": round(statistics.median(s), 2), "p99_ms": round(s[min(len(s) - 1, int(0.99 * len(s)))], 2),
            "n": len(s)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------------------------ the stub

def run_stub(port: int, delay_s: float) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def completions(request):
        body = await request.json()
        await asyncio.sleep(delay_s)
        answer = body["stub"]["answer"] if "stub" in body else REVISION  # no script: a revision the proxy asked for
        return JSONResponse({"id": "chatcmpl-stub", "object": "chat.completion", "created": 1, "model": "stub",
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": answer}}]})

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, backlog=2048)


# ------------------------------------------------------------------------------------------------ the clients

def request_body(prompt: str, response: str) -> dict:
    return {"model": "stub", "messages": [{"role": "user", "content": prompt}], "stub": {"answer": response}}


async def load(url: str, pairs: list[tuple[str, str]], clients: int) -> tuple[list[dict], float]:
    """`clients` concurrent clients, each sending its share of `pairs` one after another."""
    results: list[dict] = []
    queue: asyncio.Queue = asyncio.Queue()
    for i, pair in enumerate(pairs):
        queue.put_nowait((i, pair))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        ready = asyncio.Barrier(clients + 1)

        async def client(n: int) -> None:
            # One request each first (its own made-up text), so every connection is open before timing starts.
            await http.post(url, json=request_body(f"warm-up {n} {url}", f"A warm-up answer, number {n}."))
            await ready.wait()
            while not queue.empty():
                i, (prompt, response) = queue.get_nowait()
                start = time.perf_counter()
                try:
                    r = await http.post(url, json=request_body(prompt, response))
                    status, body, retry = r.status_code, (r.json() if r.status_code == 200 else None), \
                        r.headers.get("retry-after")
                except httpx.HTTPError as e:
                    status, body, retry = type(e).__name__, None, None
                results.append({"i": i, "status": status, "ms": (time.perf_counter() - start) * 1000,
                                "body": body, "retry_after": retry})

        tasks = [asyncio.create_task(client(n)) for n in range(clients)]
        await ready.wait()
        start = time.perf_counter()
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
    return sorted(results, key=lambda r: r["i"]), wall


def wait_up(url: str, proc: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: the process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code in (200, 405):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not come up")


def texts(n: int) -> list[tuple[str, str]]:
    from valueguard.config import data_dir
    from valueguard.reference import ReferenceSet, fulcra_files

    seen, pairs = set(), []
    for r in ReferenceSet.from_files(fulcra_files(data_dir())):
        if r.response not in seen and 40 <= len(r.response) <= 1500:
            seen.add(r.response)
            pairs.append((r.prompt, r.response))
    if len(pairs) < n:
        raise SystemExit(f"only {len(pairs)} distinct FULCRA responses; ask for fewer --requests")
    return pairs[:n]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=640, help="requests in the 64-client run")
    parser.add_argument("--delay-ms", type=float, default=50.0, help="the stub upstream's fixed delay")
    parser.add_argument("--stub", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stub:
        return run_stub(args.stub, args.delay_ms / 1000)

    from valueguard import ValueEstimator, ValueGuard
    from valueguard.embedders.backends import default_backend

    single_n, over_n = 100, 512
    pairs = texts(args.requests + single_n + over_n)
    main_pairs, single_pairs, over_pairs = (pairs[:args.requests], pairs[args.requests:args.requests + single_n],
                                            pairs[args.requests + single_n:])
    OUT.mkdir(exist_ok=True)
    stub_port, proxy_port = free_port(), free_port()
    direct_url = f"http://127.0.0.1:{stub_port}/v1/chat/completions"
    proxy_url = f"http://127.0.0.1:{proxy_port}/v1/chat/completions"
    sync = httpx.Client(timeout=60)

    def rewrite(instruction: str) -> str:  # what the proxy's rewriter does: the same upstream, the same revision
        r = sync.post(direct_url, json={"model": "stub", "messages": [{"role": "user", "content": instruction}]})
        return r.json()["choices"][0]["message"]["content"]

    guard = ValueGuard.from_policy("default", estimator=ValueEstimator.default(cache_size=0), rewriter=rewrite)
    library: dict = {}

    def library_check(pair: tuple[str, str]) -> None:
        start = time.perf_counter()
        library[pair] = (guard.check(pair[1], pair[0]), (time.perf_counter() - start) * 1000)

    stub = subprocess.Popen([sys.executable, __file__, "--stub", str(stub_port), "--delay-ms", str(args.delay_ms)])
    log = (OUT / "bench_server.log").open("w")
    proxy = subprocess.Popen([sys.executable, "-c", "from valueguard.cli import main; main()", "serve",
                              "--upstream", f"http://127.0.0.1:{stub_port}/v1", "--port", str(proxy_port),
                              "--max-pending", str(MAX_PENDING)], stderr=log, stdout=log)
    try:
        wait_up(f"http://127.0.0.1:{stub_port}/v1/chat/completions", stub)
        wait_up(f"http://127.0.0.1:{proxy_port}/healthz", proxy)
        guard.check("warm-up")
        sync.post(proxy_url, json=request_body("warm-up", "A warm-up answer."))
        # One client, interleaved text by text (library, upstream alone, proxy), so noise falls on all three.
        direct1, proxy1 = [], []
        for i, pair in enumerate(single_pairs):
            library_check(pair)
            for url, out in ((direct_url, direct1), (proxy_url, proxy1)):
                start = time.perf_counter()
                r = sync.post(url, json=request_body(*pair))
                out.append({"i": i, "status": r.status_code, "ms": (time.perf_counter() - start) * 1000,
                            "body": r.json() if r.status_code == 200 else None})
        for pair in main_pairs:
            library_check(pair)
        direct64, direct64_wall = asyncio.run(load(direct_url, main_pairs, 64))
        proxy64, proxy64_wall = asyncio.run(load(proxy_url, main_pairs, 64))
        over, over_wall = asyncio.run(load(proxy_url, over_pairs, 256))
    finally:
        sync.close()
        for p in (proxy, stub):
            p.terminate()
            p.wait(20)
        log.close()

    def mismatches(results: list[dict], batch: list[tuple[str, str]]) -> int:
        bad = 0
        for r in results:
            if r["status"] != 200:
                continue
            v, _ = library[batch[r["i"]]]
            s = r["body"]["valueguard"]
            bad += (s["action"], s["rules"], s["values"]) != (v.action, v.rules, v.values)
        return bad

    lib_single = stats([library[p][1] for p in single_pairs])
    lib_all = stats([library[p][1] for p in main_pairs])
    added1 = [p["ms"] - d["ms"] for p, d in zip(proxy1, direct1)]
    report = {
        "backend": default_backend(), "upstream_delay_ms": args.delay_ms, "cpus": os.cpu_count(),
        "library_check": lib_all,
        "one_client": {"upstream": stats([r["ms"] for r in direct1]), "through_proxy": stats([r["ms"] for r in proxy1]),
                       "added_p50_ms": round(stats([r["ms"] for r in proxy1])["p50_ms"]
                                             - stats([r["ms"] for r in direct1])["p50_ms"], 2),
                       "library_check_same_texts": lib_single,
                       "proxy_check_elapsed": stats([r["body"]["valueguard"]["elapsed_ms"] for r in proxy1]),
                       "errors": sum(r["status"] != 200 for r in proxy1),
                       "verdict_mismatches": mismatches(proxy1, single_pairs), "paired_added": stats(added1)},
        "clients_64": {"requests": len(main_pairs), "errors": sum(r["status"] != 200 for r in proxy64),
                       "verdict_mismatches": mismatches(proxy64, main_pairs),
                       "upstream": stats([r["ms"] for r in direct64]),
                       "through_proxy": stats([r["ms"] for r in proxy64]),
                       "proxy_check_elapsed": stats([r["body"]["valueguard"]["elapsed_ms"] for r in proxy64
                                                     if r["status"] == 200]),
                       "upstream_rps": round(len(direct64) / direct64_wall, 1),
                       "proxy_rps": round(len(proxy64) / proxy64_wall, 1)},
        "clients_256_over_limit": {"requests": len(over_pairs), "max_pending": MAX_PENDING,
                                   "ok": sum(r["status"] == 200 for r in over),
                                   "shed_503": sum(r["status"] == 503 for r in over),
                                   "retry_after_on_every_503": all(r["retry_after"] for r in over if r["status"] == 503),
                                   "other_errors": sum(r["status"] not in (200, 503) for r in over),
                                   "rps": round(len(over) / over_wall, 1)},
    }
    (OUT / "bench_server.json").write_text(json.dumps(report, indent=2))
    print(table(report))
    c64 = report["clients_64"]
    if c64["errors"] or c64["verdict_mismatches"] or report["one_client"]["verdict_mismatches"] \
            or report["clients_256_over_limit"]["other_errors"]:
        raise SystemExit("bench-server: errors or verdict mismatches (see above)")


def table(r: dict) -> str:
    one, c64, over = r["one_client"], r["clients_64"], r["clients_256_over_limit"]
    rows = [
        ("library `guard.check`, same texts, one at a time", f"{one['library_check_same_texts']['p50_ms']:.2f}",
         f"{one['library_check_same_texts']['p99_ms']:.2f}", ""),
        ("1 client: upstream alone", f"{one['upstream']['p50_ms']:.2f}", f"{one['upstream']['p99_ms']:.2f}", ""),
        ("1 client: through the proxy", f"{one['through_proxy']['p50_ms']:.2f}", f"{one['through_proxy']['p99_ms']:.2f}",
         f"errors {one['errors']}, verdicts differing {one['verdict_mismatches']}"),
        ("1 client: added by the proxy (paired)", f"{one['paired_added']['p50_ms']:.2f}",
         f"{one['paired_added']['p99_ms']:.2f}",
         f"{one['paired_added']['p50_ms'] / one['library_check_same_texts']['p50_ms']:.2f}x the library's p50"),
        ("64 clients: upstream alone", f"{c64['upstream']['p50_ms']:.2f}", f"{c64['upstream']['p99_ms']:.2f}",
         f"{c64['upstream_rps']} req/s"),
        ("64 clients: through the proxy", f"{c64['through_proxy']['p50_ms']:.2f}",
         f"{c64['through_proxy']['p99_ms']:.2f}",
         f"{c64['proxy_rps']} req/s, {c64['requests']} requests, errors {c64['errors']}, "
         f"verdicts differing {c64['verdict_mismatches']}"),
        ("64 clients: the check inside the proxy", f"{c64['proxy_check_elapsed']['p50_ms']:.2f}",
         f"{c64['proxy_check_elapsed']['p99_ms']:.2f}", ""),
        (f"256 clients, --max-pending {over['max_pending']}", "", "",
         f"{over['ok']} ok, {over['shed_503']} shed with 503 + Retry-After, {over['other_errors']} other errors, "
         f"{over['rps']} req/s"),
    ]
    head = (f"backend {r['backend']}, stub upstream delay {r['upstream_delay_ms']:g} ms, {r['cpus']} CPUs, "
            "loopback, default policy, every text checked once\n\n")
    lines = ["| | p50 ms | p99 ms | |", "|---|---|---|---|"] + [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return head + "\n".join(lines)


if __name__ == "__main__":
    main()
