"""The audit report with a policy that has value profiles: the target on the radar, the farthest turns listed;
real rows, the real estimator, the bundled children-learning policy, and the page opened in chromium."""

from __future__ import annotations

import json

import pytest

from tests.audit.test_report import (
    REPO, SCORED_FILES, Elements, assert_console_clean, check_chart_structure, open_report,
)
from valueguard.audit.profile_summary import FARTHEST
from valueguard.audit.records import Turn
from valueguard.audit.report import render_report
from valueguard.audit.summary import SummaryBuilder
from valueguard.policy.model import Policy
from valueguard.policy.profiles import distance
from valueguard.reference import read_reference


@pytest.fixture(scope="module")
def profile_summary(shared_data, estimator):
    """60 real rows from each of two scored files, audited as `valueguard audit` does, read back from JSON."""
    policy = Policy.load(REPO / "policies" / "children-learning.yaml")
    builder = SummaryBuilder(policy.name, policy.version, policy.profiles)
    for name in SCORED_FILES[:2]:
        path = shared_data / "fulcra" / name
        rows = list(read_reference(path))[:60]
        builder.start_input(str(path), "scored")
        for r, est in zip(rows, estimator.estimate_batch([r.response for r in rows], [r.prompt for r in rows])):
            d = policy.decide(est)
            builder.add(Turn(r.id, r.prompt, r.response, r.source), est, d.action, d.rule_ids)
    return policy, json.loads(json.dumps(builder.to_dict()))


def test_the_summary_has_each_profile_with_its_farthest_turns(profile_summary):
    policy, summary = profile_summary
    info = summary["profiles"]["child-safe"]
    assert info["target"] == policy.profiles["child-safe"]
    assert set(info["mean_distance"]) == set(summary["sources"])
    far = [row["distance"] for row in info["farthest"]]
    assert len(far) == FARTHEST and far == sorted(far, reverse=True)
    # the farthest turn is at least as far as any source's mean, and its distance is its values' distance
    assert far[0] >= max(info["mean_distance"].values())
    top = info["farthest"][0]
    assert distance(info["target"], top["values"]) == pytest.approx(top["distance"], abs=1e-3)


def test_the_radar_draws_the_target_beside_the_sources(profile_summary):
    _, summary = profile_summary
    html = render_report(summary)
    el = check_chart_structure(html, summary)
    targets = el.find("g", "vg-radar-target")
    assert [t["data-profile"] for t in targets] == ["child-safe"]
    named = len(summary["profiles"]["child-safe"]["target"])
    assert len([a for t, a in el.all if t == "circle"]) == named
    assert len(el.find("table", "vg-profile", data_profile="child-safe")) == 1
    assert len(el.find("tr", "vg-far")) == FARTHEST


def test_a_policy_without_profiles_draws_no_target(profile_summary):
    _, summary = profile_summary
    plain = {k: v for k, v in summary.items() if k != "profiles"}
    el = Elements(render_report(plain))
    assert not el.find("g", "vg-radar-target") and not el.find("table", "vg-profile")


def test_profile_report_in_chromium(profile_summary, tmp_path):
    _, summary = profile_summary
    el, dom, stderr = open_report(render_report(summary), tmp_path)
    assert el.find("g", "vg-radar-target", data_profile="child-safe") and el.find("body", data_vg_ready="1")
    assert len(el.find("tr", "vg-far")) == FARTHEST
    assert_console_clean(stderr)
