"""The drift page: its data routes against the store (a heatmap cell is the worst drift_score of its
bucket, the distributions are the drift module's on the merged windows) and the page in a real browser."""

from __future__ import annotations

import math
import runpy
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from watchkeeper.drift import drift
from watchkeeper.profile import Profile
from watchkeeper.server.views_drift import MAX_MERGED_WINDOWS

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)

DEPLOYMENT = {"project": "payments", "model": "fraud-clf", "version": "1"}
SUBJECT = "model:fraud-clf@1"


def _series(store, name, feature):
    (s,) = [
        x
        for x in store.signals.series("payments", subject=SUBJECT, name=name)
        if x.labels == {"feature": feature}
    ]
    return store.signals.points_in(s.id)


def _heatmap(dashboard, step):
    start = math.floor(dashboard.start / step) * step
    end = math.ceil(dashboard.end / step) * step
    r = httpx.get(
        f"{dashboard.url}/api/v1/views/drift", params={**DEPLOYMENT, "start": start, "end": end, "step": step}
    )
    assert r.status_code == 200, r.text
    return r.json()


@pytest.mark.parametrize("step", [60, 600])  # raw points, and the ten-minute roll-ups
def test_heatmap_cells_are_the_worst_window_of_each_bucket(dashboard, step):
    data = _heatmap(dashboard, step)
    assert (
        data["step"] == step
        and data["t"][0] == data["start"]
        and len(data["t"]) == (data["end"] - data["start"]) / step
    )
    grid = np.array(data["t"])
    features = {f["feature"]: f for f in data["features"]}
    assert set(features) == set(dashboard.sim.scenario.feature_names)
    for name, f in features.items():
        raw = _series(dashboard.store, "drift_score", name)
        k = np.floor(raw.t / step) * step
        want = np.full(grid.size, np.nan)
        detected = np.full(grid.size, np.nan)
        flags = _series(dashboard.store, "drift_detected", name)
        for j, t in enumerate(grid):
            v = raw.value[k == t]
            if v.size:
                want[j] = np.max(np.abs(v))  # the z of card_present is signed: its worst is its magnitude
            d = flags.value[np.floor(flags.t / step) * step == t]
            if d.size:
                detected[j] = d.max()
        got = np.array([np.nan if v is None else v for v in f["worst"]])
        np.testing.assert_allclose(got, want, rtol=1e-9, equal_nan=True)
        got_d = np.array([np.nan if v is None else v for v in f["detected"]])
        np.testing.assert_array_equal(got_d, detected)
        assert f["drifted_buckets"] == int(np.nansum(detected))
        # a point's time is its window's end, so the range's newest is the last point before its end
        inside = raw.t < data["end"]
        assert f["newest"]["score"] == pytest.approx(raw.value[inside][-1])
        assert f["newest"]["detected"] == bool(flags.value[flags.t < data["end"]][-1])
    # KS features: the worst window is the plain maximum of drift_score
    raw = _series(dashboard.store, "drift_score", "amount")
    j = int(np.floor(raw.t[raw.t < data["end"]][-1] / step) * step - data["start"]) // step
    in_bucket = raw.value[np.floor(raw.t / step) * step == data["t"][j]]
    assert features["amount"]["worst"][j] == pytest.approx(in_bucket.max())
    assert features["amount"]["test"] == "ks+welch" and features["merchant_category"]["test"] == "chi2"
    assert features["card_present"]["statistic"] == "z"


