"""Training runs compared W&B-style: ``/api/v1/views/runs`` against the store (every logged key's points,
long series aggregated per bucket of steps as numpy computes it, config and summary differences), bad input,
and the page in a real browser (a chart per key with the runs overlaid, differing config rows highlighted,
user text shown as text; screenshots saved)."""

from __future__ import annotations

import runpy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from watchkeeper.server.views_runs import MAX_COMPARED, MAX_POINTS, flatten, key_group
from watchkeeper.store import Store, codec
from watchkeeper.store.batch import Batch, Points, RunStart, RunUpdate

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot, console_errors = (
    _browser["browser"],
    _browser["save_screenshot"],
    _browser["console_errors"],
)
Server = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))["Server"]

CURVES = {"train/loss", "val/loss", "val/roc_auc", "val/accuracy", "lr"}
HOSTILE_NAME = '<img src=x onerror="window.__pwned=1"><b>bold run</b>'
HOSTILE_KEY = "<i>opt</i>"


def _get(url: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/views/runs", params=params, timeout=60)


def _training(dashboard) -> list[str]:
    return [dashboard.sim.training_runs["1"], dashboard.sim.training_runs["2"]]


def test_the_list_is_the_projects_runs_newest_first(dashboard):
    r = _get(dashboard.url, project="payments")
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["selected"] == [] and data["keys"] == [] and data["config"] == []
    runs = data["runs"]
    stored = dashboard.store.runs.list("payments")
    assert [x["id"] for x in runs] == [s.id for s in stored]
    created = [x["created_at"] for x in runs]
    assert created == sorted(created, reverse=True)
    by_id = {x["id"]: x for x in runs}
    v2 = by_id[dashboard.sim.training_runs["2"]]
    assert (v2["name"], v2["state"], v2["job_type"], v2["model"], v2["version"]) == (
        "train-fraud-clf-v2",
        "finished",
        "train",
        "fraud-clf",
        "2",
    )
    assert v2["duration"] == pytest.approx(25 * 20.0)  # 25 epochs of 20 s
    assert v2["summary"]["epochs"] == 25
    assert {x["job_type"] for x in runs} == {"train", "serve"}


def test_every_logged_key_is_its_stored_history_by_step(dashboard):
    ids = _training(dashboard)
    r = _get(dashboard.url, project="payments", ids=",".join(ids))
    assert r.status_code == 200, r.text
    data = r.json()
    assert [x["id"] for x in data["selected"]] == ids
    keys = {k["key"]: k for k in data["keys"]}
    assert set(keys) == CURVES
    assert [k["key"] for k in data["keys"]] == ["train/loss", "val/accuracy", "val/loss", "val/roc_auc", "lr"]
    assert {k["key"]: k["group"] for k in data["keys"]}["val/loss"] == "val"
    assert keys["lr"]["group"] == ""
    for name in CURVES:
        assert [s["run_id"] for s in keys[name]["runs"]] == ids
        for s in keys[name]["runs"]:
            h = dashboard.store.signals.history(s["run_id"], name)
            assert s["step"] == h.step.tolist() == list(range(25))
            assert s["t"] == h.t.tolist()
            assert s["v"] == h.value.tolist()
            assert (s["points"], s["width"]) == (25, 1)
    # the two runs really differ where the simulation says: v2 has half v1's learning rate
    lr = {s["run_id"]: s["v"][0] for s in keys["lr"]["runs"]}
    assert lr[ids[0]] == pytest.approx(0.1) and lr[ids[1]] == pytest.approx(0.05)


def test_config_and_summary_mark_exactly_the_keys_that_differ(dashboard):
    ids = _training(dashboard)
    data = _get(dashboard.url, project="payments", ids=",".join(ids)).json()
    config = {row["key"]: row for row in data["config"]}
    assert {k for k, row in config.items() if row["differs"]} == {
        "learning_rate",
        "n_estimators",
        "max_depth",
    }
    assert config["learning_rate"]["values"] == {ids[0]: 0.1, ids[1]: 0.05}
    assert config["features"]["differs"] is False  # equal lists are equal
    summary = {row["key"]: row for row in data["summary"]}
    stored = {i: dashboard.store.runs.get(i).summary for i in ids}
    for key, row in summary.items():
        assert row["differs"] == (stored[ids[0]][key] != stored[ids[1]][key]), key
    assert summary["epochs"]["differs"] is False and summary["f1"]["differs"] is True
    # a training run beside a serving run: every key is on one side only, so every key differs
    mixed = _get(dashboard.url, ids=f"{ids[0]},{dashboard.sim.serving_runs['1']}").json()
    assert all(row["differs"] for row in mixed["config"])
    assert {r["key"]: r["missing"] for r in mixed["config"]}["replicas"] == [ids[0]]


def test_flatten_and_groups():
    assert flatten({"a": {"b": {"c": 1}}, "d": [1, {"e": 2}], "f": {}}) == {
        "a.b.c": 1,
        "d": [1, {"e": 2}],
        "f": {},
    }
    assert [key_group(k) for k in ("train/loss", "lr", "/x", "a/b/c")] == ["train", "", "", "a"]


# -- a store of our own: long series, hostile text, another project ------------------------------------------


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store, dict[str, Any]]]:
    """A run logging 5003 steps of ``loss`` (NaN at one step) and 3 of ``eval/acc``, a run whose name and
    config are hostile text, and a run of another project."""
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('runs') / 'wk.db'}")
    rng = np.random.default_rng(11)
    t0 = 1_800_000_000.0
    long_id, hostile_id, other_id = (uuid.uuid4().hex for _ in range(3))
    steps = np.arange(5003)
    loss = np.exp(-steps / 1500) + rng.normal(0, 0.01, steps.size)
    loss[1234] = np.nan
    store.write(
        Batch(
            runs=[
                RunStart(long_id, "lab", "long", t0, job_type="train", config=codec.encode({"lr": 0.1})),
                RunStart(
                    hostile_id,
                    "lab",
                    HOSTILE_NAME,
                    t0 + 10,
                    job_type="train",
                    config=codec.encode({HOSTILE_KEY: "<script>window.__pwned=2</script>", "lr": 0.2}),
                ),
                RunStart(other_id, "elsewhere", "other", t0, job_type="train"),
            ],
            points=[
                Points(
                    "lab",
                    long_id,
                    ["loss"] * steps.size + ["eval/acc"] * 3,
                    [*steps.tolist(), 0, 2500, 5000],
                    [*(t0 + steps * 0.5).tolist(), t0, t0 + 1250, t0 + 2500],
                    [*loss.tolist(), 0.5, 0.8, 0.9],
                    long_id,
                ),
                Points(
                    "lab",
                    hostile_id,
                    ["loss"] * 3,
                    [0, 1, 2],
                    [t0 + 10, t0 + 11, t0 + 12],
                    [1.0, 0.7, 0.5],
                    hostile_id,
                ),
            ],
        )
    )
    store.write(Batch(run_updates=[RunUpdate(long_id, status="finished", ended_at=t0 + 2600)]))
    info = {"long": long_id, "hostile": hostile_id, "other": other_id, "steps": steps, "loss": loss, "t0": t0}
    try:
        with Server(store) as server:
            yield server.url, store, info
    finally:
        store.close()


