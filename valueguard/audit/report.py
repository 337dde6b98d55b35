"""The audit report: one self-contained HTML file rendered from an audit summary (`valueguard.audit.summary`).

The file must open anywhere, offline and years later, so nothing in it is fetched: CSS is inline, charts are
inline SVG drawn here in Python (they render with scripts off), and the only script (table sort and filter) is
inline too. A Content-Security-Policy meta tag makes that a rule the browser enforces: no network at all, and
only our own script, by hash, may run. Responses are untrusted text; every string from the summary goes through
`html.escape`, and should an escape ever be missed, the CSP still refuses any injected script.
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

# EXCERPT is read from here by the tests (the report's one length), though the cells use it.
from valueguard.audit.report_cells import EXCERPT, _e, _excerpt, _num, _user, _values_cells  # noqa: F401
from valueguard.audit.report_profiles import profiles_section, target_shapes
from valueguard.policy.actions import ACTIONS
from valueguard.values import VALUE_NAMES

ACTION_COLORS = {"allow": "#2e7d32", "log": "#1565c0", "rewrite": "#ef6c00", "block": "#c62828"}
# Okabe-Ito: told apart by most colour-blind readers; more sources than colours cycle through them again.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
WORST_SHOWN = 3        # "most negative values" listed per flagged row

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1240px;
 padding:16px 24px;color:#1d1d1f;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
table{border-collapse:collapse}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f4f4f6}td.n{text-align:right;font-variant-numeric:tabular-nums}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:8px 0}.tile{border:1px solid #ddd;border-radius:6px;padding:6px 12px}
.tile b{display:block;font-size:20px}.charts{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}
.hists{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:8px}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:12px;height:12px;margin-right:4px;
 vertical-align:-1px;border-radius:2px}
#flagged{width:100%;font-size:13px}#flagged th[data-sort]{cursor:pointer}#flagged td.t{min-width:200px;
 white-space:pre-wrap;word-break:break-word}#flagged td.r{min-width:380px}#flagged td.w{white-space:nowrap}
#flagged tr.vg-row>td:first-child{min-width:150px;max-width:200px;overflow-wrap:anywhere}tr.vg-evidence-row>td{border-top:0;padding-left:24px}
.vals td:nth-child(4){white-space:nowrap}.vals th{font-size:11px}tr.vg-neighbor-text td{color:#444;background:#fafafa;border-bottom:2px solid #ccc}.vals td{font-size:12px;padding:2px 4px}.muted{color:#777}
svg text{font:11px system-ui,sans-serif;fill:#333}.controls{margin:6px 0}
.vg-ring{fill:#777;paint-order:stroke;stroke:#fff;stroke-width:3px}.row{display:flex;gap:32px;flex-wrap:wrap}
"""

# Sorting and filtering of the flagged table only: everything else works with scripts off.
JS = """(function () {
  var table = document.getElementById('flagged');
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.querySelectorAll('tr.vg-row'));
  function evidence(r) {  // the evidence row right under a flagged row travels and hides with it
    var n = r.nextElementSibling;
    return n && n.classList.contains('vg-evidence-row') ? n : null;
  }
  var q = document.getElementById('vg-filter'), act = document.getElementById('vg-action');
  var count = document.getElementById('vg-count');
  function apply() {
    var text = q.value.toLowerCase(), a = act.value, shown = 0;
    rows.forEach(function (r) {
      var ok = (!a || r.getAttribute('data-action') === a) &&
               (!text || r.textContent.toLowerCase().indexOf(text) >= 0);
      r.hidden = !ok;
      if (evidence(r)) evidence(r).hidden = !ok;
      if (ok) shown++;
    });
    count.textContent = shown + ' of ' + rows.length + ' shown';
  }
  function key(r, i) {
    var c = r.cells[i], k = c.getAttribute('data-key');
    k = k === null ? c.textContent.trim() : k;
    return k !== '' && !isNaN(k) ? Number(k) : k.toLowerCase();
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
    if (!th.hasAttribute('data-sort')) return;
    th.addEventListener('click', function () {
      var dir = th.getAttribute('aria-sort') === 'ascending' ? -1 : 1;
      Array.prototype.forEach.call(th.parentNode.cells, function (c) { c.removeAttribute('aria-sort'); });
      rows.sort(function (x, y) {
        var a = key(x, i), b = key(y, i);
        return (a < b ? -1 : a > b ? 1 : 0) * dir;
      });
      var pairs = rows.map(function (r) { return [r, evidence(r)]; });
      pairs.forEach(function (p) { body.appendChild(p[0]); if (p[1]) body.appendChild(p[1]); });
      th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending');
    });
  });
  q.addEventListener('input', apply);
  act.addEventListener('change', apply);
  apply();
  document.body.setAttribute('data-vg-ready', '1');
})();"""

