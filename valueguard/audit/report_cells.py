"""The report's table cells and text: every string from the summary is untrusted and goes through `_e` (html.escape);
`_user` marks it as the user's, so tests can tell it from ours. Shared by report.py and report_profiles.py."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from valueguard.values import VALUE_NAMES

EXCERPT = 240          # characters of prompt/response shown in the table row; the full text is one click away


def _e(x: Any) -> str:
    return escape("" if x is None else str(x), quote=True)


def _user(x: Any) -> str:
    """Untrusted text (ids, prompts, responses, paths), escaped and marked so tests can tell it from ours."""
    return f'<span class="vg-user">{_e(x)}</span>'


def _num(x: Any) -> float:
    """A finite float, or 0.0: a report with one odd number in it is still worth reading."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _excerpt(text: Any, n: int = EXCERPT) -> str:
    s = "" if text is None else str(text)
    if len(s) <= n:
        return _user(s)
    return f'{_user(s[:n].rstrip() + "…")}<details><summary>full text</summary>{_user(s)}</details>'


def _value_color(v: float) -> str:
    """Red for working against a value, green for upholding it; the stronger, the more saturated."""
    a = min(abs(v), 1.0) * 0.55
    return f"rgba(198,40,40,{a:.2f})" if v < 0 else f"rgba(46,125,50,{a:.2f})"


def _values_cells(values: dict[str, Any] | None) -> str:
    values = values or {}
    cells = []
    for name in VALUE_NAMES:
        if name in values:
            v = round(_num(values[name]), 2) + 0.0     # + 0.0: no "-0.00" for a score of -0.001
            cells.append(f'<td class="n" style="background:{_value_color(v)}">{v:+.2f}</td>')
        else:
            cells.append('<td class="n muted">—</td>')
    return "".join(cells)
