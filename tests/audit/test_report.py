"""The HTML audit report: pure rendering tests, then the real thing opened in Debian's chromium, headless.

Every summary here is built by `build_summary` from real FULCRA rows: the evaluator's value vectors
(`value_reward`) of the three harmless_test files, actions and rules from the real `default` policy, and, for the
browser test, evidence neighbours from the real estimator (MiniLM + FAISS, the session index of conftest).
Until `valueguard.audit.summary` lands, this builder stands in for it; it follows the summary's JSON schema.

Chromium runs offline: the flags turn off every background fetch, host resolution maps every name to nothing,
and the report's own CSP forbids any load. A missing chromium FAILS these tests (run .ci/browser); never skips.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import shutil
import struct
import subprocess
import tempfile
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from valueguard.audit.report import EXCERPT, render_report
from valueguard.policy.model import PRECEDENCE, Policy
from valueguard.reference import ReadReport, ReferenceRecord, read_reference
from valueguard.values import VALUE_NAMES

REPO = Path(__file__).resolve().parents[2]
SCORED_FILES = ("harmless_test_openai_gpt-4.dev.jsonl", "harmless_test_openai_gpt-35-turbo.dev.jsonl",
                "harmless_test_mistral_mistral-large-latest.dev.jsonl")
EDGES = np.linspace(-1.0, 1.0, 21)
XSS = "<script>alert(1)</script>"
# A payload that would leave a mark in the DOM if it ever ran; <script> alone cannot be seen in a dump.
XSS_MARK = '<img src=x onerror="document.body.setAttribute(\'data-pwned\',\'1\')"> https://evil.example/x.js'


# ------------------------------------------------------------------------------------------- real-data summary


def read_rows(shared_data: Path, files=SCORED_FILES, limit: int | None = None):
    """Real FULCRA evaluator-scored rows and the reader's report of each file.

    Read as `valueguard audit fulcra/NAME` run in the mirror reads them: the working directory is the mirror and
    each input is named by its short relative path, so the report (and docs/report.png) shows `fulcra/NAME`,
    never the absolute paths of the machine that made it."""
    records: list[ReferenceRecord] = []
    reports: list[ReadReport] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(shared_data)
        for name in files:
            path = Path("fulcra") / name
            report = ReadReport(str(path))
            rows = list(read_reference(path, report))
            records += rows[:limit]
            reports.append(report)
    return records, reports


def build_summary(records: list[ReferenceRecord], reports: list[ReadReport], *, top: int = 8,
                  neighbors: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    """A summary in the schema `valueguard.audit.summary` writes, from real rows.

    The rows' values are FULCRA's evaluator scores, not estimates, so the policy is evaluated at confidence 1.0
    (there is no estimate whose confidence could be low). Flagged, as in the summary module: block or rewrite,
    worst first (block before rewrite, then the most negative value).
    """
    policy = Policy.load("default")
    # The labels' own probabilities of working against a value: 1 where the evaluator scored it below -0.5.
    decided = [(r, policy.evaluate(r.values, 1.0, {n: float(x < -0.5) for n, x in r.values.items()}))
               for r in records]
    matrix = np.array([r.values.to_array() for r in records], dtype=np.float64).reshape(-1, len(VALUE_NAMES))
    actions = {a: 0 for a in ("allow", "log", "rewrite", "block")}
    rules: dict[str, int] = {}
    sources: dict[str, dict[str, Any]] = {}
    for r, d in decided:
        actions[d.action] += 1
        for rid in d.rule_ids:
            rules[rid] = rules.get(rid, 0) + 1
        src = sources.setdefault(r.source, {"turns": 0, "actions": dict.fromkeys(actions, 0)})
        src["turns"] += 1
        src["actions"][d.action] += 1
    for name, src in sources.items():
        rows = matrix[[r.source == name for r in records]]
        src["mean_values"] = {v: float(rows[:, j].mean()) for j, v in enumerate(VALUE_NAMES)}
    flagged = [(r, d) for r, d in decided if d.action in ("block", "rewrite")]
    flagged.sort(key=lambda rd: (-PRECEDENCE[rd[1].action], min(rd[0].values.values())))
    return {
        "inputs": [{"path": rep.path, "format": rep.format, "turns": rep.records, "bad_lines": rep.bad_lines}
                   for rep in reports],
        "policy": {"name": policy.name, "version": policy.version},
        "totals": {"turns": len(records), "bad_lines": sum(rep.bad_lines for rep in reports),
                   "flagged": len(flagged)},
        "actions": actions,
        "rules": rules,
        "sources": sources,
        "value_histograms": {v: {"edges": EDGES.tolist(),
                                 "counts": np.histogram(matrix[:, j], bins=EDGES)[0].tolist()}
                             for j, v in enumerate(VALUE_NAMES)},
        "bad_line_examples": [{"path": rep.path, "line": n, "reason": why}
                              for rep in reports for n, why in rep.bad_line_examples],
        "top_flagged": [{"id": r.id, "source": r.source, "action": d.action, "rules": d.rule_ids,
                         "values": r.values.to_dict(), "prompt": r.prompt or None, "response": r.response,
                         "neighbors": (neighbors or {}).get(r.id, [])} for r, d in flagged[:top]],
    }


@pytest.fixture(scope="module")
def small(shared_data):
    """Two sources, 150 real rows each: enough for every section, and no model needed."""
    records, reports = read_rows(shared_data, SCORED_FILES[:2], limit=150)
    return records, reports


@pytest.fixture(scope="module")
def real_summary(shared_data, estimator):
    """All 3,636 rows of the three model files; the flagged rows' evidence from the real estimator."""
    records, reports = read_rows(shared_data)
    summary = build_summary(records, reports)
    flagged = summary["top_flagged"]
    estimates = estimator.estimate_batch([f["response"] for f in flagged], [f["prompt"] for f in flagged])
    for f, est in zip(flagged, estimates):
        f["neighbors"] = [n.model_dump(exclude={"weight"}) for n in est.neighbors]
    return summary


