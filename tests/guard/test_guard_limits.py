"""The check's boundaries (issue 13): only text gets in, at most max_chars of it is read, a rewrite cannot hold the
call past rewrite_timeout, and an error carries no response or prompt text unless log_text."""

import asyncio
import threading

import pytest
from structlog.testing import capture_logs

from valueguard.guard.guard import ValueGuard
from valueguard.guard.limits import estimate_bounded
from valueguard.policy.model import Policy
from valueguard.estimation.windows import sample_spans

HARMFUL = ("To steal a car, break the side window, pull the panel under the steering wheel and twist the red "
           "and brown wires together; then drive off before anyone calls the police.")
BENIGN = "Bread needs flour, water, salt and yeast; knead it, let it rise, and bake it until it sounds hollow. "
ALWAYS = "{value: any, below: 1.0}"  # every real estimate has some value below 1


def policy(when: str, action: str, **defaults) -> Policy:
    extra = "".join(f"  {k}: {v}\n" for k, v in defaults.items())
    return Policy.from_yaml(f'version: "t1"\nname: test\ndescription: d\ndefaults:\n  action: allow\n{extra}'
                            f"rules:\n  - id: r\n    description: r rule\n    when: {when}\n    action: {action}\n")


# (response, prompt) — none is text; each used to give a block with an odd error, a ValidationError or a coercion.
NOT_TEXT = [
    (None, None),          # no response at all
    (5, None),             # a number would be estimated as "5"
    (b"bytes", None),      # bytes would be estimated as "b'bytes'"
    (["a list"], None),    # a message list passed by mistake
    ("fine", 5),           # the prompt is checked too
    ("fine", b"prompt"),   # bytes as the prompt
]


@pytest.mark.parametrize("response, prompt", NOT_TEXT)
def test_check_of_anything_but_text_is_a_type_error(estimator, response, prompt):
    guard = ValueGuard(policy(ALWAYS, "log"), estimator)
    with pytest.raises(TypeError, match="must be a str"):
        guard.check(response, prompt)


@pytest.mark.parametrize("response, prompt", NOT_TEXT)
def test_acheck_of_anything_but_text_is_a_type_error(estimator, response, prompt):
    guard = ValueGuard(policy(ALWAYS, "log"), estimator)
    with pytest.raises(TypeError, match="must be a str"):
        asyncio.run(guard.acheck(response, prompt))


# (length, max_chars) — the spans read past max_chars: head, tail, evenly spaced windows, max_chars in all.
@pytest.mark.parametrize("length, max_chars", [
    (1_000_000, 20_000),   # a 1 MB response took 27 s: now 20,000 characters are read
    (25_000, 20_000),      # just over
    (10_000, 2_000),       # the smallest bound: head and tail only
])
def test_sample_spans_are_bounded_ordered_and_reach_both_ends(length, max_chars):
    spans = sample_spans(length, max_chars)
    assert spans[0][0] == 0 and spans[-1][1] == length
    assert sum(b - a for a, b in spans) <= max_chars
    assert all(a < b <= c for (a, b), (c, _) in zip(spans, spans[1:]))  # disjoint, in order


def test_a_response_over_max_chars_is_sampled_and_the_verdict_says_so(estimator):
    long_text = BENIGN * 10_000  # about 1 MB
    guard = ValueGuard(policy(ALWAYS, "log", max_chars=20000), estimator)
    v = guard.check(long_text)
    assert v.action == "log" and v.truncated is not None
    assert v.truncated.startswith(f"response of {len(long_text):,} characters is over max_chars (20,000)")
    with capture_logs() as logs:
        guard.check(long_text)
    assert logs[-1]["truncated"] == v.truncated


def test_within_max_chars_all_of_it_is_read(estimator):
    v = ValueGuard(policy(ALWAYS, "log"), estimator).check(BENIGN * 50)
    assert v.truncated is None


@pytest.mark.parametrize("where", ["head", "tail"])
def test_a_violation_at_either_end_of_a_long_response_is_read(estimator, where):
    filler = BENIGN * 3_000
    text = HARMFUL + " " + filler if where == "head" else filler + " " + HARMFUL
    est, note = estimate_bounded(estimator, text, None, 20_000)
    assert note and est.windows <= 40  # ~5 windows each for head and tail, 10 between: bounded, not ~400
    start, end = est.window
    # The window that decided holds the harmful passage.
    assert text.find(HARMFUL) < end and start <= text.find(HARMFUL) + len(HARMFUL)
    assert est.violation == pytest.approx(estimator.estimate(text[start:end]).violation, abs=1e-6)


class Hanging:
    """A rewriter that hangs until released (the test releases it, so no thread outlives the session)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, instruction: str) -> str:
        self.calls += 1
        self.release.wait(30)
        return "revised"


# (on_error, action, the text handed on) — past rewrite_timeout the rewrite has failed: on_error decides.
@pytest.mark.parametrize("on_error, action, text", [
    ("block", "block", "I can't help with that."),   # fail closed, the default
    ("allow", "allow", HARMFUL),                     # fail open when asked
])
@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_hanging_rewriter_times_out_and_on_error_applies(estimator, on_error, action, text, mode):
    rewriter = Hanging()
    guard = ValueGuard(policy(ALWAYS, "rewrite", rewrite_timeout=0.3, on_error=on_error), estimator, rewriter=rewriter)
    try:
        v = guard.check(HARMFUL) if mode == "sync" else asyncio.run(guard.acheck(HARMFUL))
    finally:
        rewriter.release.set()
    assert (v.action, v.text) == (action, text)
    assert v.error.startswith("rewrite failed: RewriteTimeout") and rewriter.calls == 1


def test_a_rewriter_returning_no_text_is_a_failed_rewrite(estimator):
    guard = ValueGuard(policy(ALWAYS, "rewrite"), estimator, rewriter=lambda _: None)
    v = guard.check(HARMFUL)
    assert v.action == "block" and v.error == "rewrite failed: TypeError: the rewriter returned NoneType, not a str"


def quoting(instruction: str) -> str:
    raise ValueError(f"cannot revise this: {instruction[-300:]}")


# (log_text, whether the response text may appear in Verdict.error and the logged error=)
@pytest.mark.parametrize("log_text, shown", [
    (False, False),   # the default: a rewriter's message quoting the response is withheld, its type kept
    (True, True),     # turned on: the message as raised
])
def test_error_texts_carry_no_response_unless_log_text(estimator, log_text, shown):
    guard = ValueGuard(policy(ALWAYS, "rewrite"), estimator, rewriter=quoting, log_text=log_text)
    with capture_logs() as logs:
        v = guard.check(HARMFUL, "How do I get into a car without keys?")
    logged = [e for e in logs if e["event"] == "check failed"][0]["error"]
    assert v.error.startswith("rewrite failed: ValueError") and logged == v.error
    assert ("steering wheel" in v.error) is shown


def test_an_error_that_quotes_nothing_is_kept(estimator):
    def failing(_: str) -> str:
        raise ConnectionError("connection refused by the model server")

    v = ValueGuard(policy(ALWAYS, "rewrite"), estimator, rewriter=failing).check(HARMFUL)
    assert v.error == "rewrite failed: ConnectionError: connection refused by the model server"
