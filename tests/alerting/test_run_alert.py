"""``run.alert(title, text, level, wait_duration)``: wandb's semantics (throttled per title), delivered by
the alert engine through the rule files' routes."""

from __future__ import annotations

import datetime as dt

import pytest

import watchkeeper as wk
from watchkeeper.alerting.engine import AlertEngine

ROUTES = """
notifiers:
  - {name: rec, type: webhook, url: "http://127.0.0.1:9/unused"}
  - {name: pager, type: webhook, url: "http://127.0.0.1:9/unused"}
route:
  notifiers: [rec]
  routes:
    - {match: {severity: critical}, notifiers: [pager], continue: true}
rules: []
"""


class Recorder:
    def __init__(self, name):
        self.name = name
        self.got = []

    def notify(self, n):
        self.got.append(n)


def test_run_alerts_are_throttled_per_title_and_routed_by_level(tmp_path, store_uri):
    run = wk.init(project="p", name="train-7", uri=store_uri, system_metrics=False)
    run.alert("loss is NaN", "step 1200: loss became NaN", level=wk.AlertLevel.ERROR)
    run.alert("loss is NaN", "again", level="ERROR")  # within 60 s: dropped
    run.alert("epoch done", "epoch 1", wait_duration=0)
    run.alert("epoch done", "epoch 2", wait_duration=dt.timedelta(0))
    with pytest.raises(ValueError, match="level must be INFO, WARN or ERROR"):
        run.alert("x", "y", level="LOUD")
    with pytest.raises(ValueError, match="title must be a non-empty str"):
        run.alert("", "y")
    run.finish()

    rec, pager = Recorder("rec"), Recorder("pager")
    store = wk.Store(store_uri)
    try:
        (tmp_path / "routes.yml").write_text(ROUTES)
        eng = AlertEngine(store, notifiers={"rec": rec, "pager": pager})
        assert eng.load(tmp_path / "routes.yml") == {}
        eng.evaluate()
        eng.flush(5)
        texts = sorted(a.annotations["description"] for n in rec.got for a in n.alerts)
        assert texts == ["epoch 1", "epoch 2"]
        (page,) = pager.got
        (alert,) = page.alerts
        assert dict(alert.labels) == {
            "alertname": "loss is NaN", "severity": "critical", "project": "p", "run": run.id,
        }  # fmt: skip
        assert alert.annotations["run_name"] == "train-7"
        # a second evaluation, or a restarted engine, does not send them again
        eng.evaluate()
        eng.close()
        eng2 = AlertEngine(store, notifiers={"rec": rec, "pager": pager})
        eng2.load(tmp_path / "routes.yml")
        eng2.evaluate()
        eng2.flush(5)
        assert (len(rec.got), len(pager.got)) == (2, 1)
        eng2.close()
    finally:
        store.close()