# ------------------------------------------------------------------------------------------- reading the HTML


class Elements(HTMLParser):
    """Every start tag as (tag, attrs), in document order; enough to count charts and rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.all: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.all.append((tag, dict(attrs)))

    def find(self, tag: str, cls: str | None = None, **attrs: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.all if t == tag and (cls is None or cls in (a.get("class") or "").split())
                and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def ours(html: str) -> str:
    """The HTML with untrusted text taken out (it is escaped, so a span of it holds no '<')."""
    return re.sub(r'<span class="vg-user">[^<]*</span>', "", html)


def check_chart_structure(html: str, summary: dict[str, Any]) -> Elements:
    el = Elements(html)
    sources = list(summary["sources"])
    assert len(el.find("svg", "vg-radar")) == 1
    assert [p["data-source"] for p in el.find("polygon", "vg-radar-series")] == sources
    assert len(el.find("rect", "vg-bar")) == len(sources) * len(VALUE_NAMES)
    assert [s["data-value"] for s in el.find("svg", "vg-hist")] == list(VALUE_NAMES)
    assert len(el.find("table", id="flagged")) == 1
    assert len(el.find("tr", "vg-row")) == len(summary["top_flagged"])
    assert len(el.find("details", "vg-evidence")) == len(summary["top_flagged"])
    assert len(el.find("tr", "vg-neighbor")) == sum(len(f["neighbors"]) for f in summary["top_flagged"])
    return el


# ------------------------------------------------------------------------------------------- pure rendering


def test_every_section_is_drawn_from_a_real_summary(small):
    summary = build_summary(*small)
    assert summary["totals"]["flagged"] > 0 and len(summary["sources"]) == 2   # the data exercise the report
    html = render_report(summary)
    check_chart_structure(html, summary)
    assert html.startswith("<!DOCTYPE html>") and html.count("<script>") == 1
    assert f'<b id="vg-policy"><span class="vg-user">{summary["policy"]["name"]}</span></b>' in html
    for action, n in summary["actions"].items():
        assert re.search(rf'data-action="{action}">.*?<b>{n}</b>', html)
    for rule, n in summary["rules"].items():
        assert f'<td><span class="vg-user">{rule}</span></td><td class="n">{n}</td>' in html
    for inp in summary["inputs"]:
        assert escape(inp["path"]) in html


def test_radar_vertices_follow_the_means_in_value_order(small):
    """Radius = rim * (v + 1) / 2 along axis i of VALUE_NAMES: a wrong order or scale moves a vertex."""
    summary = build_summary(*small)
    el = Elements(render_report(summary))
    svg = el.find("svg", "vg-radar")[0]
    c = float(svg["width"]) / 2
    rim = max(np.hypot(*(np.array(p.split(","), float) - c)) for p in
              el.find("polygon", "vg-grid")[-1]["points"].split())      # the +1 ring
    for poly in el.find("polygon", "vg-radar-series"):
        means = summary["sources"][poly["data-source"]]["mean_values"]
        for i, (name, pt) in enumerate(zip(VALUE_NAMES, poly["points"].split(), strict=True)):
            ang, r = np.radians(-90 + 36 * i), rim * (means[name] + 1) / 2
            assert np.array(pt.split(","), float) == pytest.approx([c + r * np.cos(ang), c + r * np.sin(ang)],
                                                                   abs=0.15), name


def test_histograms_have_a_bar_for_every_nonempty_bin(small):
    summary = build_summary(*small)
    html = render_report(summary)
    for name in VALUE_NAMES:
        svg = re.search(rf'<svg class="vg-hist" data-value="{name}".*?</svg>', html).group(0)
        counts = summary["value_histograms"][name]["counts"]
        assert svg.count('class="vg-hist-bin"') == sum(1 for n in counts if n > 0)
        assert f"max {max(counts)}" in svg


def test_flagged_rows_name_their_most_negative_values_and_excerpt_long_text(small):
    summary = build_summary(*small, top=50)
    html = render_report(summary)
    for row in summary["top_flagged"]:
        name, v = min(row["values"].items(), key=lambda kv: kv[1])
        assert f'{name} <b style="color:#c62828">{v:+.2f}</b>' in html
    long = [r for r in summary["top_flagged"] if len(r["response"]) > EXCERPT]
    assert long, "the real rows include long responses"
    assert escape(long[0]["response"]) in html                   # full text, behind <details>
    assert escape(long[0]["response"][:EXCERPT].rstrip()) + "…" in html


def test_no_sources_no_flagged_rows_no_rules(small):
    summary = build_summary(*small)
    summary.update(sources={}, top_flagged=[], rules={}, bad_line_examples=[])
    html = render_report(summary)
    check_chart_structure(html, summary)
    assert "no sources" in html and "No flagged responses." in html and "No rule fired." in html
    assert "0 of 0 shown" in html


def test_an_empty_summary_still_renders():
    el = Elements(render_report({}))
    assert len(el.find("svg", "vg-hist")) == len(VALUE_NAMES) and len(el.find("table", id="flagged")) == 1


def test_bad_lines_are_listed_with_their_examples(shared_data, tmp_path):
    """A real file with two broken lines appended, read by the real reader."""
    src = shared_data / "fulcra" / SCORED_FILES[0]
    broken = tmp_path / SCORED_FILES[0]
    broken.write_text(src.read_text(encoding="utf-8") + "{not json\n[1, 2]\n", encoding="utf-8")
    report = ReadReport(str(broken))
    records = list(read_reference(broken, report))
    summary = build_summary(records, [report])
    assert summary["totals"]["bad_lines"] == 2
    html = render_report(summary)
    items = re.search(r'<ul id="vg-bad-lines">(.*?)</ul>', html, re.S).group(1)
    assert items.count("<li>") == 2 and "not JSON" in items and "expected a JSON object" in items


def test_untrusted_text_is_escaped_everywhere(small):
    summary = build_summary(*small)
    row = summary["top_flagged"][0]
    row.update(response=XSS + " " + XSS_MARK, prompt=XSS, id=XSS, source=XSS, rules=[XSS])
    row["neighbors"] = [{"id": XSS, "source": XSS, "similarity": 0.9, "label_kind": XSS,
                         "values": row["values"], "response": XSS}]
    summary["policy"]["name"] = XSS
    summary["sources"][XSS] = summary["sources"].pop(next(iter(summary["sources"])))
    summary["inputs"][0]["path"] = XSS
    summary["bad_line_examples"] = [{"path": XSS, "line": 3, "reason": XSS}]
    html = render_report(summary)
    assert XSS not in html and "<img" not in html and "onerror=\"document" not in html
    assert escape(XSS) in html and html.count("<script>") == 1
    check_chart_structure(html, summary)


def test_the_report_has_no_external_references_and_a_strict_csp(small):
    summary = build_summary(*small)
    summary["top_flagged"][0]["response"] = XSS_MARK            # a URL in user text is fine: it is text
    html = render_report(summary)
    assert "https://evil.example" in html
    mine = ours(html)
    for needle in ("http://", "https://", "src=", "href=", "url(", "@import", "<link", "<img", "<iframe"):
        assert needle not in mine, needle
    # The CSP lets exactly our script run: its hash is of the script as written into the page.
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp


def test_the_summary_modules_own_output_renders(shared_data, estimator):
    """Real rows, real estimates, the real policy, fed to `SummaryBuilder` as `valueguard audit` does; the JSON
    it writes, read back, renders with every section. Catches any drift between the two modules' schema."""
    import json

    from valueguard.audit.records import Turn
    from valueguard.audit.summary import SummaryBuilder

    policy = Policy.load("default")
    builder = SummaryBuilder(policy.name, policy.version)
    for name in SCORED_FILES[:2]:
        path = shared_data / "fulcra" / name
        rows = list(read_reference(path))
        # the first 40 rows, and 20 that the evaluator scored as harmful: the latter get flagged
        rows = rows[:40] + [r for r in rows[40:] if min(r.values.values()) < -0.5][:20]
        builder.start_input(str(path), "scored")
        for r, est in zip(rows, estimator.estimate_batch([r.response for r in rows], [r.prompt for r in rows])):
            d = policy.decide(est)
            builder.add(Turn(r.id, r.prompt, r.response, r.source), est, d.action, d.rule_ids)
    summary = json.loads(json.dumps(builder.to_dict()))
    assert summary["top_flagged"] and len(summary["sources"]) == 2
    html = render_report(summary)
    check_chart_structure(html, summary)


