"""Async streaming through a guarded model: hold-back (the default) and incremental, with a real local model.

Hold-back reads the whole response and checks it before the first chunk goes out: nothing unchecked reaches the
caller, and the first chunk waits for the whole answer. Incremental releases each sentence once the text so far is
checked: earlier first chunks, but a sentence already out is not taken back when a later one is flagged.

    make index && .venv/bin/python examples/async_streaming.py
"""

from __future__ import annotations

import asyncio
import time

from lcel_chain import SmolLM2ChatModel, quiet_logs  # the local SmolLM2 as a LangChain chat model (same folder)

from valueguard import ValueGuard
from valueguard.integrations.langchain import GuardedChatModel

QUESTION = "Give me three tips for a calm morning routine."


async def stream(model: GuardedChatModel) -> None:
    """Print the chunks as they arrive, then when the first and the last came and the verdict."""
    start = time.perf_counter()
    first_at, chunks, verdict = None, 0, None
    async for chunk in model.astream(QUESTION):
        if chunk.text:
            first_at = first_at or time.perf_counter() - start
            chunks += 1
            print(chunk.text, end="", flush=True)
        verdict = chunk.response_metadata.get("valueguard", verdict)
    summary = f"{verdict['action']} {verdict['rules'] or ''}" if verdict else "no check (no text)"
    print(f"\n-> {chunks} chunks; first after {first_at or 0:.1f}s, last after {time.perf_counter() - start:.1f}s; "
          f"verdict: {summary}")


async def main() -> None:
    quiet_logs()
    model = SmolLM2ChatModel()
    guard = ValueGuard.from_policy("default", rewriter=model)
    # Load both models before timing anything: the first call would otherwise pay for it.
    guard.estimator.estimate("warm-up")
    await model.ainvoke("Say hello in one word.")
    print(f"Q: {QUESTION}\n\n== stream_mode='hold' (guard.wrap's default)")
    await stream(guard.wrap(model))
    print("\n== stream_mode='incremental'")
    await stream(GuardedChatModel(inner=model, guard=guard, stream_mode="incremental"))


if __name__ == "__main__":
    asyncio.run(main())