def test_amount_and_merchant_category_drift_late_and_not_early(dashboard):
    data = _heatmap(dashboard, 600)
    features = {f["feature"]: f for f in data["features"]}
    half = dashboard.start + (dashboard.end - dashboard.start) / 2
    for name in ("amount", "merchant_category"):
        f = features[name]
        early = [
            d for t, d in zip(data["t"], f["detected"], strict=True) if t + 600 <= half and d is not None
        ]
        late = [d for t, d in zip(data["t"], f["detected"], strict=True) if t >= half + 600 and d is not None]
        assert early and late
        assert not any(early), f"{name} flagged before the drift started: {early}"
        assert all(late), f"{name} not flagged after the drift: {late}"
        scores = [w for t, w in zip(data["t"], f["worst"], strict=True) if w is not None]
        first, last = scores[: len(scores) // 3], scores[-len(scores) // 3 :]
        assert min(last) > max(first)  # the colour rises: every late bucket is worse than every early one
    # the most drifted come first; hour and country never drift in the simulation and come last
    order = [f["feature"] for f in data["features"]]
    # (the inputs the simulation shifts; among them, ties in drifted buckets go by the newest window's
    # p-value, which is noisy)
    drifting = {"merchant_category", "amount", "txn_count_24h", "account_age_days", "card_present"}
    assert set(order[:2]) <= drifting
    assert {"hour", "country"} <= set(order[-3:])


def test_dataset_drift_share_is_the_worst_window_of_each_bucket(dashboard):
    data = _heatmap(dashboard, 600)
    (s,) = [
        x for x in dashboard.store.signals.series("payments", subject=SUBJECT, name="dataset_drift_share")
    ]
    raw = dashboard.store.signals.points_in(s.id)
    k = np.floor(raw.t / 600) * 600
    for t, v in zip(data["t"], data["dataset_drift_share"], strict=True):
        here = raw.value[k == t]
        assert (v is None) == (here.size == 0 or np.isnan(here).all())
        if v is not None:
            assert v == pytest.approx(np.nanmax(here))


def _merged(store, start, end):
    windows = store.profiles.windows("payments", SUBJECT, start, end)
    merged = Profile()
    for w in windows:
        merged = merged.merge(Profile.from_bytes(w.data))
    return merged, len(windows)


def test_distribution_is_the_drift_module_on_the_merged_windows(dashboard):
    start = dashboard.end - 10 * 60  # ten windows: all merged
    r = httpx.get(
        f"{dashboard.url}/api/v1/views/distribution",
        params={**DEPLOYMENT, "feature": "amount", "start": start, "end": dashboard.end},
    )
    assert r.status_code == 200, r.text
    d = r.json()
    cur, n = _merged(dashboard.store, start, dashboard.end)
    assert d["windows"] == {"merged": n, "total": n, "cap": MAX_MERGED_WINDOWS} and n == 10
    ref = Profile.from_bytes(dashboard.store.profiles.reference("payments", "fraud-clf", "1").data)
    want = drift(ref, cur, columns=cur.inputs())["amount"]
    assert d["test"]["method"] == "ks+welch" and d["test"]["statistic_name"] == "KS D"
    # the sketches merged in another process may compact differently: agreement within their rank errors
    rank_error = 2 * 0.0078
    assert d["test"]["statistic"] == pytest.approx(want.statistic, abs=rank_error)
    assert d["test"]["p_value"] < 1e-6 and want.p_value < 1e-6
    assert d["test"]["detected"] is want.drifted is True  # late traffic: amounts are larger than at training
    plot = d["plot"]
    edges = np.array(plot["edges"])
    assert len(edges) == 31 and np.all(np.diff(edges) > 0)
    for side, sketch in (("reference", ref["amount"]), ("current", cur["amount"])):
        shares = np.array(plot[side])
        assert shares.sum() == pytest.approx(1.0)
        # interior cells: the sketch's CDF between the shared edges (the outer two hold the tails)
        cdf = sketch.numeric.quantiles.cdf(edges[1:-1])
        np.testing.assert_allclose(shares[1:-1], np.diff(cdf), atol=rank_error)
        np.testing.assert_allclose(np.array(plot[f"{side}_density"]), shares / np.diff(edges))
    assert d["rows"] == {"reference": ref["amount"].count, "current": cur["amount"].count}
    # the current mean moved up: more of its mass sits above the reference median
    mid = (edges[1:] + edges[:-1]) / 2
    assert np.dot(plot["current"], mid) > np.dot(plot["reference"], mid)


def test_categorical_distribution_counts_categories(dashboard):
    start, end = dashboard.end - 5 * 60, dashboard.end
    d = httpx.get(
        f"{dashboard.url}/api/v1/views/distribution",
        params={**DEPLOYMENT, "feature": "merchant_category", "start": start, "end": end},
    ).json()
    cur, _ = _merged(dashboard.store, start, end)
    counts = {i.value: i.count for i in cur["merchant_category"].top(50)}
    total = sum(counts.values())
    got = dict(zip(d["plot"]["categories"], d["plot"]["current"], strict=True))
    assert got == pytest.approx({k: v / total for k, v in counts.items()})
    assert (
        got["crypto"]
        > 0.1
        > dict(zip(d["plot"]["categories"], d["plot"]["reference"], strict=True))["crypto"]
    )
    assert d["test"]["method"] == "chi2" and d["test"]["detected"] is True


def test_distribution_merges_at_most_the_cap_evenly_spread(dashboard):
    d = httpx.get(
        f"{dashboard.url}/api/v1/views/distribution",
        params={**DEPLOYMENT, "feature": "hour", "start": dashboard.start, "end": dashboard.end},
    ).json()
    total = len(dashboard.store.profiles.windows("payments", SUBJECT, dashboard.start, dashboard.end))
    assert d["windows"] == {"merged": MAX_MERGED_WINDOWS, "total": total, "cap": MAX_MERGED_WINDOWS}
    assert (
        d["rows"]["current"] < sum(w.rows for w in dashboard.store.profiles.windows("payments", SUBJECT)) / 2
    )


@pytest.mark.parametrize(
    ("route", "params", "field"),
    [
        ("distribution", {"feature": "no_such_feature"}, "query.feature"),
        ("distribution", {"feature": ""}, "query.feature"),
        ("distribution", {"feature": "amount", "start": 10.0, "end": 5.0}, "query.start"),
        ("distribution", {"feature": "amount", "start": "soon"}, "query.start"),
        ("distribution", {"feature": "amount", "version": ""}, "query.version"),
        ("drift", {"start": 10.0, "end": 5.0}, "query.start"),
        ("drift", {"start": 0.0, "end": 86400.0, "step": 1}, "query.step"),
        ("drift", {"project": ""}, "query.project"),
    ],
)
def test_bad_input_is_refused_naming_the_field(dashboard, route, params, field):
    base = {**DEPLOYMENT, "start": dashboard.end - 600, "end": dashboard.end}
    r = httpx.get(f"{dashboard.url}/api/v1/views/{route}", params={**base, **params})
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field
    if params.get("feature") == "no_such_feature":
        assert "amount" in r.json()["detail"][0]["message"]  # the message lists the known features


def test_unknown_deployment_has_no_features(dashboard):
    r = httpx.get(f"{dashboard.url}/api/v1/views/drift", params={**DEPLOYMENT, "version": "9"})
    assert r.status_code == 200 and r.json()["features"] == [] and r.json()["reference"] is False
    r = httpx.get(
        f"{dashboard.url}/api/v1/views/distribution", params={**DEPLOYMENT, "version": "9", "feature": "x"}
    )
    assert r.status_code == 404


def test_routes_answer_fast(dashboard):
    params = {**DEPLOYMENT, "start": dashboard.start, "end": dashboard.end}
    # the first answer imports scipy's statistics: not counted
    httpx.get(f"{dashboard.url}/api/v1/views/distribution", params={**params, "feature": "amount"})
    took = {}
    for route, extra in (("drift", {}), ("distribution", {"feature": "amount"})):
        times = []
        for _ in range(5):
            t = time.perf_counter()
            assert (
                httpx.get(f"{dashboard.url}/api/v1/views/{route}", params={**params, **extra}).status_code
                == 200
            )
            times.append(time.perf_counter() - t)
        took[route] = sorted(times)[2]
    print(f"median answer: {took}")
    # loose bounds for a shared CI machine; the numbers printed are what the report quotes
    assert took["drift"] < 1.0 and took["distribution"] < 1.5


def _api(dashboard, route, **params):
    return httpx.get(f"{dashboard.url}/api/v1/views/{route}", params={**DEPLOYMENT, **params}).json()


def test_the_page_shows_the_heatmap_and_a_chosen_distribution(dashboard, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    base = "/p/payments/m/fraud-clf/v/1/drift"
    span = f"from={dashboard.start}&to={dashboard.end}"
    browser.get(dashboard.page(f"{base}?{span}"))
    ready(browser)
    api = _api(dashboard, "drift", start=dashboard.start, end=dashboard.end)
    heat = browser.find_element(By.CSS_SELECTOR, "section[data-panel=heatmap] .js-plotly-plot")
    shown = browser.execute_script(
        "const d = arguments[0].data.filter(t => t.type === 'heatmap');"
        "return [d.map(t => t.y), d.map(t => arguments[0].layout[t.coloraxis].colorbar.title.text)];",
        heat,
    )
    # one trace per statistic (KS D, chi-squared, z), each over every feature, most drifted first
    assert shown[0] == [[f["feature"] for f in api["features"]]] * 3
    assert sorted(shown[1]) == ["drift score<br>KS D", "drift score<br>chi-squared", "drift score<br>z"]
    rows = browser.find_elements(By.CSS_SELECTOR, "section[data-panel=features] tbody tr")
    assert [r.get_attribute("data-feature") for r in rows] == [f["feature"] for f in api["features"]]
    assert rows[0].find_element(By.CSS_SELECTOR, "[data-drifted-buckets]").get_attribute(
        "data-drifted-buckets"
    ) == str(api["features"][0]["drifted_buckets"])
    # the default: the most drifted feature in the newest bucket
    box = browser.find_element(By.CSS_SELECTOR, "section[data-panel=distribution]")
    assert box.get_attribute("data-feature") == api["features"][0]["feature"]
    save_screenshot(browser, "drift-page", tmp_path)

    # choosing a feature and a window puts both in the address and draws that distribution
    Select(browser.find_element(By.CSS_SELECTOR, "select[name=feature]")).select_by_value("amount")
    ready(browser)
    assert "feature=amount" in browser.current_url
    at = browser.find_element(By.CSS_SELECTOR, "section[data-panel=distribution]").get_attribute("data-at")
    d = _api(dashboard, "distribution", feature="amount", start=float(at), end=float(at) + api["step"])
    merged = browser.find_element(By.CSS_SELECTOR, "[data-merged]")
    assert merged.text == f"merged {d['windows']['merged']} of {d['windows']['total']} windows"
    assert browser.find_element(By.CSS_SELECTOR, "[data-test]").text.startswith("ks+welch")
    p_cell = browser.find_element(By.CSS_SELECTOR, "[data-p-value]")
    # the page's request merged the windows again, and merging quantile sketches is randomised (KLL): the
    # p-value agrees in its decision and its order of magnitude, not to the last digit
    shown_p, api_p = float(p_cell.get_attribute("data-p-value")), d["test"]["p_value"]
    assert (shown_p < 0.01) == (api_p < 0.01)
    assert abs(math.log10(max(shown_p, 1e-300)) - math.log10(max(api_p, 1e-300))) < 1.0
    names = browser.execute_script("return document.querySelector('.drift-dist').data.map(t => t.name)")
    assert names == ["reference", "current"]
    Select(browser.find_element(By.CSS_SELECTOR, "select[name=at]")).select_by_value("all")
    ready(browser)
    assert "at=all" in browser.current_url
    save_screenshot(browser, "drift-page-amount", tmp_path)

    # a click on a heatmap cell chooses its feature and bucket (an early, undrifted one here)
    early = api["t"][5]
    browser.execute_script(
        "const gd = document.querySelector('section[data-panel=heatmap] .js-plotly-plot');"
        "const i = gd.data.findIndex(t => t.type === 'heatmap' && t.meta.includes('merchant_category'));"
        "const row = gd.data[i].meta.indexOf('merchant_category');"
        "gd.emit('plotly_click', {points: [{data: gd.data[i], curveNumber: i, pointNumber: [row, 5]}]});"
    )
    ready(browser)
    assert "feature=merchant_category" in browser.current_url and f"at={int(early)}" in browser.current_url
    bars = browser.execute_script("return document.querySelector('.drift-dist').data.map(t => t.x.length)")
    assert bars[0] == bars[1] >= 7  # one bar per merchant category, on both sides
    assert browser.find_element(By.CSS_SELECTOR, "[data-detected]").text == "no drift"
    save_screenshot(browser, "drift-page-click", tmp_path)
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []


def test_feature_names_are_shown_as_text(dashboard, browser, ready):
    from selenium.webdriver.common.by import By

    hostile = "<img src=x onerror=alert(1)>"
    browser.get(dashboard.page(f"/p/payments/m/fraud-clf/v/1/drift?feature={hostile}"))
    ready(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src=x]")
    options = [o.text for o in browser.find_elements(By.CSS_SELECTOR, "select[name=feature] option")]
    assert hostile in options
    assert "no column" in browser.find_element(By.CSS_SELECTOR, ".drift-dist-box .error").text
