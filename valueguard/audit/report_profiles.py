"""The report's value profiles (the policy's `profiles:`): each target drawn on the radar chart beside the
sources' mean profiles, and the turns farthest from it. Everything from the summary is untrusted text."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from valueguard.audit.report_cells import _e, _excerpt, _num, _user, _values_cells
from valueguard.values import VALUE_NAMES

TARGET_COLOR = "#222"


def target_shapes(profiles: dict[str, Any], point: Callable[[int, float], tuple[float, float]]) -> list[str]:
    """SVG for each profile's target: a dashed outline through the values it names (the others are don't-care,
    so nothing is drawn on their axes) and a dot on each."""
    out = []
    for name, info in profiles.items():
        target = (info or {}).get("target") or {}
        named = [(i, max(-1.0, min(1.0, _num(target[v])))) for i, v in enumerate(VALUE_NAMES) if v in target]
        pts = [point(i, v) for i, v in named]
        parts = [f'<g class="vg-radar-target" data-profile="{_e(name)}"><title>target: {_e(name)}</title>']
        if len(pts) >= 2:
            parts.append(f'<polygon points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}" fill="none" '
                         f'stroke="{TARGET_COLOR}" stroke-width="2" stroke-dasharray="6 3"/>')
        parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{TARGET_COLOR}"/>' for x, y in pts]
        out.append("".join(parts) + "</g>")
    return out


def profiles_section(profiles: dict[str, Any]) -> str:
    """One table per profile: the turns farthest from its target, with each source's mean distance."""
    out = []
    for name, info in profiles.items():
        info = info or {}
        target = ", ".join(f"{_e(v)} {_num(s):+g}" for v, s in (info.get("target") or {}).items())
        means = "; ".join(f"{_user(src)} {_num(d):.3f}" for src, d in (info.get("mean_distance") or {}).items())
        out.append(f'<h2>Farthest from the profile {_user(name)}</h2><p class="muted">Target: {target} (dashed on '
                   f'the radar; the values it leaves out do not count). Distance 0 is the target, 1 its opposite. '
                   f'Mean distance per source: {means or "—"}.</p>')
        out.append(f'<table class="vg-profile" data-profile="{_e(name)}"><thead><tr><th>distance</th><th>id</th>'
                   '<th>source</th>' + "".join(f"<th>{v}</th>" for v in VALUE_NAMES)
                   + "<th>prompt</th><th>response</th></tr></thead><tbody>")
        rows = info.get("farthest") or []
        for row in rows:
            out.append(f'<tr class="vg-far"><td class="n">{_num(row.get("distance")):.3f}</td>'
                       f'<td>{_user(row.get("id"))}</td><td>{_user(row.get("source") or "—")}</td>'
                       f'{_values_cells(row.get("values"))}'
                       f'<td class="t">{_excerpt(row.get("prompt")) if row.get("prompt") else "—"}</td>'
                       f'<td class="t r">{_excerpt(row.get("response"))}</td></tr>')
        if not rows:
            out.append(f'<tr><td colspan="{5 + len(VALUE_NAMES)}" class="muted">No turns.</td></tr>')
        out.append("</tbody></table>")
    return "\n".join(out)
