"""The anomalies page: its data route against numpy over KPI windows a real run scored with
``run.watch_anomalies`` (counts, largest and newest scores per entity, the ranking, the caps, the threshold
in force at the range's end), its parameter errors, and the page in a real browser (the chart, the table's
counts, an entity charted alone, a hostile entity name shown as text)."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import watchkeeper as wk
from watchkeeper.store import Store

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)
_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))
Server = _servers["Server"]

DEPLOYMENT = {"project": "iot", "model": "sensor-kpi", "version": "2"}
IMG = "<img src=x onerror=\"window.__xss = 'entity'\">"
DEVICES = [f"dev-{k:02d}" for k in range(25)] + [IMG]
WINDOWS = 120  # one window a minute for two hours
THRESHOLDS = (1.2, 1.0)  # the first hour's windows were scored against 1.2, the second hour's against 1.0


class FixedScore:
    """A fitted detector whose score is the row's ``x``: the expected numbers are then the data's own."""

    def __init__(self, threshold: float) -> None:
        self.columns = ["x"]
        self.threshold = threshold

    def score(self, feats: pd.DataFrame) -> np.ndarray:
        return feats["x"].to_numpy(dtype=np.float64)


class Data:
    def __init__(self, url: str, start: float, end: float, rows: pd.DataFrame) -> None:
        self.url, self.start, self.end, self.rows = url, start, end, rows

    def get(self, **params):
        return httpx.get(f"{self.url}/api/v1/views/anomalies", params={**DEPLOYMENT, **params})


def _rows(start: float) -> pd.DataFrame:
    """Scores per device and window (ending at start + 60 i + 30 s), and one window of each device before
    ``start`` scoring far above the threshold, which no answer over [start, ...) may count."""
    rng = np.random.default_rng(7)
    frames = []
    for k, dev in enumerate(DEVICES):
        x = rng.uniform(0.0, 1.0 + 0.02 * k, WINDOWS)
        if dev == IMG:
            x[::10] = 3.0  # the most anomalous: ranked first, so charted
        t = start + 60.0 * np.arange(WINDOWS) + 30.0
        frames.append(
            pd.DataFrame({"timestamp": np.r_[start - 30.0, t], "device_id": dev, "x": np.r_[9.0, x]})
        )
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('anomalies') / 'wk.db'}"
    end = time.time() // 600 * 600
    start = end - WINDOWS * 60
    rows = _rows(start)
    first = rows["timestamp"] < start + 3600
    rows["threshold"] = np.where(first, THRESHOLDS[0], THRESHOLDS[1])
    det, one = FixedScore(THRESHOLDS[0]), FixedScore(0.5)
    run = wk.init(name="kpi-watch", uri=uri, system_metrics=False, **{k: DEPLOYMENT[k] for k in DEPLOYMENT})
    aw = run.watch_anomalies(det, None, by="device_id", name="kpi-ae", alert=False)
    aw.log(rows.loc[first, ["timestamp", "device_id", "x"]])
    aw.flush()
    det.threshold = THRESHOLDS[1]
    aw.log(rows.loc[~first, ["timestamp", "device_id", "x"]])
    # a detector without entities: every row is one stream
    solo = run.watch_anomalies(one, None, name="lat-if", alert=False)
    solo.log({"timestamp": start + 60.0 * np.arange(WINDOWS) + 45.0, "x": np.linspace(0.0, 0.6, WINDOWS)})
    run.finish()
    store = Store(uri)
    try:
        with Server(store) as server:
            yield Data(server.url, start, end, rows)
    finally:
        store.close()


def _expected(rows: pd.DataFrame, start: float, end: float, step: int) -> dict[str, dict]:
    inside = rows[(rows["timestamp"] >= start) & (rows["timestamp"] < end)]
    out = {}
    for dev, g in inside.groupby("device_id"):
        x, flag = g["x"].to_numpy(), g["x"].to_numpy() > g["threshold"].to_numpy()
        k = np.floor(g["timestamp"].to_numpy() / step) * step
        buckets = np.unique(k)
        out[dev] = {
            "anomalies": int(flag.sum()),
            "windows": len(x),
            "max_score": float(x.max()),
            "newest_score": float(x[np.argmax(g["timestamp"].to_numpy())]),
            "t": buckets.tolist(),
            "v": [float(x[k == b].max()) for b in buckets],
            "above": [int(flag[k == b].sum()) for b in buckets],
        }
    return out


@pytest.mark.parametrize(
    ("cut_start", "cut_end", "step", "threshold"),
    [(0, 0, 600, THRESHOLDS[1]), (0, 0, 60, THRESHOLDS[1]), (1800, 1200, 300, THRESHOLDS[0])],
)
def test_counts_scores_and_ranking_agree_with_numpy(data, cut_start, cut_end, step, threshold):
    start, end = data.start + cut_start, data.end - cut_end
    r = data.get(start=start, end=end, step=step)
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["detectors"] == ["kpi-ae", "lat-if"] and got["subject"] == "model:sensor-kpi@2"
    panel = next(p for p in got["panels"] if p["detector"] == "kpi-ae")
    # the threshold in force at the range's end: the second hour's, unless the range ends in the first
    assert panel["threshold"] == threshold and panel["late_rows"] is None
    want = _expected(data.rows, start, end, step)
    assert panel["entities"] == len(want) == len(DEVICES)
    assert panel["windows"] == sum(w["windows"] for w in want.values())
    assert panel["anomalies"] == sum(w["anomalies"] for w in want.values())
    # every entity in the table, ranked by windows above the threshold, then largest score
    order = sorted(want, key=lambda d: (-want[d]["anomalies"], -want[d]["max_score"], d))
    assert [row["entity"] for row in panel["table"]] == order and not panel["table_capped"]
    assert order[0] == IMG
    for row in panel["table"]:
        w = want[row["entity"]]
        assert (row["anomalies"], row["windows"]) == (w["anomalies"], w["windows"])
        assert row["max_score"] == pytest.approx(w["max_score"])
        assert row["newest_score"] == pytest.approx(w["newest_score"])
    # the top 20 charted: the largest score and the windows above the threshold per bucket
    assert panel["series_capped"] and [s["entity"] for s in panel["series"]] == order[:20]
    for s in panel["series"]:
        w = want[s["entity"]]
        assert s["t"] == w["t"] and s["anomalies"] == w["above"]
        np.testing.assert_allclose(s["v"], w["v"], rtol=1e-12)


def test_a_detector_without_entities_is_one_series(data):
    got = data.get(start=data.start, end=data.end, step=600, detector="lat-if").json()
    assert got["detectors"] == ["kpi-ae", "lat-if"] and [p["detector"] for p in got["panels"]] == ["lat-if"]
    (panel,) = got["panels"]
    x = np.linspace(0.0, 0.6, WINDOWS)
    assert panel["threshold"] == 0.5 and not panel["series_capped"]
    ((row,), (s,)) = panel["table"], panel["series"]
    assert row["entity"] == s["entity"] == "" and row["windows"] == WINDOWS
    assert row["anomalies"] == int((x > 0.5).sum()) and row["max_score"] == pytest.approx(0.6)
    assert sum(s["anomalies"]) == row["anomalies"]


def test_the_chosen_entity_is_charted_whatever_its_rank(data):
    last = data.get(start=data.start, end=data.end)
    low = last.json()["panels"][0]["table"][-1]["entity"]
    got = data.get(start=data.start, end=data.end, detector="kpi-ae", entity=low).json()
    (panel,) = got["panels"]
    assert len(panel["series"]) == 21 and panel["series"][-1]["entity"] == low and got["entity"] == low


def test_a_deployment_without_detectors_has_no_panels(data):
    got = data.get(version="9").json()
    assert got["detectors"] == [] and got["panels"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": 10.0, "end": 5.0}, "query.start"),
        ({"start": 0.0, "end": 500 * 86400.0}, "query.start"),
        ({"start": 0.0, "end": 86400.0, "step": 1}, "query.step"),
        ({"step": 0}, "query.step"),
        ({"end": "later"}, "query.end"),
        ({"version": ""}, "query.version"),
        ({"detector": ""}, "query.detector"),
    ],
)
def test_bad_input_is_refused_naming_the_field(data, params, field):
    r = data.get(**params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def _page(data, query: str = "", version: str = "2") -> str:
    span = f"from={data.start}&to={data.end}"
    return f"{data.url}/#/p/iot/m/sensor-kpi/v/{version}/anomalies?{span}{query}"


def test_the_page_shows_what_the_api_says(data, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(_page(data))
    ready(browser)
    api = data.get(start=data.start, end=data.end).json()
    cards = browser.find_elements(By.CSS_SELECTOR, "section[data-detector]")
    assert [c.get_attribute("data-detector") for c in cards] == api["detectors"]
    assert browser.find_element(By.CSS_SELECTOR, "nav.tabs a.active").get_attribute("data-tab") == "anomalies"
    for card, panel in zip(cards, api["panels"], strict=True):
        assert card.get_attribute("data-anomalies") == str(panel["anomalies"])
        rows = card.find_elements(By.CSS_SELECTOR, "table tbody tr")
        assert [(r.get_attribute("data-entity"), r.get_attribute("data-anomalies")) for r in rows] == [
            (row["entity"], str(row["anomalies"])) for row in panel["table"]
        ]
        cells = rows[0].find_elements(By.CSS_SELECTOR, "td")
        assert [c.text for c in cells[2:4]] == [
            str(panel["table"][0]["anomalies"]),
            str(panel["table"][0]["windows"]),
        ]
    plot = "document.querySelector('section[data-detector=\"kpi-ae\"] .js-plotly-plot')"
    lines = browser.execute_script(f"return {plot}.data.filter(t => t.mode === 'lines').map(t => t.name)")
    assert len(lines) == 20 and lines[0] == IMG.replace("&", "&amp;").replace("<", "&lt;").replace(
        ">", "&gt;"
    )
    marked = browser.execute_script(
        f"return {plot}.data.filter(t => t.mode === 'markers').map(t => t.x.length)"
    )
    kpi = api["panels"][0]
    assert sum(marked) == sum(sum(n > 0 for n in s["anomalies"]) for s in kpi["series"])
    shape_y = browser.execute_script(
        f"return {plot}.layout.shapes.filter(s => s.xref === 'paper').map(s => s.y0)"
    )
    assert shape_y == [kpi["threshold"]]
    # the hostile entity is text: a link saying it, no image, nothing ran
    hostile = cards[0].find_element(By.CSS_SELECTOR, "tbody tr a")
    assert hostile.text == IMG and not browser.find_elements(By.CSS_SELECTOR, "#page img")
    save_screenshot(browser, "anomalies-page", tmp_path)

    hostile.click()
    ready(browser)
    browser.implicitly_wait(0)
    chart = browser.find_element(By.CSS_SELECTOR, "section[data-detector='kpi-ae'] .chart")
    assert chart.get_attribute("data-charted") == "1"
    assert browser.find_element(By.CSS_SELECTOR, "tr.selected").get_attribute("data-entity") == IMG
    assert browser.execute_script(f"return {plot}.data.filter(t => t.mode === 'lines').length") == 1
    assert browser.find_elements(By.CSS_SELECTOR, "[data-show-all]")
    assert browser.execute_script("return window.__xss === undefined")
    save_screenshot(browser, "anomalies-page-one-entity", tmp_path)

    browser.get(_page(data, version="9"))
    ready(browser)
    assert (
        "no anomaly detectors report for this deployment"
        in browser.find_element(By.CSS_SELECTOR, ".empty").text
    )
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