_JS_HASH = base64.b64encode(hashlib.sha256(JS.encode("utf-8")).digest()).decode("ascii")
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{_JS_HASH}'; "
       "img-src 'none'; base-uri 'none'; form-action 'none'")


# ---------------------------------------------------------------------------------------------------- header


def _header(s: dict[str, Any]) -> str:
    policy, totals = s.get("policy") or {}, s.get("totals") or {}
    actions = s.get("actions") or {}
    turns = int(_num(totals.get("turns")))
    flagged = int(_num(totals.get("flagged")))
    share = f" ({flagged / turns:.1%})" if turns else ""
    out = [f'<h1>valueguard audit report</h1><p>Policy <b id="vg-policy">{_user(policy.get("name") or "—")}</b> '
           f'version <b>{_user(policy.get("version") or "—")}</b></p>',
           '<div class="row"><div><h2>Totals</h2><div class="tiles" id="vg-totals">',
           f'<div class="tile">turns<b>{turns}</b></div>',
           f'<div class="tile">flagged<b>{flagged}{share}</b></div>',
           f'<div class="tile">bad lines<b>{int(_num(totals.get("bad_lines")))}</b></div></div></div>',
           '<div><h2>Actions</h2><div class="tiles" id="vg-actions">']
    for a in ACTIONS:
        out.append(f'<div class="tile" data-action="{a}"><span class="sw" style="background:{ACTION_COLORS[a]}">'
                   f'</span>{a}<b>{int(_num(actions.get(a)))}</b></div>')
    out.append("</div>" + _actions_bar(actions) + "</div></div>")
    out.append("<div class=\"row\"><div><h2>Inputs</h2><table id=\"vg-inputs\"><thead><tr><th>path</th><th>format</th><th>turns</th>"
               "<th>bad lines</th></tr></thead><tbody>")
    for inp in s.get("inputs") or []:
        out.append(f'<tr><td>{_user(inp.get("path"))}</td><td>{_user(inp.get("format"))}</td>'
                   f'<td class="n">{int(_num(inp.get("turns")))}</td>'
                   f'<td class="n">{int(_num(inp.get("bad_lines")))}</td></tr>')
    out.append("</tbody></table></div>")
    rules = sorted((s.get("rules") or {}).items(), key=lambda kv: (-_num(kv[1]), str(kv[0])))
    out.append('<div><h2>Rules fired</h2>')
    if rules:
        out.append('<table id="vg-rules"><thead><tr><th>rule</th><th>turns</th></tr></thead><tbody>')
        out += [f'<tr><td>{_user(r)}</td><td class="n">{int(_num(n))}</td></tr>' for r, n in rules]
        out.append("</tbody></table>")
    else:
        out.append('<p class="muted">No rule fired.</p>')
    out.append("</div>")
    examples = s.get("bad_line_examples") or []
    out.append(f'<div><h2>Bad lines</h2><p>{int(_num(totals.get("bad_lines")))} line(s) could not be read'
               f'{", for example:" if examples else "."}</p>')
    if examples:
        out.append('<ul id="vg-bad-lines">')
        out += [f'<li>{_user(b.get("path"))}:{int(_num(b.get("line")))}: {_user(b.get("reason"))}</li>'
                for b in examples]
        out.append("</ul>")
    out.append("</div></div>")
    return "\n".join(out)


