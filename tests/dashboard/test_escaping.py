"""Everything a user logged is shown as text on every page: a deployment whose feature names, error texts,
run name, config and alert labels carry HTML and script payloads is browsed page by page in a real
browser; no payload runs (no dialog, no marker set by a script) and the payloads appear literally."""

from __future__ import annotations

import runpy
import time
import uuid
from pathlib import Path

import pytest

from watchkeeper.simulate import Scenario, simulate
from watchkeeper.store import Store, codec
from watchkeeper.store.batch import Batch, Points, RunStart, SampleRows

_browser = runpy.run_path(str(Path(__file__).parents[1] / "browser.py"))
browser, save_screenshot = _browser["browser"], _browser["save_screenshot"]
_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))
Server = _servers["Server"]

SCRIPT = "<script>window.__xss = 'script'</script>"
IMG = "<img src=x onerror=\"window.__xss = 'img'\">"
BOLD = "<b>bold</b>&amp;"
RULES = """
rules:
  - name: HostileDrift
    expr: drift_detected == 1
    for: 0s
    annotations: {summary: "<img src=x onerror=\\"window.__xss = 'summary'\\">"}
"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    rules = tmp / "rules.yaml"
    rules.write_text(RULES)
    end = (time.time() // 60) * 60
    store = Store(f"sqlite:///{tmp / 'wk.db'}")
    sc = Scenario(
        start=end - 1200,
        end=end,
        features=2,
        extra_features=(SCRIPT, IMG),
        drift_at=0.3,
        incident=(0.0, 0.0),
        label_delay=(60.0, 120.0),
    )
    sim = simulate(store, sc, rules=[rules], eval_every=120.0)
    run_id = uuid.uuid4().hex
    store.write(
        Batch(
            runs=[
                RunStart(
                    run_id,
                    "payments",
                    f"run {SCRIPT}",
                    end - 600,
                    job_type="train",
                    config=codec.encode({IMG: BOLD, "lr": SCRIPT}),
                    model="fraud-clf",
                    version="1",
                )
            ],
            points=[
                Points(
                    "payments",
                    run_id,
                    [f"loss/{BOLD}"] * 3,
                    [0, 1, 2],
                    [end - 600, end - 590, end - 580],
                    [1.0, 0.5, 0.25],
                    run_id,
                )
            ],
            samples=[
                SampleRows(
                    "payments",
                    "samples/predict",
                    end - 120,
                    [
                        {
                            "t": end - 100,
                            "id": IMG,
                            "latency_ms": 12.0,
                            "status": SCRIPT,
                            "error": f"failed: {SCRIPT} {IMG}",
                            "inputs": {IMG: SCRIPT},
                            "outputs": None,
                            "stages": None,
                        }
                    ],
                    sim.serving_runs["1"],
                )
            ],
        )
    )
    try:
        with Server(store) as server:
            yield server.url, sim, run_id
    finally:
        store.close()


def test_payloads_are_shown_as_text_on_every_page(hostile, browser, ready, tmp_path):
    from selenium.webdriver.common.by import By

    url, sim, run_id = hostile
    base = "/p/payments/m/fraud-clf"
    pages = {
        "home": "/",
        "overview": f"{base}/v/1/overview",
        "drift": f"{base}/v/1/drift",
        "drift-feature": f"{base}/v/1/drift?feature={IMG}",
        "predictions": f"{base}/v/1/predictions",
        "samples": f"{base}/v/1/samples",
        "compare": f"{base}/compare?a=1&b=2",
        "runs": f"/runs?project=payments&ids={run_id},{sim.training_runs['1']}",
        "alerts": "/alerts?project=payments",
    }
    seen = ""
    for name, fragment in pages.items():
        browser.get(f"{url}/#{fragment}")
        ready(browser)
        time.sleep(0.3)  # let charts draw their labels
        assert browser.execute_script("return window.__xss === undefined"), name
        text = browser.find_element(By.TAG_NAME, "body").text
        seen += text
        assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img[src=x], main b"), name
        save_screenshot(browser, f"escaping-{name}", tmp_path)
    # the payloads were shown literally somewhere: feature names, the error text, the run name and config
    for payload in (SCRIPT, IMG, BOLD):
        assert payload in seen, payload
