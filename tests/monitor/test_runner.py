"""The monitor runner over a real store (SQLite, and PostgreSQL when one is reachable): replicas merged,
late profiles replacing a window's points, the cursor kept across runners, settle, failures isolated, late
labels re-scored, the background thread."""

from __future__ import annotations

import sys
import threading
import time
import types

import numpy as np
import pytest

from watchkeeper.monitor import ops
from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.monitor.runner import GAP_WAIT, HEALTH_SUBJECT, RELABEL_EVERY, MonitorRunner
from watchkeeper.profile import Profile, Traffic, profile
from watchkeeper.sdk import watcher as watch_mod
from watchkeeper.sdk.watcher import Watcher
from watchkeeper.store import Batch, LabelRows, PredictionRows, ProfileLog, RunStart, Store
from watchkeeper.store.profiles import parse_model_subject as parse_subject

RNG = np.random.default_rng(41)
T0 = 1_700_000_040.0  # a minute boundary
SUBJECT = "model:clf@2"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _replica(
    store: Store,
    start: float,
    latencies: np.ndarray,
    errors=None,
    *,
    subject: str = SUBJECT,
    features: dict | None = None,
) -> Profile:
    """One replica's profile of the window [start, start + 60), written to the store."""
    traffic = Traffic()
    traffic.endpoint("predict").update(latencies, errors if errors is not None else [None] * latencies.size)
    cols = profile(features).columns if features else {}
    prof = Profile(cols, rows=latencies.size, traffic=traffic)
    store.write(
        Batch(
            profiles=[
                ProfileLog(
                    "p",
                    subject,
                    "window",
                    start,
                    start + 60.0,
                    prof.rows,
                    prof.to_bytes(),
                    prof.format_version,
                )
            ]
        )
    )
    return prof


def _series(store: Store, name: str, subject: str = SUBJECT, **labels: str) -> list[tuple[float, float]]:
    """Every point of one series, as (t, value)."""
    infos = [s for s in store.signals.series("p", subject=subject, name=name) if s.labels == labels]
    if not infos:
        return []
    (info,) = infos
    data = store.signals.points_in(info.id)
    return list(zip(data.t.tolist(), data.value.tolist(), strict=True))


def _runner(store: Store, clock: Clock, **kw) -> MonitorRunner:
    kw.setdefault("monitors", {"ops": ops.derive})
    return MonitorRunner(store, clock=clock, settle=30.0, **kw)


def test_parse_subject():
    assert parse_subject("model:fraud-clf@1.3.0") == ("fraud-clf", "1.3.0")
    assert parse_subject("model:a@b@7") == ("a@b", "7")
    assert parse_subject("run:abc") is None and parse_subject("model:nover") is None


def test_replicas_merge_into_one_window_processed_once_settled(store):
    a, b = RNG.lognormal(-4, 1, 3000), RNG.lognormal(-3.5, 1, 2000)
    err_a = ["ValueError" if i % 50 == 0 else None for i in range(3000)]
    _replica(store, T0, a, err_a)
    _replica(store, T0, b)
    clock = Clock(T0 + 60.0 + 29.0)
    runner = _runner(store, clock)
    assert runner.run_once().windows == 0  # not settled yet: a replica's profile may still come
    assert _series(store, "requests") == []
    clock.now = T0 + 60.0 + 30.0
    result = runner.run_once()
    assert (result.windows, result.errors) == (1, 0)
    assert result.lag == 30.0
    assert _series(store, "requests") == [(T0 + 60.0, 5000.0)]
    assert _series(store, "requests", endpoint="predict") == [(T0 + 60.0, 5000.0)]
    assert _series(store, "errors") == [(T0 + 60.0, 60.0)]
    both = np.concatenate([a, b]) * 1e3
    ((_, p99),) = _series(store, "latency_p99_ms")
    exact = np.quantile(both, 0.99, method="lower")
    assert abs(p99 - exact) <= 0.01 * exact
    stored = store.signals.series("p", subject=SUBJECT, stats=True)
    assert result.points == sum(s.count for s in stored) == len(stored)  # one point per series
    assert runner.run_once().windows == 0  # done: not processed again


