"""The deployments page and a deployment's overview: their data routes against the store, and the pages in
a real browser (numbers shown match the API; alert markers on the charts; screenshots saved)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import httpx
import numpy as np
import pytest

from watchkeeper.server.views import pick_step, time_range

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)

DEPLOYMENT = {"project": "payments", "model": "fraud-clf", "version": "1"}


def _points(store, name, subject="model:fraud-clf@1", start=None, end=None, **labels):
    """A series' stored points in ``[start, end)``: what a route over that range aggregates (the newest
    window's point lies at the range's end when the simulation ended on a step boundary)."""
    (s,) = [x for x in store.signals.series("payments", subject=subject, name=name) if x.labels == labels]
    return store.signals.points_in(s.id, start, end)


def test_steps_cut_a_range_into_at_most_720_aligned_buckets():
    for span in (600, 3600, 86400, 7 * 86400, 30 * 86400, 90 * 86400, 399 * 86400):
        step = pick_step(span)
        assert span / step <= 720
        rng = time_range(1_800_000_123.0, 1_800_000_123.0 + span)
        assert rng.start % rng.step == 0 and rng.end % rng.step == 0
        assert rng.start <= 1_800_000_123.0 and rng.end >= 1_800_000_123.0 + span


def test_overview_series_are_the_bucket_aggregates_of_the_stored_points(dashboard):
    step = 600  # ten-minute buckets: read from the roll-ups
    start = math.floor(dashboard.start / step) * step
    end = math.ceil(dashboard.end / step) * step
    r = httpx.get(
        f"{dashboard.url}/api/v1/views/overview",
        params={**DEPLOYMENT, "start": start, "end": end, "step": step},
    )
    assert r.status_code == 200, r.text
    data = r.json()
    assert (data["start"], data["end"], data["step"]) == (start, end, step)
    panels = {p["key"]: p for p in data["panels"]}
    assert list(panels) == ["traffic", "latency", "errors", "drift", "performance", "labels"]
    raw = _points(dashboard.store, "latency_p99_ms", start=start, end=end)
    k = np.floor(raw.t / step)
    (p99,) = [s for s in panels["latency"]["series"] if s["name"] == "latency_p99_ms" and not s["labels"]]
    want_max = {float(b * step): float(raw.value[k == b].max()) for b in np.unique(k)}
    assert dict(zip(p99["t"], p99["v"], strict=True)) == pytest.approx(want_max)  # p99: the worst window
    rate = _points(dashboard.store, "request_rate", start=start, end=end)
    (traffic,) = [s for s in panels["traffic"]["series"] if not s["labels"]]  # the total, not per endpoint
    kk = np.floor(rate.t / step)
    want_mean = {float(b * step): float(rate.value[kk == b].mean()) for b in np.unique(kk)}
    assert dict(zip(traffic["t"], traffic["v"], strict=True)) == pytest.approx(want_mean)
    assert panels["traffic"]["current"] == pytest.approx(traffic["v"][-1])
    # the incident fired HighP99Latency and resolved it: both changes are markers of the range
    changes = {(e["rule"], e["to"]) for e in data["events"]}
    assert ("HighP99Latency", "firing") in changes and ("HighP99Latency", "resolved") in changes
    error_types = {
        s["labels"].get("error_type") for s in panels["errors"]["series"] if s["name"] == "error_type_rate"
    }
    assert {"UpstreamTimeout", "ValueError"} <= error_types


def test_drift_status_and_open_alerts_follow_the_rules(dashboard):
    data = httpx.get(f"{dashboard.url}/api/v1/views/overview", params=DEPLOYMENT).json()
    firing = {a["rule"] for a in data["alerts"] if a["state"] == "firing"}
    assert "FeatureDrift" in firing  # the traffic drifted in the second half and still does
    panels = {p["key"]: p for p in data["panels"]}
    assert panels["drift"]["status"] == "bad"  # FeatureDrift, on drift_detected, fires
    assert "amount" in data["drifting_features"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": 10.0, "end": 5.0}, "query.start"),
        ({"start": 0.0, "end": 500 * 86400.0}, "query.start"),
        ({"start": 0.0, "end": 86400.0, "step": 1}, "query.step"),
        ({"model": ""}, "query.model"),
    ],
)
def test_bad_ranges_and_names_are_refused_naming_the_parameter(dashboard, params, field):
    r = httpx.get(f"{dashboard.url}/api/v1/views/overview", params={**DEPLOYMENT, **params})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == field


def test_deployments_list_both_versions_with_their_newest_values(dashboard):
    data = httpx.get(f"{dashboard.url}/api/v1/views/deployments", params={"project": "payments"}).json()
    assert data["projects"] == ["payments"]
    got = {d["version"]: d for d in data["deployments"]}
    assert set(got) == {"1", "2"} and all(d["reference"] for d in got.values())
    for version, d in got.items():
        rate = _points(dashboard.store, "request_rate", f"model:fraud-clf@{version}")
        traffic = d["panels"][0]
        assert traffic["key"] == "traffic"
        last_bucket = math.floor(rate.t[-1] / data["step"]) * data["step"]
        assert traffic["current"] == pytest.approx(rate.value[rate.t >= last_bucket].mean())
        assert d["windows"] == len(rate.t)


def test_the_pages_show_what_the_api_says(dashboard, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By

    api = httpx.get(f"{dashboard.url}/api/v1/views/deployments").json()
    browser.get(dashboard.page("/"))
    ready(browser)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-deployment]")
    assert [r.get_attribute("data-deployment") for r in rows] == [d["subject"] for d in api["deployments"]]
    first = rows[0].find_element(By.CSS_SELECTOR, "td[data-panel=traffic] .v").text
    assert first == f"{api['deployments'][0]['panels'][0]['current']:.2f} req/s"
    assert len(rows[0].find_elements(By.CSS_SELECTOR, "svg polyline")) == 5
    save_screenshot(browser, "dashboard-home", tmp_path)

    rows[0].find_element(By.CSS_SELECTOR, "a.deployment").click()
    ready(browser)
    assert browser.current_url.endswith("/#/p/payments/m/fraud-clf/v/1/overview")
    panels = browser.find_elements(By.CSS_SELECTOR, "section[data-panel]")
    assert [p.get_attribute("data-panel") for p in panels][:3] == ["traffic", "latency", "errors"]
    assert browser.find_elements(By.CSS_SELECTOR, "section[data-panel=latency] .js-plotly-plot")
    # firing/resolved markers are drawn as shapes on the latency chart's time axis
    shapes = browser.execute_script(
        "return document.querySelector('section[data-panel=latency] .js-plotly-plot').layout.shapes.length"
    )
    overview = httpx.get(f"{dashboard.url}/api/v1/views/overview", params=DEPLOYMENT).json()
    assert shapes == sum(e["to"] in ("firing", "resolved") for e in overview["events"]) > 0
    assert (
        browser.find_element(By.CSS_SELECTOR, "section[data-panel=drift]").get_attribute("data-status")
        == "bad"
    )
    save_screenshot(browser, "dashboard-overview", tmp_path)

    browser.find_element(By.CSS_SELECTOR, "[data-range='6h']").click()  # the range picker changes the address
    ready(browser)
    assert "range=6h" in browser.current_url
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
