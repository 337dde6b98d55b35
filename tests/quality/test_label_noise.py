"""benchmarks/label_noise.py: the text-only ceiling behind docs/quality.md's label-noise estimate (what counts as a
refusal: tests/reference/test_hygiene.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from label_noise import text_only_ceiling  # noqa: E402


def test_distinct_texts_rank_perfectly_and_identical_ones_tie():
    y = np.array([True, False, False, False])
    assert text_only_ceiling(y, ["a", "b", "c", "d"]) == pytest.approx(1.0)
    # One text labelled both ways: a tie of two rows, the violation first half of the time.
    tied = text_only_ceiling(np.array([True, False, False]), ["same", "same", "other"], draws=400)
    assert 0.6 < tied < 0.9  # exactly 0.75 in expectation (1 or 1/2)
