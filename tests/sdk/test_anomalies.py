"""``run.watch_anomalies``: a KPI stream scored window by window online gives exactly the batch scores, late
rows are dropped and counted (never moved), and scored windows become signals that alert rules read."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

import watchkeeper as wk
from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.anomaly import PCADetector, Windows
from watchkeeper.sdk.anomalies import AnomalyWatch

RULES = """
notifiers:
  - {name: rec, type: webhook, url: "http://127.0.0.1:9/unused"}
route: {notifiers: [rec], group_by: [alertname, entity]}
rules:
  - name: KpiAnomaly
    expr: max_over_time(anomaly{detector="kpi"}[1h]) > 0
    severity: warning
    annotations: {summary: "anomaly on {{ $labels.entity }}"}
"""


class Recorder:
    name = "rec"

    def __init__(self):
        self.got = []

    def notify(self, n):
        self.got.append(n)


def _kpis(start: float, hours: float = 3.0, seed: int = 0) -> pd.DataFrame:
    """Three devices every 10 s; r3 appears an hour in; r2 has a latency incident in the last 20 min."""
    rng = np.random.default_rng(seed)
    frames = []
    n = int(hours * 360)
    for dev, offset in (("r1", 0), ("r2", 0), ("r3", 360)):
        t = start + 10.0 * np.arange(offset, n)
        lat = 20 + 2 * rng.standard_normal(len(t))
        thr = 500 + 30 * rng.standard_normal(len(t))
        if dev == "r2":
            bad = t >= start + hours * 3600 - 1200
            lat[bad] += 60
            thr[bad] -= 300
        frames.append(pd.DataFrame({"ts": t, "device": dev, "latency": lat, "throughput": thr}))
    return pd.concat(frames).sort_values("ts", kind="stable").reset_index(drop=True)


def _fitted(windows: Windows, kpis: pd.DataFrame) -> PCADetector:
    feats = windows.transform(kpis.iloc[: len(kpis) // 2], by="device")
    det = PCADetector(n_components=2).fit(feats)
    # twice the largest score of the normal half: normal windows stay below it, the incident (+30 sd) not
    det.threshold = 2 * det.calibrate(feats, percentile=100).threshold
    return det


@pytest.mark.parametrize("step", [None, "5min"])
def test_streamed_windows_score_exactly_as_the_batch(step):
    windows = Windows("10min", step=step, stats=["mean", "std", "max"], time="ts")
    kpis = _kpis(1_700_000_000.0)
    det = _fitted(windows, kpis)
    aw = AnomalyWatch(det, windows, by="device")
    rng = np.random.default_rng(1)
    cuts = np.sort(rng.choice(np.arange(1, len(kpis)), size=40, replace=False))
    got = [aw.flush()]
    for a, b in zip(np.r_[0, cuts], np.r_[cuts, len(kpis)], strict=True):
        aw.log(kpis.iloc[a:b])
        got.append(aw.flush())
    got.append(aw.flush(final=True))
    online = pd.concat([g for g in got if len(g)], ignore_index=True)
    batch_feats = windows.transform(kpis, by="device")
    want = pd.Series(det.score(batch_feats), index=batch_feats.index)
    online_idx = pd.MultiIndex.from_arrays([online["device"], online["window_start"]])
    assert online_idx.is_unique  # each window scored once
    assert len(online) == len(want)
    np.testing.assert_allclose(online["score"].to_numpy(), want.loc[online_idx].to_numpy(), rtol=1e-9)
    # the incident on r2 is found, nothing on r1
    flagged = online[online["anomaly"]]
    assert set(flagged["device"]) == {"r2"}
    assert aw.late_rows == 0


def test_late_rows_are_dropped_and_counted_not_moved():
    windows = Windows("10min", stats=["mean", "max"], time="ts")
    kpis = _kpis(1_700_000_000.0, hours=1.0)
    det = _fitted(windows, kpis)
    aw = AnomalyWatch(det, windows, by="device")
    aw.log(kpis.iloc[:-100])
    first = aw.flush()
    late = kpis.iloc[:5].copy()  # rows of windows already scored
    aw.log(pd.concat([late, kpis.iloc[-100:]]))
    second = aw.flush(final=True)
    assert aw.late_rows == 5
    both = pd.concat([first, second])
    assert not both.duplicated(["device", "window_start"]).any()
    batch = det.score(windows.transform(kpis, by="device"))
    np.testing.assert_allclose(np.sort(both["score"].to_numpy()), np.sort(batch), rtol=1e-9)


def test_bad_rows_are_refused_at_log_with_the_missing_column_named():
    windows = Windows("10min", stats=["mean", "max"], time="ts")
    det = _fitted(windows, _kpis(1_700_000_000.0, hours=1.0))
    aw = AnomalyWatch(det, windows, by="device")
    with pytest.raises(ValueError, match=r"lack column\(s\) \['device'\]"):
        aw.log({"ts": 1.0, "latency": 3.0})
    with pytest.raises(ValueError, match="not fitted"):
        AnomalyWatch(PCADetector(), windows)


def test_scored_windows_become_signals_and_alerts(store_uri, tmp_path):
    rec = Recorder()
    windows = Windows("10min", stats=["mean", "std", "max"], time="ts")
    end = time.time() // 600 * 600
    kpis = _kpis(end - 3 * 3600)
    det = _fitted(windows, kpis)
    run = wk.init(project="net", name="kpi-watch", uri=store_uri, system_metrics=False)
    aw = run.watch_anomalies(det, windows, by="device", name="kpi")
    for a in range(0, len(kpis), 500):
        aw.log(kpis.iloc[a : a + 500])
    run.finish()
    n_windows = len(windows.transform(kpis, by="device"))
    store = wk.Store(store_uri)
    try:
        scores = {
            s.labels["entity"]: (s.labels, store.signals.points_in(s.id).value)
            for s in store.signals.series("net", subject=run.id, name="anomaly_score")
        }
        flags = {
            s.labels["entity"]: store.signals.points_in(s.id).value
            for s in store.signals.series("net", subject=run.id, name="anomaly")
        }
        sent = [a.title for a in store.alerts.run_alerts(0)]
        # a rule over the signal fires for r2 only (the alert engine reads what the run wrote)
        (tmp_path / "rules.yml").write_text(RULES)
        eng = AlertEngine(store, notifiers={"rec": rec})
        assert eng.load(tmp_path / "rules.yml") == {}
        eng.evaluate()
        eng.flush(5)
        firing = sorted(
            a.labels["entity"] for n in rec.got for a in n.alerts if a.labels["alertname"] == "KpiAnomaly"
        )
        eng.close()
    finally:
        store.close()
    assert set(scores) == {"r1", "r2", "r3"}
    assert sum(len(v) for _, v in scores.values()) == n_windows
    assert all(labels["detector"] == "kpi" for labels, _ in scores.values())
    assert {e for e, v in flags.items() if np.nansum(v) > 0} == {"r2"}
    assert sent == ["kpi: anomaly on r2"]  # run.alert, once per entity per alert_wait
    assert firing == ["r2"]


def test_rows_that_are_already_features_are_scored_as_they_come():
    windows = Windows("10min", stats=["mean", "max"], time="ts")
    kpis = _kpis(1_700_000_000.0, hours=2.0)
    det = _fitted(windows, kpis)
    feats = windows.transform(kpis, by="device").reset_index()  # a pipeline that windows upstream
    feats["ts"] = feats.pop("window_start")
    aw = AnomalyWatch(det, None, by="device", time="ts")
    half = len(feats) // 2
    aw.log(feats.iloc[:half])
    first = aw.flush()
    aw.log(feats.iloc[half:].to_dict("records"))  # a list of row dicts, older rows of other devices too
    second = aw.flush(final=True)
    assert aw.late_rows == 0  # nothing waits for a window: every row is scored, in any order
    got = pd.concat([first, second], ignore_index=True)
    assert list(got["device"]) == list(feats["device"])
    np.testing.assert_allclose(got["score"].to_numpy(), det.score(feats[det.columns]), rtol=1e-12)


class _GatedDetector:
    """A fitted detector whose scoring waits for the test (or fails once), to see what log() waits for."""

    def __init__(self, inner, fail_first=False):
        self.inner, self.columns, self.threshold, self.name = inner, inner.columns, inner.threshold, "gated"
        self.started, self.release = threading.Event(), threading.Event()
        self.fail_first = fail_first

    def score(self, X):
        if self.fail_first:
            self.fail_first = False
            raise RuntimeError("a broken model")
        self.started.set()
        assert self.release.wait(10), "the test never released the scorer"
        return self.inner.score(X)


def test_log_never_waits_for_a_scoring_pass_in_progress():
    windows = Windows("10min", stats=["mean", "max"], time="ts")
    kpis = _kpis(1_700_000_000.0, hours=1.0)
    det = _GatedDetector(_fitted(windows, kpis))
    aw = AnomalyWatch(det, windows, by="device")
    aw.log(kpis.iloc[:-50])
    worker = threading.Thread(target=aw.drain)
    worker.start()
    assert det.started.wait(10)  # the writer is inside the detector now
    aw.log(kpis.iloc[-50:])  # returns while the scorer is still held
    assert not det.release.is_set() and worker.is_alive()
    det.release.set()
    worker.join(10)
    assert not worker.is_alive()
    aw.drain(final=True)
    assert aw.scored_windows == len(windows.transform(kpis, by="device"))


def test_a_failing_pass_drops_its_rows_and_the_next_one_scores(caplog):
    windows = Windows("10min", stats=["mean", "max"], time="ts")
    kpis = _kpis(1_700_000_000.0, hours=1.0)
    det = _GatedDetector(_fitted(windows, kpis), fail_first=True)
    det.release.set()
    aw = AnomalyWatch(det, windows, by="device")
    cut = np.ceil((1_700_000_000.0 + 1800) / 600) * 600  # a window boundary about 30 minutes in
    aw.log(kpis[kpis["ts"] < cut])
    assert aw.drain(final=True) == []
    assert "anomaly scoring of 'gated' failed" in caplog.text
    later = kpis[kpis["ts"] >= cut]
    aw.log(later)
    points = aw.drain(final=True)
    scored = sum(len(p.value) // 2 for p in points if p.name[0] == "anomaly_score")  # score + flag each
    assert aw.late_rows == 0
    assert scored == aw.scored_windows == len(windows.transform(later, by="device"))
