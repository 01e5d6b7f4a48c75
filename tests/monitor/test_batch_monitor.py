"""Batch monitoring (``watchkeeper.monitor.batch``) over a real SQLite store (the replacement test on
PostgreSQL too): a day of logged predictions with one drifted hour and labels for some rows becomes the
local engine's window profiles, drift that scipy confirms, accuracy that numpy confirms, and one
notification; ``for:`` behaves as live; a changed partition replaces the earlier run; a failed run finishes
when run again; live alerts of another deployment and other processes' rules are left alone. Also the
pieces: ``MonitorRunner.process_windows``, ``AlertEngine.evaluate(only=...)`` and the evaluation grid."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from scipy import stats

from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.alerting.rules import load_rules
from watchkeeper.alerting.source import MemorySource
from watchkeeper.monitor import cost
from watchkeeper.monitor.base import Derived
from watchkeeper.monitor.batch import (
    BatchInputError,
    default_outputs,
    evaluation_times,
    monitor_batch,
)
from watchkeeper.monitor.runner import MonitorRunner, WindowKey
from watchkeeper.profile import Profile, Traffic, profile
from watchkeeper.profile.batch import profile_files
from watchkeeper.store import Batch, Points, ProfileLog, Store
from watchkeeper.store.schema import alert_rules, labels, metadata, predictions, profiles

T0 = 1_709_251_200.0  # 2024-03-01 00:00 UTC
HOUR = 3600.0
SUBJECT = "model:clf@1"


class Recorder:
    name = "rec"

    def __init__(self) -> None:
        self.got: list = []
        self.lock = threading.Lock()

    def notify(self, notification) -> None:
        with self.lock:
            self.got.append(notification)


def make_day(
    directory: Path, *, hours: int = 24, per_hour: int = 300, drift_hour: int = 13, seed: int = 5, shift=2.5
) -> SimpleNamespace:
    """Logged predictions of ``hours`` hours from T0, ``x`` shifted by ``shift`` sd in ``drift_hour``, 60%
    of rows labelled; written as two Parquet files."""
    rng = np.random.default_rng(seed)
    n = hours * per_hour
    us = np.sort(np.round((T0 + rng.uniform(0, hours * HOUR, n)) * 1e6).astype(np.int64))
    t = us / 1e6  # what the reader computes from the microseconds
    hour = np.floor((t - T0) / HOUR).astype(int)
    x = rng.normal(0.0, 1.0, n)
    x[hour == drift_hour] += shift
    z = rng.normal(5.0, 2.0, n)
    score = 1.0 / (1.0 + np.exp(-2.0 * x))
    pred = (score >= 0.5).astype(np.int64)
    y = ((x + rng.normal(0.0, 0.8, n)) > 0).astype(np.int64)
    known = rng.random(n) < 0.6
    ids = np.array([f"{seed}-{i}" for i in range(n)])
    write_day(directory, us, ids, x, z, pred, score, y, known)
    return SimpleNamespace(t=t, hour=hour, ids=ids, x=x, z=z, pred=pred, score=score, y=y, known=known, n=n)


def write_day(directory: Path, us, ids, x, z, pred, score, y, known) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for f in directory.glob("*.parquet"):
        f.unlink()
    table = pa.table(
        {
            "ts": pa.array(us, pa.timestamp("us", tz="UTC")),
            "id": pa.array(ids),
            "x": x,
            "z": z,
            "prediction": pred,
            "score": score,
            "y": pa.array(y, mask=~known),
        }
    )
    half = len(us) // 2
    pq.write_table(table.slice(0, half), directory / "part-0.parquet")
    pq.write_table(table.slice(half), directory / "part-1.parquet")


def store_reference(store: Store, seed: int = 11, model: str = "clf", version: str = "1") -> np.ndarray:
    rng = np.random.default_rng(seed)
    ref_x = rng.normal(0.0, 1.0, 5000)
    ref = profile({"x": ref_x, "z": rng.normal(5.0, 2.0, 5000), "y": rng.integers(0, 2, 5000)})
    store.write(
        Batch(
            profiles=[
                ProfileLog(
                    "default",
                    f"model:{model}@{version}",
                    "reference",
                    0.0,
                    0.0,
                    ref.rows,
                    ref.to_bytes(),
                    ref.format_version,
                    reference=(model, version, "train"),
                )
            ]
        )
    )
    return ref_x


RULES = """
notifiers:
  - {{name: rec, type: webhook, url: "http://127.0.0.1:9/unused"}}
