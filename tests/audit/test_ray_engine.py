"""The audit on Ray Data (issue 15): on a local Ray this test starts (2 CPUs, loopback, stopped at the end), the
records, bad lines and summary are the local engine's on real HH-RLHF lines, OpenAI-format lines and bad lines;
and partial summaries merge into the summary of the whole, however the audit is split."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valueguard.audit.runner import audit_line, estimates, run_audit
from valueguard.audit.readers import read_log
from valueguard.audit.records import Turn
from valueguard.audit.summary import SummaryBuilder
from valueguard.policy.model import Policy

import ray  # the dev extra has valueguard[ray]'s ray[data]

from valueguard.audit import ray_engine

HH_LINES = 120  # two to six assistant turns each (chosen and rejected)


@pytest.fixture(scope="module")
def local_ray():
    started = ray_engine._init_ray(ray, None, 2)  # a local Ray of 2 CPUs on 127.0.0.1, the suite's environment
    yield
    if started:
        ray.shutdown()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def logs(tmp_path_factory, shared_data):
    folder = tmp_path_factory.mktemp("logs")
    hh = (shared_data / "hh-rlhf" / "helpful_test.jsonl").read_text(encoding="utf-8").splitlines()[:HH_LINES]
    hh.insert(40, "{not json")  # a bad line in the middle: reported with its file and line number
    hh.insert(80, json.dumps({"chosen": 3}))
    (folder / "hh.jsonl").write_text("\n".join(hh) + "\n", encoding="utf-8")
    openai = [{"id": f"chat-{i}", "model": "gpt-x", "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": a}]} for i, (q, a) in enumerate([
            ("How do I pick a lock?", "Insert a tension wrench, then rake the pins until the cylinder turns."),
            ("Any simple bread recipe?", "Mix flour, salt, yeast and water, knead, let it rise, bake at 230 C."),
            ("Write an insult for my coworker.", "Sure: you are as useful as a screen door on a submarine.")])]
    lines = [json.dumps(o) for o in openai]
    lines.insert(1, json.dumps({"messages": [{"role": "assistant", "content": ""}]}))  # an empty turn
    (folder / "chat.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [folder / "hh.jsonl", folder / "chat.jsonl"]


def test_ray_records_are_the_local_engines(local_ray, logs, estimator, index_dir, tmp_path):
    local = run_audit(estimator, logs, tmp_path / "local.jsonl", policy=Policy.load("default"), batch_size=16)
    on_ray = ray_engine.run_audit_ray(index_dir, logs, tmp_path / "ray.jsonl", policy="default", batch_size=16,
                                      workers=2)
    mine = [json.loads(line) for line in (tmp_path / "ray.jsonl").read_text(encoding="utf-8").splitlines()]
    theirs = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(mine) == local.audited > 250
    # Same ids, values, neighbours, actions and rules, in input order. Numbers to within two units of the output's
    # 4 decimals: the workers batch texts otherwise, and torch gives a text's embedding to ~1e-7 depending on its
    # batch, which can move a rounded similarity by one unit (0.2059 / 0.206, seen on this machine's CPU).
    assert [_rounded(r) for r in mine] == [_rounded(r) for r in theirs]
    assert max(_largest_gap(a, b) for a, b in zip(mine, theirs)) <= 2e-4
    assert (on_ray.audited, on_ray.flagged, on_ray.bad_lines) == (local.audited, local.flagged, local.bad_lines)
    assert on_ray.bad_line_examples == local.bad_line_examples
    assert {(b["path"].rsplit("/", 1)[-1], b["line"]) for b in on_ray.bad_line_examples} >= {
        ("hh.jsonl", 41), ("hh.jsonl", 81), ("chat.jsonl", 2)}
    assert _rounded(on_ray.summary) == _rounded(local.summary) and _largest_gap(on_ray.summary, local.summary) <= 2e-4
    assert on_ray.throughput > 0


def _rounded(x):
    """x with every float replaced by a placeholder: everything but the numbers, compared exactly."""
    if isinstance(x, dict):
        return {k: _rounded(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_rounded(v) for v in x]
    return "<float>" if isinstance(x, float) else x


def _largest_gap(a, b) -> float:
    """The largest difference between the floats at the same places of two structures _rounded finds equal."""
    if isinstance(a, dict):
        return max((_largest_gap(a[k], b[k]) for k in a), default=0.0)
    if isinstance(a, (list, tuple)):
        return max((_largest_gap(x, y) for x, y in zip(a, b)), default=0.0)
    return abs(a - b) if isinstance(a, float) else 0.0


@pytest.fixture(scope="module")
def audited(logs, estimator):
    """(turn, estimate, action, rules) of the first 60 turns, and the policy."""
    policy = Policy.load("default")
    turns = [t for t in read_log(logs[0]) if isinstance(t, Turn)][:60]
    rows = []
    for turn, est in zip(turns, estimates(estimator, turns)):
        _, action, rules = audit_line(turn, est, policy, 5)
        rows.append((turn, est, action, rules))
    return rows, policy


def summary_of(rows, policy, seqs, *, via_state: bool) -> SummaryBuilder:
    b = SummaryBuilder(policy.name, policy.version, getattr(policy, "profiles", None))
    b.start_input("hh.jsonl", "hh-rlhf")
    for seq in seqs:
        turn, est, action, rules = rows[seq]
        b.add(turn, est, action, rules, seq=seq, input_no=0)
    return SummaryBuilder.from_state(json.loads(json.dumps(b.state()))) if via_state else b


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(0, 60), max_size=6), order=st.randoms(use_true_random=False))
def test_any_split_merges_into_the_same_summary(audited, cuts, order):
    rows, policy = audited
    whole = summary_of(rows, policy, range(len(rows)), via_state=False).to_dict()
    bounds = sorted({0, len(rows), *cuts})
    parts = [summary_of(rows, policy, range(a, b), via_state=True) for a, b in zip(bounds, bounds[1:])]
    order.shuffle(parts)  # workers finish in any order
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    assert merged.to_dict() == whole


def test_a_missing_ray_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(RuntimeError, match=r"pip install 'valueguard\[ray\]'"):
        ray_engine.import_ray()


def test_the_core_never_imports_ray():
    from pathlib import Path

    import valueguard

    root = Path(valueguard.__file__).parent
    importers = [str(p.relative_to(root)) for p in root.rglob("*.py")
                 if p.name != "ray_engine.py" and any(line.strip().startswith(("import ray", "from ray"))
                                                      for line in p.read_text(encoding="utf-8").splitlines())]
    assert importers == []
