"""benchmarks/teach_curve.py: the split behind docs/teach.md's learning curve never shares a prompt."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from valueguard.reference import ReferenceSet

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from teach_curve import SIZES, TAUGHT, split_by_prompt, table  # noqa: E402


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_no_prompt_is_both_taught_and_tested(shared_data, seed):
    prompts = [r.prompt for r in ReferenceSet.from_files([shared_data / TAUGHT])]
    test, pool = split_by_prompt(prompts, len(prompts) - max(SIZES), seed)
    assert not {prompts[i] for i in test} & {prompts[i] for i in pool}
    assert sorted([*test, *pool]) == list(range(len(prompts)))  # every answer is used once
    assert len(test) >= len(prompts) - max(SIZES) and len(pool) <= max(SIZES)
    other, _ = split_by_prompt(prompts, len(prompts) - max(SIZES), seed + 1)
    assert set(other) != set(test)  # the seeds are different splits


def test_the_table_has_one_line_per_size_with_the_spread_over_seeds():
    rows = [{"seed": s, "taught": n, "index_rows": 100 + n, "test_rows": 20, "test_violations": 2,
             "ap": 0.1 * s, "auc": 0.5, "r": 0.2, "fit_seconds": 1.0} for s in range(2) for n in (0, 50)]
    out = table(rows, (0, 50))
    assert "| 50 | 150 | 0.05 ± 0.05 | 0.50 ± 0.00 |" in out and "2 seed(s)" in out
