"""From stored windows to a signed webhook: two replicas' windows of a deployment whose latency and one
feature went bad are monitored by ``watchkeeper monitor --once``, the rules fire, and a real HTTP receiver
gets one notification per group, whose signature verifies."""

from __future__ import annotations

import json
import runpy
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from watchkeeper.alerting.notifiers import verify_signature
from watchkeeper.cli import app
from watchkeeper.profile import Profile, Traffic, profile
from watchkeeper.store import Store
from watchkeeper.store.batch import Batch, ProfileLog

SECRET = "s3cret"


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Sink = _servers["WebhookSink"]


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def _window(rng, start: float, latency_s: float, amount_mean: float, n: int = 400) -> ProfileLog:
    t = Traffic()
    t.endpoint("predict").update(rng.normal(latency_s, latency_s / 10, n).clip(1e-4), [None] * n)
    p = profile({"amount": rng.normal(amount_mean, 10.0, n), "age": rng.normal(40.0, 5.0, n)})
    p = Profile(p.columns, rows=n, traffic=t, roles={"amount": "input", "age": "input"})
    return ProfileLog(
        "shop", "model:fraud-clf@1", "window", start, start + 60.0, n, p.to_bytes(), p.format_version
    )


def test_bad_windows_become_signals_then_one_signed_notification_per_group(tmp_path, store_uri, sink):
    rng = np.random.default_rng(7)
    ref = profile({"amount": rng.normal(100.0, 10.0, 5000), "age": rng.normal(40.0, 5.0, 5000)})
    start = (time.time() // 60) * 60 - 180.0  # a window closed long enough ago to have settled
    store = Store(store_uri)
    try:
        store.write(
            Batch(
                profiles=[
                    ProfileLog(
                        "shop",
                        "model:fraud-clf@1",
                        "reference",
                        0.0,
                        0.0,
                        ref.rows,
                        ref.to_bytes(),
                        ref.format_version,
                        reference=("fraud-clf", "1", "train"),
                    ),
                    _window(rng, start, 0.8, 130.0),  # replica 1: slow, amount shifted by 3 sd
                    _window(rng, start, 0.8, 130.0),  # replica 2
                ]
            )
        )
    finally:
        store.close()
    rules = tmp_path / "alerts.yml"
    rules.write_text(
        f"""
notifiers:
  - {{name: hook, type: webhook, url: "{sink.url}", secret: {SECRET}}}
route:
  notifiers: [hook]
  group_by: [alertname, model]
rules:
  - name: HighP99Latency
    expr: latency_p99_ms{{model="fraud-clf", endpoint=""}} > 500
    annotations: {{summary: "p99 {{{{ $value | printf \\"%.0f\\" }}}} ms"}}
  - name: FeatureDrift
    expr: drift_detected{{model="fraud-clf"}} == 1
  - name: LowTraffic
    expr: request_rate{{model="fraud-clf", endpoint=""}} < 1
"""
    )
    out = CliRunner().invoke(
        app, ["monitor", "--once", "--settle", "0", "--rules", str(rules), "--uri", store_uri]
    )
    assert out.exit_code == 0, out.output
    assert "1 window(s) monitored" in out.output

    bodies = {}
    for headers, body in sink.requests:
        assert verify_signature(
            SECRET, headers["X-Watchkeeper-Timestamp"], body, headers["X-Watchkeeper-Signature"]
        )
        doc = json.loads(body)
        bodies[doc["groupLabels"]["alertname"]] = doc
    assert set(bodies) == {"HighP99Latency", "FeatureDrift"}  # 800 replica requests / 60 s is not < 1
    (slow,) = bodies["HighP99Latency"]["alerts"]
    assert slow["labels"]["model"] == "fraud-clf" and slow["status"] == "firing"
    assert 800 < float(slow["annotations"]["summary"].split()[1]) < 1300
    drifted = bodies["FeatureDrift"]["alerts"]
    assert [a["labels"]["feature"] for a in drifted] == ["amount"]  # age did not move

    # the signals are stored like any other: the merged window's request rate is exact
    store = Store(store_uri)
    try:
        (rate,) = [s for s in store.signals.series("shop", name="request_rate") if "endpoint" not in s.labels]
        assert store.signals.points_in(rate.id).value.tolist() == [800 / 60.0]
    finally:
        store.close()