route:
  notifiers: [rec]
  group_by: [alertname, model]
rules:
{rules}
"""
DRIFT = """  - name: InputDrift
    expr: drift_score{feature="x"} > 0.2"""


def rules_file(path: Path, rules: str = DRIFT) -> Path:
    path.write_text(RULES.format(rules=rules))
    return path


def series_points(store: Store, name: str, subject: str = SUBJECT, **labels_: str) -> dict[float, float]:
    found = [s for s in store.signals.series("default", subject=subject, name=name) if s.labels == labels_]
    if not found:
        return {}
    (info,) = found
    data = store.signals.points_in(info.id)
    assert len(set(data.t.tolist())) == len(data.t), f"{name} {labels_}: two points at one time"
    return dict(zip(data.t.tolist(), data.value.tolist(), strict=True))


def counts(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {
            t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in metadata.sorted_tables
        }


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """One day monitored once, shared by the tests that only read what it wrote."""
    d = tmp_path_factory.mktemp("batch")
    data = make_day(d / "part")
    store = Store(f"sqlite:///{d}/store/wk.db", artifact_root=d / "artifacts")
    ref_x = store_reference(store)
    rec = Recorder()
    rules = rules_file(d / "rules.yml")
    seen = []
    result = monitor_batch(
        store,
        d / "part",
        model="clf",
        version="1",
        time_column="ts",
        id_column="id",
        label_column="y",
        rule_files=[rules],
        notifiers={"rec": rec},
        eval_interval=300.0,
        progress=lambda stage, done, total: seen.append(stage),
    )
    yield SimpleNamespace(
        dir=d, data=data, store=store, ref_x=ref_x, rec=rec, rules=rules, result=result, stages=seen
    )
    store.close()


def test_default_outputs_are_named_like_outputs_and_never_the_ground_truth():
    cols = ["x", "prediction", "Score", "credit_score", "pred_label", "label", "y", "probability_fraud"]
    assert default_outputs(cols) == ["prediction", "Score", "pred_label", "probability_fraud"]


def test_windows_are_the_local_engines_profiles_of_the_same_rows(day):
    r, data, store = day.result, day.data, day.store
    assert r.status == "monitored" and r.ok
    per_hour = np.bincount(data.hour, minlength=24)
    assert r.windows == 24 and r.rows == data.n == 7200 and r.untimed == 0
    assert r.window_rows == {T0 + h * HOUR: int(per_hour[h]) for h in range(24)}
    assert r.predictions == data.n and r.labels == int(data.known.sum())
    assert {"hashing", "profiling", "predictions", "monitoring", "alerting"} <= set(day.stages)

    local = profile_files(day.dir / "part", time="ts", window=HOUR, columns=["x", "z", "prediction", "score"])
    stored = store.profiles.windows("default", SUBJECT)
    assert [w.window_start for w in stored] == [T0 + h * HOUR for h in range(24)]
    roles = {"x": "input", "z": "input", "prediction": "output", "score": "output"}
    for w in stored:
        assert w.window_end == w.window_start + HOUR and w.run_id == r.run_id
        assert w.rows == per_hour[int((w.window_start - T0) // HOUR)]
        mine = local.windows[w.window_start]
        assert Profile.from_bytes(w.data) == Profile(mine.columns, rows=mine.rows, roles=roles)

    run = store.runs.get(r.run_id)
    assert run.job_type == "batch-monitor" and run.status == "finished"
    assert (run.model, run.version) == ("clf", "1")
    files = sorted((day.dir / "part").glob("*.parquet"))
    assert run.config["files"] == [
        {"path": f.name, "sha256": hashlib.sha256(f.read_bytes()).hexdigest(), "size": f.stat().st_size}
        for f in files
    ]
    assert run.config["window"] == HOUR and run.config["outputs"] == ["prediction", "score"]


def test_drift_is_high_in_the_drifted_hour_only_and_agrees_with_scipy(day):
    data = day.data
    drift_x = series_points(day.store, "drift_score", feature="x")
    drift_z = series_points(day.store, "drift_score", feature="z")
    assert sorted(drift_x) == [T0 + (h + 1) * HOUR for h in range(24)]
    for h in range(24):
        rows = data.hour == h
        exact = stats.ks_2samp(day.ref_x, data.x[rows]).statistic
        got = drift_x[T0 + (h + 1) * HOUR]
        assert abs(got - exact) < 0.03, (h, got, exact)  # within the quantile sketches' rank error
        if h == 13:
            assert got > 0.6
        else:
            assert got < 0.15
        assert drift_z[T0 + (h + 1) * HOUR] < 0.15
    detected = series_points(day.store, "drift_detected", feature="x")
    assert [t for t, v in detected.items() if v == 1.0] == [T0 + 14 * HOUR]


def test_performance_and_prediction_signals_equal_numpy_per_window(day):
    data = day.data
    accuracy = series_points(day.store, "accuracy")
    labelled = series_points(day.store, "labelled_rows")
    positive = series_points(day.store, "positive_rate", output="prediction")
    assert len(accuracy) == len(labelled) == len(positive) == 24
    for h in range(24):
        end = T0 + (h + 1) * HOUR
        rows = data.hour == h
        scored = rows & data.known
        assert labelled[end] == scored.sum()
        assert accuracy[end] == pytest.approx(np.mean(data.pred[scored] == data.y[scored]), abs=1e-12)
        assert positive[end] == pytest.approx(data.pred[rows].mean(), abs=1e-12)
    # the drifted hour predicts positive far more often: the prediction signal sees it too
    assert positive[T0 + 14 * HOUR] > 0.9 > 0.6 > positive[T0 + 13 * HOUR]


def test_the_rule_fires_once_for_the_drifted_window_and_resolves_as_live(day):
    fired = [n for n in day.rec.got if n.status == "firing"]
    resolved = [n for n in day.rec.got if n.status == "resolved"]
    assert len(fired) == 1 and len(resolved) == 1
    (alert,) = fired[0].alerts
    assert (
        alert.labels["feature"] == "x" and alert.labels["model"] == "clf" and alert.labels["version"] == "1"
    )
    assert fired[0].t == T0 + 14 * HOUR
    assert alert.value == pytest.approx(series_points(day.store, "drift_score", feature="x")[T0 + 14 * HOUR])
    # evaluated every 5 minutes: the point at 14:00 is in the 5-minute lookback at 14:05, not at 14:10
    moves = [(tr.old, tr.new, tr.t) for tr in day.result.transitions]
    assert moves == [("inactive", "firing", T0 + 14 * HOUR), ("firing", "resolved", T0 + 14 * HOUR + 600)]
    assert day.result.alerts_fired == 1 and day.result.notifications == 2
    logged = day.store.alerts.notifications()
    assert sorted(n.status for n in logged) == ["sent", "sent"]


def test_a_rerun_on_the_same_content_writes_nothing_and_notifies_nothing(day):
    before = counts(day.store)
    got = len(day.rec.got)
    again = monitor_batch(
        day.store,
        day.dir / "part",
        model="clf",
        version="1",
        time_column="ts",
        id_column="id",
        label_column="y",
        rule_files=[day.rules],
        notifiers={"rec": day.rec},
        eval_interval=300.0,
    )
    assert again.status == "already monitored" and again.run_id == day.result.run_id
    assert again.windows == 24 and again.rows == 7200 and again.points == 0 and again.notifications == 0
    assert counts(day.store) == before
    assert len(day.rec.got) == got


def test_a_run_whose_monitor_failed_is_finished_by_running_it_again(tmp_path, monkeypatch):
    data = make_day(tmp_path / "part", hours=2, per_hour=50)
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    kw = dict(model="clf", version="1", time_column="ts", id_column="id", label_column="y")

    def broken(ctx):
        raise RuntimeError("the cost monitor is broken")

    monkeypatch.setattr(cost, "derive", broken)
    r1 = monitor_batch(store, tmp_path / "part", **kw)
    assert r1.errors == 2 and not r1.ok and r1.predictions == data.n
    assert store.runs.get(r1.run_id).status == "failed"
    before = counts(store)
    monkeypatch.undo()
    r2 = monitor_batch(store, tmp_path / "part", **kw)
    assert r2.run_id == r1.run_id and r2.status == "monitored" and r2.ok
    assert (r2.windows, r2.predictions, r2.labels) == (2, 0, 0)  # read again, written once
    after = counts(store)
    for table in ("profiles", "predictions", "labels", "points", "series", "runs"):
        assert after[table] == before[table], table
    assert store.runs.get(r1.run_id).status == "finished"
    assert monitor_batch(store, tmp_path / "part", **kw).status == "already monitored"
    # forced, the stored windows go through the monitors again: their points are replaced, not doubled
    forced = monitor_batch(store, tmp_path / "part", force=True, **kw)
    assert forced.status == "monitored" and forced.points == r2.points > 0 and forced.windows == 2
    again = counts(store)
    for table in ("profiles", "predictions", "labels", "points", "series", "runs"):
        assert again[table] == after[table], table
    store.close()


def test_for_durations_behave_as_they_would_have_live(tmp_path):
    make_day(tmp_path / "part", hours=4, per_hour=200, drift_hour=1)
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    store_reference(store)
    rules = """  - name: Short
    expr: drift_score{feature="x"} > 0.2
    for: 3m
  - name: Long
    expr: drift_score{feature="x"} > 0.2
    for: 10m"""
    r = monitor_batch(
        store,
        tmp_path / "part",
        model="clf",
        version="1",
        time_column="ts",
        rule_files=[rules_file(tmp_path / "r.yml", rules)],
        notifiers={"rec": Recorder()},
        eval_interval=60.0,
    )
    store.close()
    moves = sorted((tr.rule, tr.t - T0 - 2 * HOUR, tr.old, tr.new) for tr in r.transitions)
    # the point at 02:00 is seen for 5 minutes: a 3-minute `for` fires, a 10-minute one never does
    assert moves == [
        ("Long", 0.0, "inactive", "pending"),
        ("Long", 360.0, "pending", "inactive"),
        ("Short", 0.0, "inactive", "pending"),
        ("Short", 180.0, "pending", "firing"),
        ("Short", 360.0, "firing", "resolved"),
    ]
    assert r.alerts_fired == 1


def test_a_changed_partition_replaces_the_earlier_run_and_its_old_content_comes_back(tmp_path, store_uri):
    part = tmp_path / "part"
    first = make_day(part, hours=6, per_hour=200, drift_hour=99, seed=1)
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    store_reference(store)
    kw = dict(model="clf", version="1", time_column="ts", id_column="id", label_column="y")
    r1 = monitor_batch(store, part, **kw)
    assert r1.windows == 6 and r1.predictions == first.n

    # the partition is rewritten: its last two hours are gone and hour 0 drifted
    keep = first.hour < 4
    x = np.where(first.hour == 0, first.x + 3.0, first.x)[keep]
    us = np.round(first.t[keep] * 1e6).astype(np.int64)
    write_day(
        part,
        us,
        first.ids[keep],
        x,
        first.z[keep],
        first.pred[keep],
        first.score[keep],
        first.y[keep],
        first.known[keep],
    )
    r2 = monitor_batch(store, part, **kw)
    assert r2.status == "monitored" and r2.run_id != r1.run_id and r2.replaced == [r1.run_id]
    stored = store.profiles.windows("default", SUBJECT)
    assert [(w.window_start, w.run_id) for w in stored] == [(T0 + h * HOUR, r2.run_id) for h in range(4)]
    assert [w.rows for w in stored] == np.bincount(first.hour[keep]).tolist()
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one() == keep.sum()
        n_labels = conn.execute(sa.select(sa.func.count()).select_from(labels)).scalar_one()
        assert n_labels == (first.known & keep).sum()
    drift = series_points(store, "drift_score", feature="x")
    assert sorted(drift) == [T0 + h * HOUR for h in range(1, 5)]  # the removed windows' points are gone
    assert drift[T0 + HOUR] > 0.6 and max(drift[T0 + h * HOUR] for h in range(2, 5)) < 0.2
    accuracy = series_points(store, "accuracy")
    assert sorted(accuracy) == sorted(drift)
    assert store.runs.get(r1.run_id).summary["replaced_by"] == r2.run_id

    # the first content again: the first run is written anew, the second replaced
    write_day(
        part,
        np.round(first.t * 1e6).astype(np.int64),
        first.ids,
        first.x,
        first.z,
        first.pred,
        first.score,
        first.y,
        first.known,
    )
    r3 = monitor_batch(store, part, **kw)
    assert r3.status == "monitored" and r3.run_id == r1.run_id and r3.replaced == [r2.run_id]
    assert len(store.profiles.windows("default", SUBJECT)) == 6
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(predictions)).scalar_one() == first.n
    drift = series_points(store, "drift_score", feature="x")
    assert sorted(drift) == [T0 + h * HOUR for h in range(1, 7)] and max(drift.values()) < 0.2
    assert monitor_batch(store, part, **kw).status == "already monitored"
    store.close()


def test_live_alerts_of_another_deployment_and_other_rules_are_left_alone(tmp_path):
    make_day(tmp_path / "part", hours=3, per_hour=200, drift_hour=1)
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    store_reference(store)
    now = time.time()
    store.write(
        Batch(
            points=[
                Points(
                    "default",
                    "model:other@7",
                    ["drift_score"],
                    [None],
                    [now - 30.0],
                    [0.9],
                    labels={"feature": "x"},
                )
            ]
        )
    )
    live_rules = rules_file(tmp_path / "live.yml", DRIFT + "\n  - name: LiveOnly\n    expr: drift_score > 5")
    live = AlertEngine(store, notifiers={"rec": Recorder()})
    assert live.load(live_rules) == {}
    live.evaluate(now)
    live.close()
    (before,) = [r for r in store.alerts.instances() if r["labels"].get("model") == "other"]
    assert before["state"] == "firing"

    r = monitor_batch(
        store,
        tmp_path / "part",
        model="clf",
        version="1",
        time_column="ts",
        rule_files=[rules_file(tmp_path / "batch.yml")],
        notifiers={"rec": Recorder()},
        eval_interval=300.0,
    )
    assert r.alerts_fired == 1 and {tr.labels["model"] for tr in r.transitions} == {"clf"}
    (after,) = [r for r in store.alerts.instances() if r["labels"].get("model") == "other"]
    assert after == before  # still firing, never notified again: evaluating 2024 did not resolve it
    with store.connect() as conn:
        enabled = dict(conn.execute(sa.select(alert_rules.c.name, alert_rules.c.enabled)).all())
    assert enabled == {"InputDrift": True, "LiveOnly": True}
    store.close()


def test_evaluate_only_keeps_other_instances_as_they_are(tmp_path):
    series = [
        ("drift_score", {"model": "a", "project": "p"}, [0.0, 1000.0], [0.9, 0.9]),
        ("drift_score", {"model": "b", "project": "p"}, [0.0], [0.9]),
    ]
    rec = Recorder()
    eng = AlertEngine(
        source=MemorySource(series), notifiers={"rec": rec}, known_signals=lambda: {"drift_score"}
    )
    assert eng.load(rules_file(tmp_path / "r.yml", "  - name: D\n    expr: drift_score > 0.5")) == {}
    first = eng.evaluate(0.0)
    assert sorted((tr.labels["model"], tr.new) for tr in first.transitions) == [
        ("a", "firing"),
        ("b", "firing"),
    ]
    scoped = eng.evaluate(1000.0, only={"model": "a"})
    assert scoped.transitions == [] and scoped.notifications == []
    assert {st.labels["model"]: st.state for _, st in eng.alerts()} == {"a": "firing", "b": "firing"}
    unscoped = eng.evaluate(1000.0)  # b's only point is out of the 5-minute lookback: it resolves
    assert [(tr.labels["model"], tr.new) for tr in unscoped.transitions] == [("b", "resolved")]
    eng.close()


def test_process_windows_merges_replicas_tells_the_window_end_and_leaves_the_cursor(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    start = T0
    for n in (30, 50):
        traffic = Traffic()
        traffic.endpoint("predict").update(np.full(n, 0.01), [None] * n)
        p = Profile({}, rows=n, traffic=traffic)
        store.write(
            Batch(
                profiles=[ProfileLog("default", SUBJECT, "window", start, start + 60.0, n, p.to_bytes(), 2)]
            )
        )
    seen = []

    def clock_probe(ctx):
        seen.append(ctx.now)
        yield Derived("requests_seen", float(ctx.profile.traffic.calls.requests))

    runner = MonitorRunner(store, monitors={"probe": clock_probe}, clock=lambda: T0 + 1e6)
    key = WindowKey("default", SUBJECT, start, start + 60.0)
    missing = WindowKey("default", SUBJECT, start + 60.0, start + 120.0)
    done = runner.process_windows([key, missing])
    assert (done.windows, done.points, done.errors) == (1, 1, 0)
    assert seen == [start + 60.0]
    assert series_points(store, "requests_seen") == {start + 60.0: 80.0}
    assert runner._cursor == 0 and not runner._pending  # a pass still finds the window as new
    assert runner.run_once().windows == 1
    runner.process_windows([key], now=123.0)
    assert seen[-1] == 123.0
    store.close()


def test_evaluation_times_cover_the_windows_and_the_tail_never_past_now():
    rs = load_rules(text="rules:\n  - name: D\n    expr: drift_score > 0.2\n", known_signals=None)
    # tail: min(window, lookback 300 + group_interval 300 + step 60) = 660 s after the last end
    times = evaluation_times([3600.0, 7200.0], [rs], 3600.0, 60.0, now=1e9)
    assert times == [3600.0 + 60.0 * k for k in range(72)]
    assert times[-1] == 7200.0 + 660.0
    capped = evaluation_times([3600.0, 7200.0], [rs], 3600.0, 60.0, now=5000.0)
    assert capped == [3600.0 + 60.0 * k for k in range(24)]
    # a step that does not divide the window still evaluates at every window's end
    odd = evaluation_times([3600.0, 7200.0], [rs], 3600.0, 7 * 60.0, now=1e9)
    assert 7200.0 in odd and odd == sorted(set(odd))
    assert evaluation_times([], [rs], 3600.0, 60.0, now=1e9) == []


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (dict(time_column="when"), "time", "no column 'when'"),
        (dict(outputs=["prediction", "nope"]), "outputs", "no column 'nope'"),
        (dict(id_column="id", outputs=["id"]), "outputs", "is the time, id or label column"),
        (dict(window=0), "window", "positive number of seconds"),
        (dict(id_column="id", outputs=[]), "outputs", "no output column"),
        (dict(label_column="label"), "label_column", "no column 'label'"),
        (dict(columns=["x", "w"]), "columns", "no column 'w'"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(tmp_path, change, field, words):
    make_day(tmp_path / "part", hours=1, per_hour=20)
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    before = counts(store)
    kw = dict(model="clf", version="1", time_column="ts") | change
    with pytest.raises(BatchInputError) as info:
        monitor_batch(store, tmp_path / "part", **kw)
    assert info.value.field == field and words in str(info.value)
    assert counts(store) == before
    store.close()


def test_an_empty_partition_or_one_without_times_is_refused(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/wk.db")
    (tmp_path / "empty").mkdir()
    pq.write_table(
        pa.table({"ts": pa.array([], pa.float64()), "x": pa.array([], pa.float64())}),
        tmp_path / "empty/a.parquet",
    )
    with pytest.raises(BatchInputError, match="holds no rows") as info:
        monitor_batch(store, tmp_path / "empty", model="m", version="1", time_column="ts")
    assert info.value.field == "path"
    (tmp_path / "untimed").mkdir()
    pq.write_table(
        pa.table({"ts": pa.array([None, None], pa.float64()), "x": [1.0, 2.0]}),
        tmp_path / "untimed/a.parquet",
    )
    with pytest.raises(BatchInputError, match="none of the 2 rows has a readable time") as info:
        monitor_batch(store, tmp_path / "untimed", model="m", version="1", time_column="ts")
    assert info.value.field == "time"
    with pytest.raises(BatchInputError, match="no file or directory") as info:
        monitor_batch(store, tmp_path / "nowhere", model="m", version="1", time_column="ts")
    assert store.runs.list() == []
    with store.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(profiles)).scalar_one() == 0
    store.close()