def test_a_late_replica_replaces_the_windows_points(store):
    a, b, c = RNG.lognormal(-4, 1, 1000), RNG.lognormal(-4, 1, 700), RNG.lognormal(-2, 1, 300)
    _replica(store, T0, a)
    _replica(store, T0, b)
    clock = Clock(T0 + 100.0)
    runner = _runner(store, clock)
    assert runner.run_once().windows == 1
    _replica(store, T0, c)  # a replica that was away comes back with its profile of the window
    clock.now += 10.0
    assert runner.run_once().windows == 1
    assert _series(store, "requests") == [(T0 + 60.0, 2000.0)]  # one point, the new total
    ((_, p99),) = _series(store, "latency_p99_ms")
    exact = np.quantile(np.concatenate([a, b, c]) * 1e3, 0.99, method="lower")
    assert abs(p99 - exact) <= 0.01 * exact


def test_the_cursor_and_pending_windows_survive_a_new_runner(store):
    _replica(store, T0, RNG.lognormal(-4, 1, 100))
    _replica(store, T0 + 60.0, RNG.lognormal(-4, 1, 200))
    clock = Clock(T0 + 60.0 + 30.0)  # the first window has settled, the second not yet
    first = _runner(store, clock)
    assert first.run_once().windows == 1

    clock.now = T0 + 120.0 + 30.0
    second = _runner(store, clock)  # a restart: it must neither skip the pending window nor redo the first
    assert second.run_once().windows == 1
    assert _series(store, "requests") == [(T0 + 60.0, 100.0), (T0 + 120.0, 200.0)]

    third = _runner(store, clock)

    def no_reading(chunk):
        raise AssertionError(f"profiles read again: {chunk}")

    third._windows_of = no_reading  # nothing new: the pass reads no profile
    assert (third.run_once().windows, third.run_once().errors) == (0, 0)
    _replica(store, T0 + 180.0, RNG.lognormal(-4, 1, 300))
    clock.now = T0 + 240.0 + 30.0
    fourth = _runner(store, clock)
    assert fourth.run_once().windows == 1
    assert [v for _, v in _series(store, "requests")] == [100.0, 200.0, 300.0]


def test_a_failing_monitor_does_not_lose_the_others(store, caplog):
    def boom(ctx):
        yield Derived("half_done", 1.0)  # values before the failure are dropped with it
        raise RuntimeError("monitor bug")

    _replica(store, T0, RNG.lognormal(-4, 1, 50))
    runner = _runner(store, Clock(T0 + 100.0), monitors={"boom": boom, "ops": ops.derive})
    result = runner.run_once()
    assert (result.windows, result.errors) == (1, 1)
    assert _series(store, "requests") == [(T0 + 60.0, 50.0)]
    assert _series(store, "half_done") == []
    assert "the boom monitor failed" in caplog.text and "monitor bug" in caplog.text


def test_the_runner_writes_its_own_health(store):
    _replica(store, T0, RNG.lognormal(-4, 1, 10))
    _replica(store, T0 + 60.0, RNG.lognormal(-4, 1, 10))
    clock = Clock(T0 + 150.0)
    runner = _runner(store, clock)
    runner.run_once()
    clock.now += 10.0
    runner.run_once()
    assert _series(store, "monitor_windows", subject=HEALTH_SUBJECT) == [(T0 + 150.0, 2.0), (T0 + 160.0, 0.0)]
    assert _series(store, "monitor_lag_seconds", subject=HEALTH_SUBJECT) == [
        (T0 + 150.0, 30.0),
        (T0 + 160.0, 40.0),
    ]


def _count_labels(ctx: WindowContext):
    """A label monitor: how many of the window's predictions have a label by now."""
    yield Derived(
        "labelled_rows", float(len(ctx.store.labels.joined(ctx.project, ctx.subject, ctx.start, ctx.end)))
    )


