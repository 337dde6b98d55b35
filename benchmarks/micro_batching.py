"""MicroBatcher: concurrent embed calls from many threads coalesce into one call of the wrapped embedder.

No background thread: the first caller to find nobody embedding leads. It waits up to `max_wait_ms` for
company (0 by default: a lone caller pays nothing), takes the queued texts (up to `max_batch`) in arrival
order, makes one `embed` call and hands every caller its own rows. Callers who arrive while a batch runs
queue up, and one of them leads the next batch, so batches form by themselves under load.

If the coalesced call fails, each caller's texts are embedded again on their own, so an exception reaches
only the caller whose texts raised it. Whether coalescing pays depends on the backend (README, "Micro-batching").
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Sequence

import numpy as np

from valueguard.embedders.base import Embedder


class _Request:
    __slots__ = ("texts", "done", "result", "error")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.done = False
        self.result: np.ndarray | None = None
        self.error: BaseException | None = None


class MicroBatcher:
    """An Embedder that coalesces concurrent calls to `embedder` (thread-safe; use one per embedder)."""

    def __init__(self, embedder: Embedder, *, max_batch: int = 32, max_wait_ms: float = 0.0) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.embedder = embedder
        self.model_id = embedder.model_id
        self.backend = getattr(embedder, "backend", None)
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.calls = 0  # embed calls made on the wrapped embedder (tests and benchmarks read these)
        self.requests = 0
        self._pending: deque[_Request] = deque()
        self._leading = False
        self._cond = threading.Condition()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        req = _Request(list(texts))
        if not req.texts:
            return self.embedder.embed([])
        with self._cond:
            self.requests += 1
            self._pending.append(req)
            while not req.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                batch = self._gather()
                self._cond.release()
                try:
                    self._serve(batch)
                finally:
                    self._cond.acquire()
                    # A batch cut short (KeyboardInterrupt in the leader) goes back to the queue, not lost.
                    self._pending.extendleft(reversed([r for r in batch if not r.done]))
                    self._leading = False
                    self._cond.notify_all()
        if req.error is not None:
            raise req.error
        return req.result  # type: ignore[return-value]

    def _gather(self) -> list[_Request]:
        """Called with the lock held: wait up to max_wait for more texts, then take up to max_batch of them."""
        deadline = time.monotonic() + self.max_wait
        while self.max_wait and sum(len(r.texts) for r in self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        batch, n = [], 0
        while self._pending and (not batch or n + len(self._pending[0].texts) <= self.max_batch):
            batch.append(self._pending.popleft())
            n += len(batch[-1].texts)
        return batch

    def _serve(self, batch: list[_Request]) -> None:
        try:
            self.calls += 1
            rows = self.embedder.embed([t for r in batch for t in r.texts])
        except Exception as e:  # noqa: BLE001 - handed to the caller(s) below
            if len(batch) == 1:
                batch[0].error, batch[0].done = e, True
                return
            for r in batch:  # find whose texts fail: each caller gets its own result or its own exception
                self._serve([r])
            return
        at = 0
        for r in batch:
            r.result, r.done = rows[at:at + len(r.texts)], True
            at += len(r.texts)

    def __getattr__(self, name: str):
        # dimension, max_seq_length, ... of the wrapped embedder (only called for names not found here).
        if name == "embedder":
            raise AttributeError(name)
        return getattr(self.embedder, name)

    def __repr__(self) -> str:
        return f"MicroBatcher({self.embedder!r}, max_batch={self.max_batch}, max_wait_ms={self.max_wait * 1000:g})"