def test_a_long_series_is_the_bucket_means_of_its_steps(own):
    url, _, info = own
    data = _get(url, project="lab", ids=info["long"]).json()
    keys = {k["key"]: k["runs"][0] for k in data["keys"]}
    s = keys["loss"]
    width = int(np.ceil(5003 / MAX_POINTS))  # 6 steps per point
    assert (s["points"], s["width"]) == (5003, width)
    assert len(s["v"]) == len(s["step"]) <= MAX_POINTS
    steps, loss = info["steps"], info["loss"]
    k = steps // width
    assert s["step"] == [int(steps[k == b][0]) for b in np.unique(k)]
    assert s["t"] == pytest.approx([info["t0"] + 0.5 * int(steps[k == b][0]) for b in np.unique(k)])
    assert s["v"] == pytest.approx([float(np.nanmean(loss[k == b])) for b in np.unique(k)])
    assert s["min"] == pytest.approx([float(np.nanmin(loss[k == b])) for b in np.unique(k)])
    assert s["max"] == pytest.approx([float(np.nanmax(loss[k == b])) for b in np.unique(k)])
    # a short key of the same run is read whole
    assert (keys["eval/acc"]["step"], keys["eval/acc"]["v"], keys["eval/acc"]["width"]) == (
        [0, 2500, 5000],
        [0.5, 0.8, 0.9],
        1,
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"ids": ",".join(f"r{i}" for i in range(MAX_COMPARED + 1))}, f"at most {MAX_COMPARED}"),
        ({"ids": "no-such-run"}, "no run with id 'no-such-run'"),
        ({"project": ""}, "non-empty"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(own, params, message):
    url, _, _ = own
    r = _get(url, **params)
    assert r.status_code == 422, r.text
    (detail,) = r.json()["detail"]
    assert detail["field"] in ("query.ids", "query.project") and message in detail["message"]


def test_a_run_of_another_project_is_refused_by_name(own):
    url, _, info = own
    r = _get(url, project="lab", ids=f"{info['long']},{info['other']}")
    assert r.status_code == 422
    (detail,) = r.json()["detail"]
    assert detail["field"] == "query.ids" and "'elsewhere'" in detail["message"]


def test_runs_page_overlays_the_selected_runs_and_highlights_differences(dashboard, browser, ready, tmp_path):
    ids = _training(dashboard)
    browser.get(dashboard.page(f"/runs?project=payments&ids={','.join(ids)}"))
    ready(browser)
    data = _get(dashboard.url, project="payments", ids=",".join(ids)).json()
    checked = browser.execute_script(
        "return [...document.querySelectorAll('table.runs-table input[type=checkbox]:checked')]"
        ".map(b => b.dataset.run)"
    )
    assert sorted(checked) == sorted(ids)
    charts = browser.execute_script(
        "return [...document.querySelectorAll('.chart[data-key]')].map(d => ({key: d.dataset.key,"
        " traces: d.data.map(t => ({name: t.name, x: t.x, y: t.y}))}))"
    )
    assert [c["key"] for c in charts] == [k["key"] for k in data["keys"]]
    names = {r["id"]: r["name"] for r in data["selected"]}
    for c in charts:
        assert [t["name"] for t in c["traces"]] == [names[i] for i in ids]
        for t, run_id in zip(c["traces"], ids, strict=True):
            h = dashboard.store.signals.history(run_id, c["key"])
            assert t["x"] == h.step.tolist()
            assert t["y"] == pytest.approx(h.value.tolist())
    groups = browser.execute_script(
        "return [...document.querySelectorAll('h2[data-group]')].map(h => h.dataset.group)"
    )
    assert groups == ["train", "val", ""]
    diff_rows = browser.execute_script(
        "return [...document.querySelectorAll('table[data-table=config] tr.diff')].map(r => r.dataset.key)"
    )
    assert sorted(diff_rows) == ["learning_rate", "max_depth", "n_estimators"]
    same_rows = browser.execute_script(
        "return [...document.querySelectorAll('table[data-table=config] tbody tr:not(.diff)')]"
        ".map(r => r.dataset.key)"
    )
    assert sorted(same_rows) == ["class_weight", "features", "model"]
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
    save_screenshot(browser, "runs_training", tmp_path)
    # x = wall time: the same points on a date axis
    browser.execute_script(
        "const s = document.querySelector('select[data-x]'); s.value = 'time';"
        " s.dispatchEvent(new Event('change'))"
    )
    ready(browser)
    assert "x=time" in browser.current_url
    axis, x0 = browser.execute_script(
        "const d = document.querySelector('.chart[data-key=\"train/loss\"]');"
        " return [d.layout.xaxis.type, d.data[0].x[0]]"
    )
    assert axis == "date" and x0 == pytest.approx(
        dashboard.store.signals.history(ids[0], "train/loss").t[0] * 1000
    )
    # unticking a run takes it out of the address
    browser.execute_script(f"document.querySelector('input[data-run=\"{ids[1]}\"]').click()")
    ready(browser)
    assert f"ids={ids[0]}" in browser.current_url and ids[1] not in browser.current_url


def test_runs_page_shows_user_text_as_text(own, browser, ready, tmp_path):
    url, _, info = own
    browser.get(f"{url}/#/runs?project=lab&ids={info['long']},{info['hostile']}")
    ready(browser)
    names = browser.execute_script(
        "return [...document.querySelectorAll('table.runs-table .run-name')].map(e => e.textContent)"
    )
    assert HOSTILE_NAME in names
    keys = browser.execute_script(
        "return [...document.querySelectorAll('table[data-table=config] tbody tr')].map(r => r.dataset.key)"
    )
    assert HOSTILE_KEY in keys
    cell = browser.execute_script(
        "return [...document.querySelectorAll('table[data-table=config] tbody tr')]"
        f".find(r => r.dataset.key === {HOSTILE_KEY!r}).lastElementChild.textContent"
    )
    assert cell == "<script>window.__pwned=2</script>"
    assert (
        browser.execute_script("return document.querySelectorAll('#page img, #page b, #page i').length") == 0
    )
    assert browser.execute_script("return window.__pwned === undefined")
    # the long series' chart: at most MAX_POINTS points, the bucket means
    n = browser.execute_script("return document.querySelector('.chart[data-key=\"loss\"]').data[0].y.length")
    assert n == int(np.ceil(5003 / int(np.ceil(5003 / MAX_POINTS))))
    # both config rows differ (lr 0.1 against 0.2; the hostile key is on one run only)
    diff_rows = browser.execute_script(
        "return [...document.querySelectorAll('table[data-table=config] tr.diff')].map(r => r.dataset.key)"
    )
    assert sorted(diff_rows) == sorted([HOSTILE_KEY, "lr"])
    errors = [e for e in console_errors(browser) or [] if "favicon" not in e]
    assert errors == []
    save_screenshot(browser, "runs_hostile_text", tmp_path)