def _relabelled_from_store(store, project, subject, since, horizon_start):
    joined = store.labels.joined(project, subject, horizon_start)
    return sorted({t for t, lt in zip(joined.t, joined.label_t, strict=True) if lt >= since})


def _predictions(store: Store, start: float, n: int) -> list[str]:
    ids = [f"{start:.0f}-{i}" for i in range(n)]
    times = (start + np.linspace(1, 59, n)).tolist()
    store.write(Batch(predictions=[PredictionRows("p", SUBJECT, ids, times, [{"label": 1}] * n)]))
    return ids


def test_late_labels_rescore_the_windows_holding_their_predictions(store, monkeypatch):
    fake = types.ModuleType("watchkeeper.monitor.performance")
    fake.relabelled = _relabelled_from_store
    monkeypatch.setitem(sys.modules, "watchkeeper.monitor.performance", fake)
    for start in (T0, T0 + 60.0, T0 + 120.0):
        _replica(store, start, RNG.lognormal(-4, 1, 20))
    ids = {start: _predictions(store, start, 20) for start in (T0, T0 + 60.0, T0 + 120.0)}
    clock = Clock(T0 + 300.0)
    runner = _runner(store, clock, monitors={"ops": ops.derive, "performance": _count_labels})
    result = runner.run_once()
    assert (result.windows, result.rescored) == (3, 0)
    assert _series(store, "labelled_rows") == [(T0 + 60.0, 0.0), (T0 + 120.0, 0.0), (T0 + 180.0, 0.0)]

    # labels for 5 predictions of the second window arrive later
    clock.now += RELABEL_EVERY
    store.write(Batch(labels=[LabelRows("p", SUBJECT, ids[T0 + 60.0][:5], [1] * 5, [clock.now - 1.0] * 5)]))
    result = runner.run_once()
    assert (result.windows, result.rescored, result.errors) == (0, 1, 0)
    assert _series(store, "labelled_rows") == [(T0 + 60.0, 0.0), (T0 + 120.0, 5.0), (T0 + 180.0, 0.0)]
    assert _series(store, "requests") == [(T0 + 60.0, 20.0), (T0 + 120.0, 20.0), (T0 + 180.0, 20.0)]

    # seen once: the next look (a minute later, RELABEL_EVERY) has nothing to re-score
    clock.now += RELABEL_EVERY
    assert runner.run_once().rescored == 0


def test_late_labels_with_the_performance_monitor(store):
    performance = pytest.importorskip("watchkeeper.monitor.performance")
    _replica(store, T0, RNG.lognormal(-4, 1, 10))
    ids = _predictions(store, T0, 10)
    clock = Clock(T0 + 100.0)
    runner = _runner(store, clock, monitors={"performance": performance.derive})
    runner.run_once()
    assert _series(store, "accuracy") == []  # no label yet: no score
    clock.now += RELABEL_EVERY
    store.write(Batch(labels=[LabelRows("p", SUBJECT, ids, [1] * 8 + [0] * 2, [clock.now - 1.0] * 10)]))
    assert runner.run_once().rescored == 1
    assert _series(store, "accuracy") == [(T0 + 60.0, 0.8)]