# ------------------------------------------------------------------------------------------- real browser

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-extensions", "--no-default-browser-check", "--host-resolver-rules=MAP * ~NOTFOUND",
                  "--enable-logging=stderr", "--v=0")
CONSOLE = re.compile(r":CONSOLE(?::\d+|\(\d+\))\] (.*)$")


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Open `page` in headless chromium with a throwaway profile; stdout is what --dump-dom writes."""
    exe = shutil.which("chromium")
    if exe is None:
        pytest.fail("chromium is not installed; run .ci/browser (installs Debian's chromium), then rerun",
                    pytrace=False)
    with tempfile.TemporaryDirectory(prefix="vg-chromium-") as profile:
        proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to its console. Chromium logs every level as INFO:CONSOLE, so console.error cannot
    be told from console.log here: the report writes nothing to its console, and any message counts."""
    return [m.group(1) for line in stderr.splitlines() if (m := CONSOLE.search(line))]


def assert_console_clean(stderr: str) -> None:
    msgs = console_messages(stderr)
    assert not msgs, "console messages (errors like 'Uncaught ...' or CSP violations among them):\n" + "\n".join(msgs)


def open_report(html: str, tmp_path: Path, name: str = "report.html") -> tuple[Elements, str, str]:
    """(elements of the DOM after scripts ran, that DOM, chromium's stderr)."""
    page = tmp_path / name
    page.write_text(html, encoding="utf-8")
    proc = chromium(page, "--dump-dom")
    assert "<body" in proc.stdout, proc.stderr[-3000:]
    return Elements(proc.stdout), proc.stdout, proc.stderr


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_report_in_chromium(real_summary, shared_data, tmp_path):
    """The real report in a real browser: charts in the DOM, the script ran, a silent console, a screenshot."""
    html = render_report(real_summary)
    el, _dom, stderr = open_report(html, tmp_path)
    check_chart_structure(_dom, real_summary)
    assert len(real_summary["sources"]) == 3 and real_summary["top_flagged"][0]["neighbors"]
    assert el.find("body", data_vg_ready="1"), "the report's script did not run to its end"
    assert f"{len(real_summary['top_flagged'])} of {len(real_summary['top_flagged'])} shown" in _dom
    assert_console_clean(stderr)
    assert "http://" not in ours(html) and "https://" not in ours(html)
    # The screenshot goes into docs/: it names its inputs as a user's audit would, with no path of this machine.
    assert [i["path"] for i in real_summary["inputs"]] == [f"fulcra/{name}" for name in SCORED_FILES]
    assert str(shared_data) not in html and str(REPO) not in html

    shot = tmp_path / "report.png"
    proc = chromium(tmp_path / "report.html", f"--screenshot={shot}", "--window-size=1280,2000")
    assert_console_clean(proc.stderr)
    assert shot.is_file(), proc.stderr[-3000:]
    data = shot.read_bytes()
    assert png_size(data) == (1280, 2000)
    try:
        from PIL import Image
    except ImportError:   # Pillow is not a dependency; a blank 1280x2000 page compresses to ~10 KB
        assert len(data) > 60_000, f"screenshot looks blank: {len(data)} bytes"
    else:
        colors = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
        assert colors is None or len(colors) > 50, f"screenshot looks blank: {len(colors)} colours"
    (REPO / "bench-results").mkdir(exist_ok=True)
    shutil.copyfile(shot, REPO / "bench-results" / "report-screenshot.png")
    if os.environ.get("VALUEGUARD_UPDATE_DOCS") == "1":
        (REPO / "docs").mkdir(exist_ok=True)
        shutil.copyfile(shot, REPO / "docs" / "report.png")