def _actions_bar(actions: dict[str, Any], width: int = 420, height: int = 18) -> str:
    """One stacked bar of the action shares: the mix is read at a glance, the tiles above give the counts."""
    total = sum(max(_num(actions.get(a)), 0) for a in ACTIONS)
    parts, x = [], 0.0
    for a in ACTIONS:
        n = max(_num(actions.get(a)), 0)
        w = width * n / total if total else 0
        if w > 0:
            parts.append(f'<rect class="vg-action-bar" data-action="{a}" x="{x:.1f}" y="0" width="{w:.1f}" '
                         f'height="{height}" fill="{ACTION_COLORS[a]}"><title>{a}: {int(n)}</title></rect>')
        x += w
    return (f'<svg class="vg-actions" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'role="img" aria-label="share of each action">{"".join(parts)}</svg>')


# ---------------------------------------------------------------------------------------------------- charts


def _radar(sources: dict[str, Any], size: int = 440, profiles: dict[str, Any] | None = None) -> str:
    """Radius maps -1 at the centre to +1 at the rim, so 0 ("no connection") is the dashed middle ring."""
    c, rim = size / 2, size / 2 - 85
    n = len(VALUE_NAMES)

    def point(i: int, v: float) -> tuple[float, float]:
        ang = -math.pi / 2 + 2 * math.pi * i / n
        r = rim * (v + 1) / 2          # not clamped here: the axis labels sit beyond +1
        return c + r * math.cos(ang), c + r * math.sin(ang)

    out = [f'<svg class="vg-radar" width="{size}" height="{size}" viewBox="0 0 {size} {size}" role="img" '
           f'aria-label="mean value profile per source">']
    for level in (-0.5, 0.0, 0.5, 1.0):
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, level) for i in range(n)))
        dash = ' stroke-dasharray="4 3" stroke="#888"' if level == 0 else ' stroke="#ddd"'
        out.append(f'<polygon class="vg-grid" points="{pts}" fill="none"{dash}/>')
        lx, ly = point(0, level)
        out.append(f'<text class="vg-ring" x="{lx + 4:.1f}" y="{ly + 12:.1f}">{level:+.1f}</text>'
                   if level else f'<text class="vg-ring" x="{lx + 4:.1f}" y="{ly + 12:.1f}">0</text>')
    for i, name in enumerate(VALUE_NAMES):
        x, y = point(i, 1.0)
        out.append(f'<line x1="{c}" y1="{c}" x2="{x:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        lx, ly = point(i, 1.32)
        anchor = "middle" if abs(lx - c) < 10 else ("start" if lx > c else "end")
        out.append(f'<text class="vg-axis" x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="{anchor}">{name}</text>')
    for k, (src, info) in enumerate(sources.items()):
        mv = (info or {}).get("mean_values") or {}
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, max(-1.0, min(1.0, _num(mv.get(nm)))))
                                                       for i, nm in enumerate(VALUE_NAMES)))
        col = PALETTE[k % len(PALETTE)]
        out.append(f'<polygon class="vg-radar-series" data-source="{_e(src)}" points="{pts}" fill="{col}" '
                   f'fill-opacity="0.12" stroke="{col}" stroke-width="2"><title>{_e(src)}</title></polygon>')
    if profiles:  # the policy's value profiles: each target beside the sources' means
        out += target_shapes(profiles, point)
    if not sources:
        out.append(f'<text x="{c}" y="{c}" text-anchor="middle">no sources</text>')
    out.append("</svg>")
    return "".join(out)


def _bars(sources: dict[str, Any], width: int = 700, height: int = 320) -> str:
    """The same means as grouped bars: exact heights are easier to compare here than on the radar."""
    top, bottom, left = 14, 70, 36
    plot_h, group_w = height - top - bottom, (width - left) / len(VALUE_NAMES)
    zero = top + plot_h / 2
    nsrc = max(len(sources), 1)
    bw = min(18.0, (group_w - 10) / nsrc)
    out = [f'<svg class="vg-bars" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="mean value per source, grouped by value">']
    for level in (-1, -0.5, 0, 0.5, 1):
        y = zero - level * plot_h / 2
        out.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="{"#888" if level == 0 else "#eee"}"/>'
                   f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end">{level:+g}</text>')
    for i, name in enumerate(VALUE_NAMES):
        gx = left + i * group_w + (group_w - bw * nsrc) / 2
        for k, (src, info) in enumerate(sources.items()):
            v = max(-1.0, min(1.0, _num(((info or {}).get("mean_values") or {}).get(name))))
            y, h = (zero - v * plot_h / 2, v * plot_h / 2) if v >= 0 else (zero, -v * plot_h / 2)
            out.append(f'<rect class="vg-bar" data-source="{_e(src)}" data-value="{name}" x="{gx + k * bw:.1f}" '
                       f'y="{y:.1f}" width="{bw - 1:.1f}" height="{max(h, 0.5):.1f}" '
                       f'fill="{PALETTE[k % len(PALETTE)]}"><title>{_e(src)} {name}: {v:+.3f}</title></rect>')
        tx = left + (i + 0.5) * group_w
        out.append(f'<text x="{tx:.1f}" y="{height - bottom + 14}" text-anchor="end" '
                   f'transform="rotate(-35 {tx:.1f} {height - bottom + 14})">{name}</text>')
    out.append("</svg>")
    return "".join(out)


