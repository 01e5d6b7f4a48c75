"""The predictions page: its data route against the store (bucket means of the monitors' signals, the
outputs' distributions of the newest bucket) and the page in a real browser."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import httpx
import numpy as np
import pytest

from watchkeeper.drift import drift
from watchkeeper.profile import Profile

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)

DEPLOYMENT = {"project": "payments", "model": "fraud-clf", "version": "1"}
SUBJECT = "model:fraud-clf@1"


def _points(store, name, start=None, end=None, **labels):
    """A series' stored points in ``[start, end)``: what a route over that range aggregates (the newest
    window's point lies at the range's end when the simulation ended on a step boundary)."""
    (s,) = [x for x in store.signals.series("payments", subject=SUBJECT, name=name) if x.labels == labels]
    return store.signals.points_in(s.id, start, end)


def _answer(dashboard, step=600):
    start = math.floor(dashboard.start / step) * step
    end = math.ceil(dashboard.end / step) * step
    r = httpx.get(
        f"{dashboard.url}/api/v1/views/predictions",
        params={**DEPLOYMENT, "start": start, "end": end, "step": step},
    )
    assert r.status_code == 200, r.text
    return r.json()


def test_panels_are_bucket_means_of_the_stored_signals(dashboard):
    step = 600
    data = _answer(dashboard, step)
    panels = {p["key"]: p for p in data["panels"]}
    assert list(panels) == [
        "confidence",
        "outputs",
        "classes",
        "accuracy",
        "roc_auc",
        "prf",
        "regression",
        "labelled",
        "pending",
    ]
    checks = [
        ("confidence", "confidence_p50", {"output": "score"}),
        ("confidence", "confidence_p25", {"output": "score"}),
        ("outputs", "low_confidence_rate", {"output": "score"}),
        ("outputs", "positive_rate", {"output": "label"}),
        ("accuracy", "accuracy", {}),
        ("accuracy", "accuracy_ci_high", {}),
        ("roc_auc", "roc_auc_ci_low", {}),
        ("prf", "f1", {}),
        ("labelled", "labelled_rows", {}),
        ("pending", "label_pending_rate", {}),
    ]
    for key, name, labels in checks:
        (got,) = [s for s in panels[key]["series"] if s["name"] == name and s["labels"] == labels]
        raw = _points(dashboard.store, name, data["start"], data["end"], **labels)
        k = np.floor(raw.t / step) * step
        want = {
            float(b): float(np.nanmean(raw.value[k == b]))
            for b in np.unique(k)
            if not np.isnan(raw.value[k == b]).all()
        }
        have = {t: v for t, v in zip(got["t"], got["v"], strict=True) if v is not None}
        assert have == pytest.approx(want), name
    acc = _points(dashboard.store, "accuracy", data["start"], data["end"])
    last = np.floor(acc.t[-1] / step) * step
    assert panels["accuracy"]["current"] == pytest.approx(
        np.nanmean(acc.value[np.floor(acc.t / step) * step == last])
    )
    # the simulated outputs are a score and a 0/1 label: numbers, so no class shares and no regression errors
    for key in ("classes", "regression"):
        assert (
            panels[key]["series"] == [] and panels[key]["status"] == "none" and panels[key]["current"] is None
        )
    assert {s["name"] for s in panels["accuracy"]["series"]} == {
        "accuracy",
        "accuracy_ci_low",
        "accuracy_ci_high",
        "accuracy_baseline",
    }


def test_labelled_accuracy_falls_after_the_drift(dashboard):
    data = _answer(dashboard, 600)
    (acc,) = [
        s for p in data["panels"] if p["key"] == "accuracy" for s in p["series"] if s["name"] == "accuracy"
    ]
    (base,) = [
        s
        for p in data["panels"]
        if p["key"] == "accuracy"
        for s in p["series"]
        if s["name"] == "accuracy_baseline"
    ]
    half = dashboard.start + (dashboard.end - dashboard.start) / 2
    early = [v for t, v in zip(acc["t"], acc["v"], strict=True) if v is not None and t + 600 <= half]
    late = [v for t, v in zip(acc["t"], acc["v"], strict=True) if v is not None and t >= half + 1200]
    assert early and late and np.mean(late) < np.mean(early)
    # the baseline is the training run's summary: one value throughout
    assert all(v == pytest.approx(base["v"][0]) for v in base["v"] if v is not None)


def test_outputs_of_the_newest_bucket_against_the_reference(dashboard):
    data = _answer(dashboard, 600)
    outs = data["outputs"]
    assert (
        0 < outs["end"] - outs["start"] <= 600 and outs["start"] % 600 == 0 and outs["start"] < dashboard.end
    )
    windows = dashboard.store.profiles.windows("payments", SUBJECT, outs["start"], outs["end"])
    assert outs["windows"]["merged"] == outs["windows"]["total"] == len(windows) > 0
    cur = Profile()
    for w in windows:
        cur = cur.merge(Profile.from_bytes(w.data))
    ref = Profile.from_bytes(dashboard.store.profiles.reference("payments", "fraud-clf", "1").data)
    cols = {c["output"]: c for c in outs["columns"]}
    assert set(cols) == {"score", "label"}
    # the reference has no score: the current one alone, its shares the sketch's CDF between the edges
    score = cols["score"]
    assert score["test"] is None and score["plot"]["reference"] is None
    edges = np.array(score["plot"]["edges"])
    cdf = cur["score"].numeric.quantiles.cdf(edges[1:-1])
    # two merges of the same window sketches agree exactly only while no KLL compaction ran; after one, each
    # merge's CDF is within the sketch's rank error (about 1.3% at k=200, DataSketches' figure) of the truth,
    # so a bin's share (a difference of two CDF values) of two merges within 4 of them (seen: 1 row of 486)
    np.testing.assert_allclose(score["plot"]["current"][1:-1], np.diff(cdf), atol=0.055)
    # the reference's label is the training target: compared with the predicted label by the drift module
    label = cols["label"]
    want = drift(ref, cur, columns=["label"])["label"]
    # ... on merged sketches, so within two merges' KS error of each other (each within 0.015 of the exact D:
    # watchkeeper.drift.ks); the p-value inherits that error (read it as an order of magnitude)
    assert label["test"]["statistic"] == pytest.approx(want.statistic, abs=0.03)
    assert 0.0 <= label["test"]["p_value"] <= 1.0
    assert sum(label["plot"]["reference"]) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": 10.0, "end": 5.0}, "query.start"),
        ({"start": 0.0, "end": 500 * 86400.0}, "query.start"),
        ({"start": 0.0, "end": 86400.0, "step": 1}, "query.step"),
        ({"step": 0}, "query.step"),
        ({"end": "later"}, "query.end"),
        ({"version": ""}, "query.version"),
    ],
)
def test_bad_input_is_refused_naming_the_field(dashboard, params, field):
    r = httpx.get(f"{dashboard.url}/api/v1/views/predictions", params={**DEPLOYMENT, **params})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def test_a_version_without_traffic_has_empty_panels(dashboard):
    r = httpx.get(f"{dashboard.url}/api/v1/views/predictions", params={**DEPLOYMENT, "version": "9"})
    assert r.status_code == 200
    data = r.json()
    assert data["outputs"] is None and all(p["series"] == [] for p in data["panels"])


def test_the_page_shows_what_the_api_says(dashboard, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By

    span = f"from={dashboard.start}&to={dashboard.end}"
    browser.get(dashboard.page(f"/p/payments/m/fraud-clf/v/1/predictions?{span}"))
    ready(browser)
    api = httpx.get(
        f"{dashboard.url}/api/v1/views/predictions",
        params={**DEPLOYMENT, "start": dashboard.start, "end": dashboard.end},
    ).json()
    cards = browser.find_elements(By.CSS_SELECTOR, "section[data-panel]")
    keys = [c.get_attribute("data-panel") for c in cards]
    assert keys == [p["key"] for p in api["panels"]] + ["output-distributions"]
    for panel in api["panels"]:
        card = browser.find_element(By.CSS_SELECTOR, f"section[data-panel={panel['key']}]")
        value = card.find_element(By.CSS_SELECTOR, "[data-current]").get_attribute("data-current")
        if panel["current"] is None:
            assert value == ""
            assert card.find_element(By.CSS_SELECTOR, ".empty").text  # says why the panel is empty
            assert not card.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
        else:
            assert float(value) == pytest.approx(panel["current"])
            assert card.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")
    assert "categorical" in browser.find_element(By.CSS_SELECTOR, "section[data-panel=classes] .empty").text
    # accuracy: its interval as a filled band, the baseline dashed
    traces = browser.execute_script(
        "return document.querySelector('section[data-panel=accuracy] .js-plotly-plot').data"
        ".map(t => [t.name, t.fill || '', (t.line && t.line.dash) || ''])"
    )
    assert any(fill == "tonexty" and "interval" in name for name, fill, _ in traces)
    assert any(dash == "dash" and "training" in name for name, _, dash in traces)
    shapes = browser.execute_script(
        "return document.querySelector('section[data-panel=accuracy] .js-plotly-plot').layout.shapes.length"
    )
    assert shapes == sum(e["to"] in ("firing", "resolved") for e in api["events"])
    box = browser.find_element(By.CSS_SELECTOR, "section[data-panel=output-distributions]")
    assert box.get_attribute("data-merged") == str(api["outputs"]["windows"]["merged"])
    assert [o.get_attribute("data-output") for o in box.find_elements(By.CSS_SELECTOR, "[data-output]")] == [
        c["output"] for c in api["outputs"]["columns"]
    ]
    save_screenshot(browser, "predictions-page", tmp_path)
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    save_screenshot(browser, "predictions-page-bottom", tmp_path)
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
