"""Versions side by side: ``/api/v1/views/compare`` against the overview route, the store and
``watchkeeper.drift`` run directly on the same merged window profiles, and the page in a real browser
(both versions overlaid, newest values and their difference, the drift table highlighting exactly the
drifted columns, user text shown as text; screenshots saved)."""

from __future__ import annotations

import math
import runpy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from watchkeeper.drift import DriftResult, drift
from watchkeeper.profile import Profile, profile
from watchkeeper.server.views import evenly_spaced, merged_windows, pick_windows
from watchkeeper.server.views_compare import DEFAULT_WINDOWS, MAX_WINDOWS, traffic_drift
from watchkeeper.store import Store
from watchkeeper.store.batch import Batch, ProfileLog

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)
Server = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))["Server"]

BASE = {"project": "payments", "model": "fraud-clf"}
HOSTILE = '<img src=x onerror="window.__pwned=1">amount'


def _get(url: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/views/{path}", params=params, timeout=60)


def _merged_directly(store: Store, project: str, subject: str, start: float, end: float, n: int) -> Profile:
    """The windows the route must merge, chosen and merged here without its code: of the windows starting
    in the range, for ``n`` times evenly spaced from the first one's start to the last one's, the first
    window starting at or after each."""
    found = [w for w in store.profiles.windows(project, subject, start, end) if start <= w.window_start < end]
    found.sort(key=lambda w: (w.window_start, w.id))
    first, last = found[0].window_start, found[-1].window_start
    times = [first] if n == 1 else np.linspace(first, last, n)
    chosen = {next(w.id for w in found if w.window_start >= t): None for t in times}
    merged = Profile()
    for w in found:
        if w.id in chosen:
            merged = merged.merge(Profile.from_bytes(w.data))
    return merged


def _same_number(got: Any, want: float) -> bool:
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    return got == pytest.approx(want, rel=1e-9, abs=1e-12)


SKETCH_TOLERANCE = 0.04
"""How far a quantile-sketch figure of two merges of the same windows may differ: KLL compaction is
randomised, so each merge is a slightly different sketch (the drift module puts the KS statistic within
0.01 of the exact one with high probability, not surely; two merges' errors add, and a clean-clone run saw
0.023 between two merges of 12 windows of about 100 rows)."""


def _check_drift_against_direct(answer: dict[str, Any], direct: DriftResult, exact: bool) -> None:
    """The route's drift answer against ``direct``: equal in every figure when both come from the same
    profile objects (``exact``); from two merges of the same windows, equal in everything counted exactly
    (categories, booleans, moments) and within :data:`SKETCH_TOLERANCE` in the sketch-based figures."""
    assert answer["drifted"] == direct.drifted
    assert answer["share"] == pytest.approx(direct.share)
    assert sorted(answer["drifted_columns"]) == sorted(direct.drifted_columns)
    cols = {c["column"]: c for c in answer["columns"]}
    assert set(cols) == {c.column for c in direct.columns}
    for c in direct.columns:
        got = cols[c.column]
        assert got["drifted"] == c.drifted, c.column
        assert (got["method"], got["status"], got["kind"]) == (c.method, c.status, c.kind)
        assert (got["ref_count"], got["cur_count"]) == (c.ref_count, c.cur_count)
        if exact or c.kind != "numeric":
            for key in ("statistic", "p_value", "p_adjusted", "effect"):
                assert _same_number(got[key], getattr(c, key)), (c.column, key, got[key], getattr(c, key))
        else:
            for key in ("statistic", "effect"):
                assert got[key] == pytest.approx(getattr(c, key), abs=SKETCH_TOLERANCE), (c.column, key)
    # largest effect first; columns not compared last
    effects = [c["effect"] for c in answer["columns"] if c["drifted"] is not None]
    assert effects == sorted(effects, reverse=True)


# -- the simulated deployment ----------------------------------------------------------------------------


def test_each_side_is_that_versions_overview_over_the_same_range(dashboard):
    r = _get(dashboard.url, "compare", **BASE, a="1", b="2", start=dashboard.start, end=dashboard.end)
    assert r.status_code == 200, r.text
    data = r.json()
    rng = {k: data[k] for k in ("start", "end", "step")}
    for side, version in (("a", "1"), ("b", "2")):
        overview = _get(dashboard.url, "overview", **BASE, version=version, **rng).json()
        assert [p["key"] for p in data["panels"]] == [p["key"] for p in overview["panels"]]
        for mine, theirs in zip(data["panels"], overview["panels"], strict=True):
            assert mine[side]["series"] == theirs["series"]
            assert mine[side]["current"] == theirs["current"]
    # a number checked against the store itself: v2's traffic per bucket is the mean of its windows' rates
    (s,) = [
        x
        for x in dashboard.store.signals.series("payments", subject="model:fraud-clf@2", name="request_rate")
        if not x.labels
    ]
    raw = dashboard.store.signals.points_in(s.id, data["start"], data["end"])
    k = np.floor(raw.t / data["step"])
    want = {float(b * data["step"]): float(raw.value[k == b].mean()) for b in np.unique(k)}
    panels = {p["key"]: p for p in data["panels"]}
    (traffic,) = [x for x in panels["traffic"]["b"]["series"] if not x["labels"]]
    assert dict(zip(traffic["t"], traffic["v"], strict=True)) == pytest.approx(want)
    for p in data["panels"]:
        a, b = p["a"]["current"], p["b"]["current"]
        assert p["difference"] == (pytest.approx(b - a) if a is not None and b is not None else None)
    # v1 takes 80% of the traffic and v2 20%: the difference says so
    assert panels["traffic"]["difference"] < 0


@pytest.mark.parametrize("windows", [DEFAULT_WINDOWS, 100])
def test_drift_is_watchkeeper_drift_of_the_merged_windows(dashboard, windows):
    r = _get(
        dashboard.url,
        "compare",
        **BASE,
        a="1",
        b="2",
        start=dashboard.start,
        end=dashboard.end,
        windows=windows,
    )
    assert r.status_code == 200, r.text
    data = r.json()
    d = data["drift"]
    assert (d["reference"], d["current"], d["limit"]) == ("1", "2", windows)
    store, start, end = dashboard.store, data["start"], data["end"]
    profiles = {}
    for side, version in (("a", "1"), ("b", "2")):
        subject = f"model:fraud-clf@{version}"
        total = sum(
            1 for w in store.profiles.windows("payments", subject, start, end) if start <= w.window_start
        )
        assert total == 100  # 100 minutes of 1-minute windows per version
        assert d["windows"][side]["total"] == total
        assert d["windows"][side]["merged"] == min(windows, total)
        profiles[side] = _merged_directly(store, "payments", subject, start, end, windows)
        assert d["windows"][side]["rows"] == profiles[side].rows
    _check_drift_against_direct(d, drift(profiles["a"], profiles["b"]), exact=False)
    roles = {c["column"]: c["role"] for c in d["columns"]}
    assert roles["score"] == "output" and roles["amount"] == "input"


def test_windows_are_picked_evenly_in_time_with_one_seek_each(shifted):
    _, store, start, end = shifted
    assert evenly_spaced(0.0, 540.0, 4) == [0.0, 180.0, 360.0, 540.0]
    picked, total = pick_windows(store, "shop", "model:ranker@1", start, end, 4)
    windows = {w.id: w.window_start for w in store.profiles.windows("shop", "model:ranker@1")}
    assert total == 10
    assert [windows[pid] - start for pid, _ in picked] == [0.0, 180.0, 360.0, 540.0]
    assert [rows for _, rows in picked] == [200] * 4
    # more picks than windows: each window once; a range with none: nothing
    assert len(pick_windows(store, "shop", "model:ranker@1", start, end, 50)[0]) == 10
    assert pick_windows(store, "shop", "model:ranker@1", end, end + 600, 5) == ([], 0)
    # a range cut inside: only the windows starting in it
    picked, total = pick_windows(store, "shop", "model:ranker@1", start + 120, start + 300, 12)
    assert total == 3 and sorted(windows[pid] - start for pid, _ in picked) == [120.0, 180.0, 240.0]


def test_the_parts_are_the_whole_answer_split(shifted):
    url, _, start, end = shifted
    params = {"project": "shop", "model": "ranker", "a": "1", "b": "2", "start": start, "end": end}
    whole = _get(url, "compare", **params).json()
    panels = _get(url, "compare", **params, part="panels").json()
    only_drift = _get(url, "compare", **params, part="drift").json()
    assert "drift" not in panels and "panels" not in only_drift
    assert panels["panels"] == whole["panels"] and panels["events"] == whole["events"]
    assert only_drift["drift"]["windows"] == whole["drift"]["windows"]
    assert only_drift["drift"]["drifted_columns"] == whole["drift"]["drifted_columns"]


def test_a_version_without_traffic_in_the_range_says_so(dashboard):
    r = _get(dashboard.url, "compare", **BASE, a="1", b="9", start=dashboard.start, end=dashboard.end)
    assert r.status_code == 200, r.text
    d = r.json()["drift"]
    assert d["windows"]["b"] == {"merged": 0, "total": 0, "rows": 0, "unreadable": 0}
    assert d["columns"] == [] and "v9" in d["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"a": "", "b": "2"}, "query.a"),
        ({"a": "1", "b": ""}, "query.b"),
        ({"a": "1"}, "query.b"),
        ({"a": "1", "b": "2", "windows": 0}, "query.windows"),
        ({"a": "1", "b": "2", "windows": MAX_WINDOWS + 1}, "query.windows"),
        ({"a": "1", "b": "2", "start": 2e9, "end": 1e9}, "query.start"),
        ({"a": "1", "b": "2", "step": 0}, "query.step"),
        ({"a": "1", "b": "2", "part": "both"}, "query.part"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(dashboard, params, field):
    r = _get(dashboard.url, "compare", **BASE, **params)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]]


def test_compare_page_shows_both_versions_and_their_difference(dashboard, browser, ready, tmp_path):
    start, end = int(dashboard.start), int(dashboard.end)
    browser.get(dashboard.page(f"/p/payments/m/fraud-clf/compare?a=1&b=2&from={start}&to={end}"))
    ready(browser)
    data = _get(dashboard.url, "compare", **BASE, a="1", b="2", start=start, end=end).json()
    # the pickers list the model's versions, each side showing its own
    for side, version in (("a", "1"), ("b", "2")):
        options = browser.execute_script(
            f"return [...document.querySelectorAll('select[data-side={side}] option')].map(o => o.value)"
        )
        assert options == ["1", "2"]
        assert (
            browser.execute_script(f"return document.querySelector('select[data-side={side}]').value")
            == version
        )
    # newest values side by side, with B - A
    for p in data["panels"]:
        for side in ("a", "b"):
            shown = browser.execute_script(
                f"return document.querySelector('table.newest tr[data-panel={p['key']}] "
                f"td[data-side={side}]').dataset.value"
            )
            want = p[side]["current"]
            assert (shown == "") if want is None else float(shown) == pytest.approx(want)
        diff = browser.execute_script(
            f"return document.querySelector('table.newest tr[data-panel={p['key']}] td[data-difference]')"
            ".dataset.difference"
        )
        assert (diff == "") if p["difference"] is None else float(diff) == pytest.approx(p["difference"])
    # the traffic chart: v1 solid and v2 dashed, in two colours, with the API's values
    traces = browser.execute_script(
        "return document.querySelector('[data-panel=traffic] .chart').data"
        ".filter(t => t.name === 'v1' || t.name === 'v2')"
        ".map(t => ({name: t.name, dash: t.line.dash, color: t.line.color, y: t.y}))"
    )
    by_name = {t["name"]: t for t in traces}
    assert set(by_name) == {"v1", "v2"}
    assert (by_name["v1"]["dash"], by_name["v2"]["dash"]) == ("solid", "dash")
    assert by_name["v1"]["color"] != by_name["v2"]["color"]
    panels = {p["key"]: p for p in data["panels"]}
    (total_b,) = [s for s in panels["traffic"]["b"]["series"] if not s["labels"]]
    assert by_name["v2"]["y"] == pytest.approx(total_b["v"], nan_ok=True)
    # the drift table: the API's columns, drifted rows highlighted. Not in the same order: the page made its
    # own request, and merging quantile sketches is randomised (KLL), so effects that nearly tie can swap
    rows = browser.execute_script(
        "return [...document.querySelectorAll('table.drift-table tbody tr')]"
        ".map(r => [r.dataset.column, r.classList.contains('drifted')])"
    )
    assert sorted(rows) == sorted([c["column"], bool(c["drifted"])] for c in data["drift"]["columns"])
    shown = browser.execute_script("return document.querySelector('[data-windows]').textContent")
    w = data["drift"]["windows"]
    assert (
        f"{w['a']['merged']} of {w['a']['total']}" in shown
        and f"{w['b']['merged']} of {w['b']['total']}" in shown
    )
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
    save_screenshot(browser, "compare_fraud_clf", tmp_path)
    # choosing another version for A re-renders with it in the address
    browser.execute_script(
        "const s = document.querySelector('select[data-side=a]'); s.value = '2';"
        "s.dispatchEvent(new Event('change'))"
    )
    ready(browser)
    assert "a=2" in browser.current_url
    assert browser.execute_script("return document.querySelector('h1').textContent").startswith(
        "fraud-clf: v2"
    )


# -- a deployment whose versions' traffic differs ---------------------------------------------------------


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store, float, float]]:
    """Ten 1-minute windows of two versions of "ranker": v2's ``amount`` and the hostile-named column shifted
    by a standard deviation, ``colour`` alike in both; and v1's reference profile."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('shifted') / 'wk.db'}")
    rng = np.random.default_rng(7)
    start = 1_800_000_000.0
    logs = []
    for version, shift in (("1", 0.0), ("2", 1.0)):
        for i in range(10):
            n = 200
            cols = {
                "amount": rng.normal(shift, 1.0, n),
                HOSTILE: rng.normal(shift, 1.0, n),
                "colour": rng.choice(["red", "green", "blue"], n),
            }
            p = profile(cols)
            ws = start + 60 * i
            logs.append(
                ProfileLog(
                    "shop",
                    f"model:ranker@{version}",
                    "window",
                    ws,
                    ws + 60,
                    p.rows,
                    p.to_bytes(),
                    p.format_version,
                )
            )
    # a reference kept under the same subject, timed inside the range: not a window of traffic
    ref = profile({"amount": rng.normal(0.0, 1.0, 500)})
    logs.append(
        ProfileLog(
            "shop",
            "model:ranker@1",
            "reference",
            start + 300,
            start + 300,
            ref.rows,
            ref.to_bytes(),
            ref.format_version,
            reference=("ranker", "1", "train"),
        )
    )
    store.write(Batch(profiles=logs))
    try:
        with Server(store) as server:
            yield server.url, store, start, start + 600
    finally:
        store.close()


def test_drift_between_shifted_versions_matches_drift_run_directly(shifted):
    url, store, start, end = shifted
    r = _get(url, "compare", project="shop", model="ranker", a="1", b="2", start=start, end=end)
    assert r.status_code == 200, r.text
    data = r.json()
    d = data["drift"]
    assert d["windows"]["a"]["merged"] == d["windows"]["a"]["total"] == 10
    ref = _merged_directly(store, "shop", "model:ranker@1", data["start"], data["end"], DEFAULT_WINDOWS)
    cur = _merged_directly(store, "shop", "model:ranker@2", data["start"], data["end"], DEFAULT_WINDOWS)
    assert ref.rows == cur.rows == 2000
    _check_drift_against_direct(d, drift(ref, cur), exact=False)
    assert sorted(d["drifted_columns"]) == sorted(["amount", HOSTILE])
    assert d["drifted"] is True  # two of three columns


def test_compare_page_highlights_exactly_the_drifted_columns(shifted, browser, ready, tmp_path):
    url, _, start, end = shifted
    browser.get(f"{url}/#/p/shop/m/ranker/compare?a=1&b=2&from={int(start)}&to={int(end)}")
    ready(browser)
    drifted = browser.execute_script(
        "return [...document.querySelectorAll('table.drift-table tr.drifted')].map(r => r.dataset.column)"
    )
    assert sorted(drifted) == sorted(["amount", HOSTILE])
    # the hostile column name is text: shown as typed, no element made from it, no script run
    names = browser.execute_script(
        "return [...document.querySelectorAll('table.drift-table .column-name')].map(e => e.textContent)"
    )
    assert HOSTILE in names
    assert browser.execute_script("return document.querySelectorAll('#page img').length") == 0
    assert browser.execute_script("return window.__pwned === undefined")
    verdict = browser.execute_script("return document.querySelector('.verdict').dataset.drifted")
    assert verdict == "1"
    # the panels have no signals here: each says so instead of drawing an empty chart
    assert (
        browser.execute_script("return document.querySelectorAll('#page .chart:not(.compare-dist)').length")
        == 0
    )
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
    browser.execute_script("document.querySelector('[data-drift]').scrollIntoView()")
    save_screenshot(browser, "compare_shifted", tmp_path)


def test_the_answer_reports_drift_of_the_merged_profiles_figure_for_figure(shifted):
    """On the very profile objects the route merges, its drift rows are watchkeeper.drift's, unchanged."""
    _, store, start, end = shifted
    ref, counts = merged_windows(store, "shop", "model:ranker@1", start, end, 4)
    cur, _ = merged_windows(store, "shop", "model:ranker@2", start, end, 4)
    assert counts == {"merged": 4, "total": 10, "rows": 800, "unreadable": 0}
    assert ref.rows == cur.rows == 800
    _check_drift_against_direct(traffic_drift(ref, cur), drift(ref, cur), exact=True)