def _legend(sources: dict[str, Any]) -> str:
    items = [f'<span data-source="{_e(src)}"><span class="sw" style="background:{PALETTE[k % len(PALETTE)]}">'
             f'</span>{_user(src)} <span class="muted">({int(_num((info or {}).get("turns")))} turns)</span></span>'
             for k, (src, info) in enumerate(sources.items())]
    return f'<div class="legend" id="vg-legend">{"".join(items)}</div>'


def _hist(name: str, hist: dict[str, Any] | None, width: int = 220, height: int = 100) -> str:
    """Linear counts, but any non-empty bin is at least 2px tall: the rare negative tails are what an audit is
    looking for and must not vanish next to the big bin at 0."""
    hist = hist or {}
    edges, counts = [_num(e) for e in hist.get("edges") or []], [_num(c) for c in hist.get("counts") or []]
    top, bottom, lo, hi = 16, 18, -1.0, 1.0
    plot_h = height - top - bottom
    out = [f'<svg class="vg-hist" data-value="{name}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" role="img" aria-label="distribution of {name}">',
           f'<text x="0" y="11" font-weight="bold">{name}</text>']
    if len(edges) == len(counts) + 1 and counts:
        peak = max(counts) or 1
        out.append(f'<text x="{width}" y="11" text-anchor="end" class="muted">max {int(peak)}</text>')
        for a, b, n in zip(edges, edges[1:], counts):
            if n <= 0:
                continue
            x0, x1 = (a - lo) / (hi - lo) * width, (b - lo) / (hi - lo) * width
            h = max(2.0, n / peak * plot_h)
            mid = (a + b) / 2     # FULCRA's "no connection" scores sit just around 0: those bins are neither
            col = "#c62828" if mid < -0.1 else ("#2e7d32" if mid > 0.1 else "#888")
            out.append(f'<rect class="vg-hist-bin" x="{x0:.1f}" y="{top + plot_h - h:.1f}" '
                       f'width="{max(x1 - x0 - 1, 0.5):.1f}" height="{h:.1f}" fill="{col}">'
                       f'<title>[{a:+.1f}, {b:+.1f}): {int(n)}</title></rect>')
    else:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle">no data</text>')
    y = top + plot_h
    out.append(f'<line x1="0" x2="{width}" y1="{y}" y2="{y}" stroke="#888"/>'
               f'<text x="0" y="{height - 4}">-1</text><text x="{width / 2}" y="{height - 4}" '
               f'text-anchor="middle">0</text><text x="{width}" y="{height - 4}" text-anchor="end">+1</text></svg>')
    return "".join(out)


# ---------------------------------------------------------------------------------------------------- flagged


def _worst(values: dict[str, Any] | None) -> tuple[str, float]:
    """The most negative values as HTML, and the lowest score (the sort key of the column)."""
    scored = sorted((_num(v), n) for n, v in (values or {}).items() if n in VALUE_NAMES)
    neg = [(v, n) for v, n in scored if v < 0][:WORST_SHOWN]
    html = "<br>".join(f'{n} <b style="color:#c62828">{v:+.2f}</b>' for v, n in neg)
    return html or '<span class="muted">none</span>', (scored[0][0] if scored else 0.0)


