"""The bounds a check keeps (docs/reliability.md, "Checking"): text in, the length read, the time a rewrite may take,
and what an error message may carry into a verdict or a log."""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from typing import Any

from valueguard.errors import ValueGuardError
from valueguard.estimation.estimate import Estimate
from valueguard.estimation.estimator import ValueEstimator
from valueguard.estimation.windows import sample_spans

# An error message longer than this is cut: it goes into every log line of a failed check.
ERROR_CHARS = 300
# A message sharing a piece this long with the response or prompt is withheld (unless log_text): the piece is
# found by probing the message in steps of SHARED_CHARS // 2, so any shared run of SHARED_CHARS is caught.
SHARED_CHARS = 24


class RewriteTimeout(ValueGuardError, TimeoutError):
    """The rewriter did not answer within the policy's rewrite_timeout."""


def require_text(response: Any, prompt: Any) -> None:
    """TypeError unless response is a str and prompt a str or None: no entry point coerces or guesses."""
    if not isinstance(response, str):
        raise TypeError(f"the response to check must be a str, got {type(response).__name__}")
    if prompt is not None and not isinstance(prompt, str):
        raise TypeError(f"the prompt must be a str or None, got {type(prompt).__name__}")


def call_before(fn: Callable[[str], Any], arg: str, deadline: float) -> Any:
    """fn(arg) on a daemon thread, waited for until `deadline` (time.monotonic()); RewriteTimeout past it.

    Python cannot stop a thread: a rewriter that hangs keeps its thread (a daemon, so it never holds the process
    open) until it returns, and its answer is then dropped. The check itself goes on at the deadline."""
    result: dict[str, Any] = {}
    done = threading.Event()
    context = contextvars.copy_context()  # the caller's context (tracing, callbacks), as if called in place

    def run() -> None:
        try:
            result["value"] = context.run(fn, arg)
        except BaseException as e:  # handed to the caller's thread, which decides
            result["error"] = e
        finally:
            done.set()

    threading.Thread(target=run, name="valueguard-rewrite", daemon=True).start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise RewriteTimeout("the rewrite did not finish within the policy's rewrite_timeout")
    if "error" in result:
        raise result["error"]
    return result["value"]


def scrub(error: BaseException, texts: tuple[str | None, ...], log_text: bool) -> str:
    """`Type: message` for a verdict and the log. Unless log_text, a message that quotes the response or prompt (a
    run of SHARED_CHARS in common) is withheld and only its type is kept: an exception from a rewriter or an
    embedder can carry the text it was given."""
    message = str(error)
    if not log_text and message:
        present = [t for t in texts if t]
        step = SHARED_CHARS // 2
        probe = message[: 4 * ERROR_CHARS]
        if any(probe[i:i + step] in t for t in present for i in range(0, max(1, len(probe) - step + 1), step)):
            message = "(message withheld: it quotes the checked text; log_text=True shows it)"
    if len(message) > ERROR_CHARS:
        message = message[:ERROR_CHARS] + "..."
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def estimate_bounded(estimator: ValueEstimator, response: str, prompt: str | None,
                     max_chars: int) -> tuple[Estimate, str | None]:
    """The estimate of a response, reading at most `max_chars` of it; and, when it was longer, a note saying what
    was read. Beyond max_chars: the head, the tail and evenly spaced windows between them (windows.sample_spans),
    estimated in one batch; the window most likely to work against a value decides (ValueEstimator.estimate)."""
    prompt_note = None
    if prompt is not None and len(prompt) > max_chars:
        prompt, prompt_note = prompt[:max_chars], f"prompt cut to its first {max_chars:,} characters"
    estimate = estimator.estimate(response, prompt, max_chars=max_chars)
    if len(response) <= max_chars:
        return estimate, prompt_note
    spans = sample_spans(len(response), max_chars)
    note = (f"response of {len(response):,} characters is over max_chars ({max_chars:,}): read its first "
            f"{spans[0][1]:,} and last {spans[-1][1] - spans[-1][0]:,} characters and {len(spans) - 2} evenly "
            f"spaced windows between") + (f"; {prompt_note}" if prompt_note else "")
    return estimate, note
