"""The samples tab of a deployment: its data route (routes and counts per status) against the store and the
simulation, and the page in a real browser (the rows shown are the API's, the filters live in the address,
paging goes back in time, a row opens its whole record)."""

from __future__ import annotations

import json
import runpy
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)

DEPLOYMENT = {"project": "payments", "model": "fraud-clf", "version": "1"}
SUBJECT = "model:fraud-clf@1"


def _range(dashboard):
    # the simulated rows' times are in [start, end); a minute past the end keeps the last window's rows
    return dashboard.start, dashboard.end + 60


def _address(dashboard, **params):
    start, end = _range(dashboard)
    query = "&".join(f"{k}={v}" for k, v in {"from": start, "to": end, **params}.items())
    return dashboard.page(f"/p/payments/m/fraud-clf/v/1/samples?{query}")


def _stored(dashboard, version="1"):
    """Every sampled row of a version in the range, read from the store itself."""
    start, end = _range(dashboard)
    found = dashboard.store.samples.query(
        project="payments", subject=f"model:fraud-clf@{version}", start=start, end=end, limit=100_000
    )
    assert not found.truncated
    return found.rows


def test_counts_are_those_of_the_stored_rows(dashboard):
    start, end = _range(dashboard)
    r = httpx.get(f"{dashboard.url}/api/v1/views/samples", params={**DEPLOYMENT, "start": start, "end": end})
    assert r.status_code == 200, r.text
    data = r.json()
    rows = _stored(dashboard)
    by_status = Counter(row.data["status"] for row in rows)
    assert {s["status"]: s["rows"] for s in data["statuses"]} == dict(by_status)
    assert [s["rows"] for s in data["statuses"]] == sorted(by_status.values(), reverse=True)
    assert data["rows"] == len(rows) > 0 and not data["capped"]
    assert data["errors"] == len(rows) - by_status["ok"] > 0
    assert data["routes"] == [{"route": "predict", "rows": len(rows), "errors": data["errors"]}]
    assert set(by_status) == {"ok", "UpstreamTimeout", "ValueError"}


def test_past_the_bound_the_newest_rows_are_counted(dashboard, monkeypatch):
    from watchkeeper.server import views_samples

    monkeypatch.setattr(views_samples, "COUNT_LIMIT", 100)  # the server runs in this process's thread
    start, end = _range(dashboard)
    r = httpx.get(f"{dashboard.url}/api/v1/views/samples", params={**DEPLOYMENT, "start": start, "end": end})
    data = r.json()
    newest = sorted(_stored(dashboard), key=lambda row: row.id, reverse=True)[:100]
    assert data["capped"] and data["rows"] == 100
    assert {s["status"]: s["rows"] for s in data["statuses"]} == dict(
        Counter(r.data["status"] for r in newest)
    )


def test_every_simulated_error_is_counted_once(dashboard):
    # the simulation samples every failed request: the errors of both versions are all its errors
    start, end = _range(dashboard)
    errors = 0
    for version in ("1", "2"):
        params = {**DEPLOYMENT, "version": version, "start": start, "end": end}
        errors += httpx.get(f"{dashboard.url}/api/v1/views/samples", params=params).json()["errors"]
    assert errors == dashboard.sim.errors > 0


def test_a_range_before_the_traffic_has_no_rows_but_keeps_its_routes(dashboard):
    params = {**DEPLOYMENT, "start": dashboard.start - 7200, "end": dashboard.start - 3600}
    data = httpx.get(f"{dashboard.url}/api/v1/views/samples", params=params).json()
    assert (data["rows"], data["errors"], data["statuses"]) == (0, 0, [])
    assert data["routes"] == [{"route": "predict", "rows": 0, "errors": 0}]  # from the per-endpoint series


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": 10.0, "end": 5.0}, "query.start"),
        ({"start": 0.0, "end": 500 * 86400.0}, "query.start"),
        ({"model": ""}, "query.model"),
        ({"version": None}, "query.version"),
        ({"end": "soon"}, "query.end"),
    ],
)
def test_bad_input_is_refused_naming_the_parameter(dashboard, params, field):
    query = {k: v for k, v in {**DEPLOYMENT, **params}.items() if v is not None}
    r = httpx.get(f"{dashboard.url}/api/v1/views/samples", params=query)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def test_the_route_reads_a_bounded_number_of_rows_quickly(dashboard):
    start, end = _range(dashboard)
    params = {**DEPLOYMENT, "start": start, "end": end}
    with httpx.Client(base_url=dashboard.url) as client:
        client.get("/api/v1/views/samples", params=params)
        took = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert client.get("/api/v1/views/samples", params=params).status_code == 200
            took.append(time.perf_counter() - t0)
    took.sort()
    assert took[18] < 0.3, f"p95 {took[18] * 1e3:.0f} ms"


# -- the page ----------------------------------------------------------------------------------------------


def _api_rows(dashboard, **params):
    start, end = _range(dashboard)
    query = {"project": "payments", "subject": SUBJECT, "start": start, "end": end, "limit": 50, **params}
    r = httpx.get(f"{dashboard.url}/api/v1/samples", params=query)
    assert r.status_code == 200, r.text
    return r.json()


def _shown(driver):
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "table.samples tr.sample")
    return [
        {
            "id": int(r.get_attribute("data-sample")),
            "cells": [td.text for td in r.find_elements(By.CSS_SELECTOR, "td")],
        }
        for r in rows
    ]


def _ms(v):
    """A latency as lib.js's fmtNum writes it with the unit ms."""
    if v >= 1e4:
        return f"{v / 1e3:.1f}k ms"
    return f"{v:.0f} ms" if v >= 100 else f"{v:.2f} ms" if v >= 1 else f"{v:.3g} ms"