def test_console_check_catches_broken_js(small, tmp_path):
    """The same check fails on a report given broken JS (a syntax error and a runtime error), injected here.
    The CSP would refuse the injected scripts before they could fail, so this copy of the page drops it."""
    html = render_report(build_summary(*small))
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    html = html.replace("</body>", "<script>this is not javascript(</script><script>vgNoSuchFn();</script></body>")
    _el, _dom, stderr = open_report(html, tmp_path)
    with pytest.raises(AssertionError, match="Uncaught SyntaxError"):
        assert_console_clean(stderr)
    assert any("Uncaught ReferenceError: vgNoSuchFn" in m for m in console_messages(stderr))


def test_csp_refuses_a_script_that_got_into_the_page(small, tmp_path):
    """Were an escape ever missed, an injected script still would not run, and the console check would see it."""
    html = render_report(build_summary(*small))
    html = html.replace("<body>", "<body><script>document.body.setAttribute('data-pwned', '1')</script>", 1)
    el, _dom, stderr = open_report(html, tmp_path)
    assert not el.find("body", data_pwned="1") and el.find("body", data_vg_ready="1")
    with pytest.raises(AssertionError, match="violates the following Content Security Policy"):
        assert_console_clean(stderr)


def test_hostile_response_is_shown_as_text_in_chromium(small, tmp_path):
    summary = build_summary(*small)
    summary["top_flagged"][0]["response"] = XSS + " " + XSS_MARK
    el, dom, stderr = open_report(render_report(summary), tmp_path)
    assert not el.find("body", data_pwned="1") and not el.find("img")
    assert escape(XSS, quote=False) in dom        # the DOM holds it as text: &lt;script&gt;alert(1)...
    assert len(el.find("script")) == 1
    assert_console_clean(stderr)