def _evidence(row: dict[str, Any]) -> str:
    nbrs = row.get("neighbors") or []
    head = "".join(f"<th>{n.replace('_', '_<wbr>')}</th>" for n in VALUE_NAMES)
    # A row of its own under the flagged row: 14 columns of evidence need the table's full width.
    out = [f'<tr class="vg-evidence-row"><td colspan="7"><details class="vg-evidence"><summary>evidence: '
           f'{len(nbrs)} nearest labelled reference(s)</summary>'
           f'<table class="vals"><thead><tr><th>id</th><th>source</th><th>similarity</th><th>label</th>{head}'
           f'</tr></thead><tbody><tr><td colspan="4"><i>this response</i></td>'
           f'{_values_cells(row.get("values"))}</tr>']
    for nb in nbrs:
        out.append(f'<tr class="vg-neighbor"><td>{_user(nb.get("id"))}</td><td>{_user(nb.get("source"))}</td>'
                   f'<td class="n">{_num(nb.get("similarity")):.3f}</td><td>{_user(nb.get("label_kind"))}</td>'
                   f'{_values_cells(nb.get("values"))}</tr><tr class="vg-neighbor-text">'
                   f'<td colspan="{4 + len(VALUE_NAMES)}" class="t">{_excerpt(nb.get("response"))}</td></tr>')
    out.append("</tbody></table></details></td></tr>")
    return "".join(out)


def _flagged(rows: list[dict[str, Any]]) -> str:
    out = ['<div class="controls"><label>filter <input id="vg-filter" type="search"></label> '
           '<label>action <select id="vg-action"><option value="">any</option>'
           + "".join(f'<option value="{a}">{a}</option>' for a in ACTIONS)
           + f'</select></label> <span id="vg-count">{len(rows)} of {len(rows)} shown</span></div>',
           '<table id="flagged"><thead><tr><th data-sort>id</th><th data-sort>source</th><th data-sort>action</th>'
           '<th data-sort>rules</th><th data-sort>most negative</th><th>prompt</th><th>response</th>'
           '</tr></thead><tbody>']
    for row in rows:
        action = str(row.get("action") or "")
        worst_html, worst_key = _worst(row.get("values"))
        rules = "<br>".join(_user(r) for r in row.get("rules") or [])
        out.append(f'<tr class="vg-row" data-action="{_e(action)}"><td>{_user(row.get("id"))}</td>'
                   f'<td>{_user(row.get("source") or "—")}</td>'
                   f'<td data-key="{ACTIONS.index(action) if action in ACTIONS else -1}">'
                   f'<b style="color:{ACTION_COLORS.get(action, "#333")}">{_user(action)}</b></td>'
                   f'<td class="w">{rules}</td><td class="w" data-key="{worst_key:.4f}">{worst_html}</td>'
                   f'<td class="t">{_excerpt(row.get("prompt")) if row.get("prompt") else "—"}</td>'
                   f'<td class="t r">{_excerpt(row.get("response"))}</td></tr>{_evidence(row)}')
    if not rows:
        out.append('<tr class="vg-empty"><td colspan="7" class="muted">No flagged responses.</td></tr>')
    out.append("</tbody></table>")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------------- page


def render_report(summary: dict[str, Any]) -> str:
    """The whole report as one HTML document (a str; write it as UTF-8)."""
    sources = summary.get("sources") or {}
    hists = summary.get("value_histograms") or {}
    policy = summary.get("policy") or {}
    title = f"valueguard audit — {policy.get('name') or 'policy'} {policy.get('version') or ''}".strip()
    body = [
        _header(summary),
        "<h2>Value profile per source</h2><p class=\"muted\">Mean score of each value over a source's turns; "
        "-1 works against the value, +1 upholds it, 0 (dashed) is no connection.</p>",
        _legend(sources),
        f'<div class="charts">{_radar(sources, profiles=summary.get("profiles"))}{_bars(sources)}</div>',
        "<h2>Distribution of each value</h2><p class=\"muted\">All turns; red bins lie below -0.1, green above "
        "+0.1, grey about 0.</p>",
        f'<div class="hists">{"".join(_hist(n, hists.get(n)) for n in VALUE_NAMES)}</div>',
        f"<h2>Flagged responses</h2>{_flagged(list(summary.get('top_flagged') or []))}",
    ]
    if summary.get("profiles"):
        body.append(profiles_section(summary["profiles"]))
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{JS}</script>\n</body></html>\n")