def _then_ready(driver, ready, action):
    """Do ``action`` (which changes the address) and wait for the page it leads to: the ready flag is
    cleared first, so a flag left from the page before cannot pass for the new one."""
    driver.execute_script("document.body.dataset.ready = '0'")
    action()
    ready(driver)


def _no_console_errors(driver):
    errors = [e for e in console_errors(driver) or [] if "favicon" not in e]
    assert errors == []


def test_errors_only_shows_the_apis_rows_and_error_texts(dashboard, browser, ready, tmp_path):
    api = _api_rows(dashboard, status="error")
    browser.get(_address(dashboard, errors=1))
    ready(browser)
    shown = _shown(browser)
    assert len(shown) == len(api["rows"]) == 50  # more errors than a page: the newest 50
    assert [s["id"] for s in shown] == [r["sample_id"] for r in api["rows"]]
    # columns: time, route, status, latency, error, inputs, outputs
    assert [s["cells"][4] for s in shown] == [r["data"]["error"] for r in api["rows"]]
    assert [s["cells"][2] for s in shown] == [r["data"]["status"] for r in api["rows"]]
    assert all(s["cells"][6] == "–" for s in shown)  # a failed request has no outputs
    first = api["rows"][0]["data"]
    assert shown[0]["cells"][3] == _ms(first["latency_ms"])
    assert f"merchant_category={first['inputs']['merchant_category']}" in shown[0]["cells"][5]
    save_screenshot(browser, "samples-errors", tmp_path)
    _no_console_errors(browser)


def test_filters_change_the_address_and_the_rows(dashboard, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    browser.get(_address(dashboard))
    ready(browser)
    everything = _api_rows(dashboard)
    assert [s["id"] for s in _shown(browser)] == [r["sample_id"] for r in everything["rows"]]
    counts = httpx.get(
        f"{dashboard.url}/api/v1/views/samples",
        params={**DEPLOYMENT, "start": _range(dashboard)[0], "end": _range(dashboard)[1]},
    ).json()
    label = browser.find_element(By.CSS_SELECTOR, "label:has(input[name=errors])").text
    assert label == f"errors only ({counts['errors']})"

    _then_ready(browser, ready, browser.find_element(By.CSS_SELECTOR, "input[name=errors]").click)
    assert "errors=1" in browser.current_url
    assert all(s["cells"][2] != "ok" for s in _shown(browser))

    route = Select(browser.find_element(By.CSS_SELECTOR, "select[name=route]"))
    _then_ready(browser, ready, lambda: route.select_by_value("predict"))
    assert "route=predict" in browser.current_url
    assert [s["id"] for s in _shown(browser)] == [
        r["sample_id"] for r in _api_rows(dashboard, status="error", route="predict")["rows"]
    ]

    # errors off, then the label 0 (the classifier's "not fraud"): only rows that answered
    _then_ready(browser, ready, browser.find_element(By.CSS_SELECTOR, "input[name=errors]").click)
    assert "errors=" not in browser.current_url
    box = browser.find_element(By.CSS_SELECTOR, "input[name=label]")
    _then_ready(browser, ready, lambda: box.send_keys("0", Keys.ENTER))
    assert "label=0" in browser.current_url
    labelled = _api_rows(dashboard, route="predict", label="0")["rows"]
    shown = _shown(browser)
    assert [s["id"] for s in shown] == [r["sample_id"] for r in labelled] and shown
    assert all("label=0" in s["cells"][6].split(", ") and s["cells"][2] == "ok" for s in shown)

    # the search narrows the rows shown to those whose record holds the text
    search = browser.find_element(By.CSS_SELECTOR, "input[name=q]")
    _then_ready(browser, ready, lambda: search.send_keys("crypto", Keys.ENTER))
    assert "q=crypto" in browser.current_url
    want = [r["sample_id"] for r in labelled if "crypto" in json.dumps(r["data"]).lower()]
    assert [s["id"] for s in _shown(browser)] == want
    save_screenshot(browser, "samples-filtered", tmp_path)
    _no_console_errors(browser)


def test_older_pages_back_and_a_row_opens_its_record(dashboard, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By

    browser.get(_address(dashboard))
    ready(browser)
    first_page = _api_rows(dashboard)
    assert first_page["truncated"]
    _then_ready(browser, ready, browser.find_element(By.CSS_SELECTOR, "button[data-page=older]").click)
    oldest = first_page["rows"][-1]["t"]
    assert f"before={oldest}" in browser.current_url
    second = _api_rows(dashboard, end=oldest)
    shown = _shown(browser)
    assert [s["id"] for s in shown] == [r["sample_id"] for r in second["rows"]]
    assert not {s["id"] for s in shown} & {r["sample_id"] for r in first_page["rows"]}

    row = browser.find_element(By.CSS_SELECTOR, "table.samples tr.sample")
    row.click()
    detail = browser.find_element(By.CSS_SELECTOR, "tr.sample-detail pre")
    record = json.loads(detail.text)
    assert record["sample_id"] == second["rows"][0]["sample_id"]
    assert record["inputs"] == second["rows"][0]["data"]["inputs"]
    assert row.get_attribute("aria-expanded") == "true"
    save_screenshot(browser, "samples-expanded", tmp_path)
    row.click()
    assert not browser.find_elements(By.CSS_SELECTOR, "tr.sample-detail")

    _then_ready(browser, ready, browser.find_element(By.CSS_SELECTOR, "button[data-page=newest]").click)
    assert "before=" not in browser.current_url
    assert _shown(browser)[0]["id"] == first_page["rows"][0]["sample_id"]
    _no_console_errors(browser)