def test_every_default_monitor_on_windows_of_two_sdk_replicas(store, monkeypatch):
    """Two Watchers (a deployment's replicas) score traffic into one window; the reference was logged by
    a training run. The runner's default monitors give exact totals and drift against the reference."""
    wall = [T0 + 12.0]
    monkeypatch.setattr(watch_mod.time, "time", lambda: wall[0])
    monkeypatch.setattr(watch_mod.time, "time_ns", lambda: round(wall[0] * 1e9))
    store.write(Batch(runs=[RunStart(r, "p", r, created_at=T0 - 3600.0) for r in ("train", "w1", "w2")]))
    ref = profile({"x": RNG.normal(0, 1, 5000), "score": RNG.uniform(0, 1, 5000)})
    store.write(
        Batch(
            profiles=[
                ProfileLog(
                    "p",
                    SUBJECT,
                    "reference",
                    0,
                    0,
                    ref.rows,
                    ref.to_bytes(),
                    1,
                    "train",
                    ("clf", "2", "train"),
                )
            ]
        )
    )
    xs = {"w1": RNG.normal(1.0, 1, 1500), "w2": RNG.normal(1.0, 1, 900)}  # drifted by one sd
    for run_id, x in xs.items():
        w = Watcher(project="p", subject=SUBJECT, run_id=run_id, window=60.0)
        watched = w.wrap(
            lambda v: {"score": 1 / (1 + np.exp(-v))},
            Watcher.spec("predict", features=lambda v: {"x": v}),
        )
        for v in x.tolist():
            watched(v)
        store.write(Batch(profiles=w.drain(final=True).profiles))
    runner = MonitorRunner(store, clock=Clock(T0 + 100.0))
    result = runner.run_once()
    assert (result.windows, result.errors) == (1, 0)
    t = T0 + 60.0
    assert _series(store, "requests") == [(t, 2400.0)]
    assert _series(store, "request_rate") == [(t, 40.0)]
    assert _series(store, "missing_rate", feature="x") == [(t, 0.0)]
    assert _series(store, "drift_detected", feature="x") == [(t, 1.0)]
    assert _series(store, "dataset_drift_share") == [(t, 1.0)]
    all_x = np.concatenate(list(xs.values()))
    ((_, mean),) = _series(store, "prediction_mean", output="score")
    assert mean == pytest.approx(np.mean(1 / (1 + np.exp(-all_x))), rel=1e-9)
    ((_, age),) = _series(store, "reference_age_seconds")
    assert age == pytest.approx(T0 + 100.0 - store.profiles.references("p", "clf")[0].created_at)
    assert _series(store, "monitor_windows", subject=HEALTH_SUBJECT) == [(T0 + 100.0, 1.0)]


def test_the_background_thread_survives_a_failing_pass(store):
    clock = Clock(T0 + 100.0)
    runner = _runner(store, clock)
    real_scan = runner._scan
    calls = []

    def flaky_scan(now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("database went away")
        real_scan(now)

    runner._scan = flaky_scan
    _replica(store, T0, RNG.lognormal(-4, 1, 30))
    runner.start(interval=0.01)
    try:
        deadline = time.monotonic() + 20.0
        while not _series(store, "requests") and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        runner.stop()
    assert runner.failures == 1
    assert _series(store, "requests") == [(T0 + 60.0, 30.0)]
    assert not any(t.name == "watchkeeper-monitor" for t in threading.enumerate())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="settle: expected a non-negative number of seconds, got -1"):
        MonitorRunner(None, settle=-1)  # type: ignore[arg-type]
    runner = MonitorRunner(None, monitors={})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="interval: expected a positive number of seconds, got 0"):
        runner.start(interval=0)


def _profile_row(store: Store, pid: int, start: float, requests: int) -> None:
    """A window profile with a chosen id: how a row whose transaction commits late looks to a reader."""
    from watchkeeper.store.schema import profiles

    traffic = Traffic()
    traffic.endpoint("predict").update(RNG.lognormal(-4, 1, requests), [None] * requests)
    prof = Profile(rows=requests, traffic=traffic)
    with store.begin_write() as conn:
        conn.execute(
            profiles.insert().values(
                id=pid,
                project_id=store.project_id(conn, "p"),
                subject=SUBJECT,
                kind="window",
                window_start=start,
                window_end=start + 60.0,
                rows=requests,
                format_version=prof.format_version,
                data=prof.to_bytes(),
            )
        )


def test_a_profile_committed_after_a_higher_id_is_still_processed(store):
    _profile_row(store, 1, T0, 10)
    clock = Clock(T0 + 100.0)
    runner = _runner(store, clock)
    assert runner.run_once().windows == 1
    _profile_row(store, 3, T0 + 60.0, 30)  # id 2 was taken by a transaction that has not committed yet
    clock.now += 60.0
    assert runner.run_once().windows == 1
    _profile_row(store, 2, T0 + 60.0, 20)  # it commits: a second replica of the same window
    clock.now += 10.0
    restarted = _runner(store, clock)  # the missing id is part of the saved cursor
    assert restarted.run_once().windows == 1
    assert _series(store, "requests") == [(T0 + 60.0, 10.0), (T0 + 120.0, 50.0)]
    # an id that never shows up (a rolled-back insert) is given up after GAP_WAIT
    _profile_row(store, 5, T0 + 120.0, 5)
    restarted.run_once()
    assert list(restarted._gaps) == [4]
    clock.now += GAP_WAIT + 1.0
    restarted.run_once()
    assert restarted._gaps == {}


# -- shards ------------------------------------------------------------------------------------------------


def test_shards_share_the_deployments_each_processed_by_one_runner_with_its_own_cursor(store):
    subjects = [f"model:m{i}@1" for i in range(12)]
    for s in subjects:
        _replica(store, T0, RNG.lognormal(-4, 1, 100), subject=s)
    clock = Clock(T0 + 120.0)
    runners = [_runner(store, clock, shard=(k, 4)) for k in range(4)]
    done = [r.run_once().windows for r in runners]
    assert sum(done) == 12  # every deployment once
    for k, r in enumerate(runners):
        mine = [s for s in subjects if r.owns("p", s)]
        assert done[k] == len(mine)
        for s in subjects:
            assert bool(_series(store, "requests", subject=s)) is True
    # the split is CRC-32 of project and subject mod n, pinned: a change would move deployments between
    # the shards of running replicas during an upgrade
    assert [next(k for k, r in enumerate(runners) if r.owns("p", s)) for s in subjects] == [
        2,
        1,
        0,
        3,
        2,
        1,
        0,
        3,
        2,
        1,
        2,
        1,
    ]
    # each shard keeps its own cursor: a new runner of shard 2 has nothing left to do, a runner over the
    # whole store (another state key) starts from the beginning
    assert _runner(store, clock, shard=(2, 4)).run_once().windows == 0
    assert _runner(store, clock).run_once().windows == 12
    # their health is labelled by shard
    assert {s.labels.get("shard") for s in store.signals.series("p", subject=HEALTH_SUBJECT)} >= {
        "0/4",
        "3/4",
    }


@pytest.mark.parametrize("bad", [(4, 4), (-1, 2), (0, 0), ("0", 2), (True, 2), 3])
def test_a_bad_shard_is_refused(store, bad):
    with pytest.raises(ValueError, match="shard"):
        MonitorRunner(store, shard=bad)


def test_shards_are_written_k_slash_n():
    from watchkeeper.monitor.runner import parse_shard

    assert parse_shard("2/8") == (2, 8) and parse_shard(" 0/1 ") == (0, 1)
    for bad in ("8/8", "2", "a/b", "-1/4", ""):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)


def test_a_chunks_windows_are_read_one_window_at_a_time(store):
    """The runner streams a deployment's profiles window by window (a chunk of 128 windows of 100 replicas
    read at once would be gigabytes): each window comes with exactly its replicas' profiles, oldest first,
    before the next window's rows are read; a window without profiles comes last, with none."""
    from watchkeeper.monitor.runner import WindowKey

    sizes = {T0: [100, 200, 300], T0 + 60.0: [400], T0 + 120.0: [500, 600]}
    for start, ns in sizes.items():
        for n in ns:
            _replica(store, start, RNG.lognormal(-4, 1, n))
    runner = _runner(store, Clock(T0 + 600.0))
    keys = [WindowKey("p", SUBJECT, t, t + 60.0) for t in (T0 + 120.0, T0, T0 + 180.0, T0 + 60.0)]
    seen = []
    for key, blobs in runner._windows_of(keys):
        seen.append((key.start, sorted(Profile.from_bytes(b).rows for b in blobs)))
    assert seen == [
        (T0, [100, 200, 300]),
        (T0 + 60.0, [400]),
        (T0 + 120.0, [500, 600]),
        (T0 + 180.0, []),
    ]
