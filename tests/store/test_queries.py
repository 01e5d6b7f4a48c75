"""The store's range queries on both databases: series listing, raw points over [start, end), buckets
aggregated in SQL against numpy over the same buckets (NaN points, empty buckets, negative times), and
sample filters (in SQL and in Python)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sqlalchemy as sa

from watchkeeper.profile import profile
from watchkeeper.store import Batch, Points, ProfileLog, RunStart, SampleRows

RNG = np.random.default_rng(11)


def _points(store, subject, name, t, v, *, labels=None, run_id=None, step=None):
    store.write(
        Batch(
            points=[
                Points(
                    "p",
                    subject,
                    [name] * len(t),
                    list(step) if step is not None else [None] * len(t),
                    [float(x) for x in t],
                    [float(x) for x in v],
                    run_id,
                    labels or {},
                )
            ]
        )
    )


def _numpy_buckets(t, v, width, start, end):
    """The reference: the same buckets computed point by point in numpy."""
    keep = (t >= start) & (t < end)
    t, v = t[keep], v[keep]
    k = np.floor(t / width).astype(np.int64)
    out = {}
    for key in np.unique(k):
        sel = k == key
        vals = v[sel]
        finite = vals[~np.isnan(vals)]
        order = np.argsort(t[sel], kind="stable")
        out[float(key * width)] = {
            "count": int(finite.size),
            "nan": int(np.isnan(vals).sum()),
            "mean": float(finite.mean()) if finite.size else math.nan,
            "min": float(finite.min()) if finite.size else math.nan,
            "max": float(finite.max()) if finite.size else math.nan,
            "last": float(vals[order][-1]),
        }
    return out


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_buckets_agree_with_numpy_including_nan_points_empty_buckets_and_negative_times(store):
    # two bursts with a gap between them (empty buckets), a quarter of the values NaN, a bucket whose last
    # point is NaN, a bucket of NaN only, and a second series spanning negative times
    t = np.concatenate([RNG.uniform(1000, 1300, 400), RNG.uniform(1500, 1900, 500)])
    v = RNG.normal(10, 3, t.size)
    v[RNG.random(t.size) < 0.25] = np.nan
    # bucket [1400, 1425) in the gap ends on NaN; [1950, 1975) holds NaN only
    t = np.concatenate([t, [1410.0, 1412.5, 1950.0, 1951.0]])
    v = np.concatenate([v, [4.0, np.nan, np.nan, np.nan]])
    _points(store, "s", "loss", t, v)
    tn = RNG.uniform(-100, 100, 300)
    vn = RNG.normal(size=300)
    _points(store, "s", "loss", tn, vn, labels={"replica": "b"})

    (a, b) = store.signals.series("p", subject="s", name="loss")
    assert a.labels == {} and b.labels == {"replica": "b"}
    start, end, width = 1003.7, 1951.0, 25.0  # start mid-bucket; 1951.0 is excluded
    got = store.signals.buckets([a.id, b.id], width, start, end)[a.id]
    want = _numpy_buckets(t, v, width, start, end)
    assert got.start.tolist() == sorted(want)  # only the buckets that hold a point, in order
    assert 1300.0 not in got.start and 1475.0 not in got.start  # the gap stays empty
    for i, s in enumerate(got.start.tolist()):
        w = want[s]
        assert (int(got.count[i]), int(got.nan[i])) == (w["count"], w["nan"]), s
        for field in ("mean", "min", "max", "last"):
            assert _same(float(getattr(got, field)[i]), w[field]), (s, field)
    by_start = dict(zip(got.start.tolist(), range(len(got)), strict=True))
    assert math.isnan(got.last[by_start[1400.0]]) and got.max[by_start[1400.0]] == 4.0
    nan_only = by_start[1950.0]
    assert (got.count[nan_only], got.nan[nan_only]) == (0, 1)  # 1951.0 is at the end: left out
    assert math.isnan(got.mean[nan_only]) and math.isnan(got.min[nan_only])

    neg = store.signals.buckets([b.id], 7.0)[b.id]  # open range, buckets across zero
    want = _numpy_buckets(tn, vn, 7.0, -math.inf, math.inf)
    assert neg.start.tolist() == sorted(want)
    assert neg.start[0] == 7.0 * math.floor(tn.min() / 7.0) < 0
    assert neg.count.tolist() == [want[s]["count"] for s in sorted(want)]
    assert np.allclose(neg.mean, [want[s]["mean"] for s in sorted(want)], rtol=1e-12)
    assert neg.last.tolist() == [want[s]["last"] for s in sorted(want)]
    assert int(neg.count.sum()) == 300


def test_bucket_of_infinities_and_an_empty_range(store):
    _points(store, "s", "x", [0.0, 1.0, 2.0, 3.0], [1.0, math.inf, -5.0, 2.0])
    (s,) = store.signals.series("p", name="x")
    got = store.signals.buckets([s.id], 10.0)[s.id]
    assert (got.count.tolist(), got.max.tolist(), got.min.tolist(), got.last.tolist()) == (
        [4],
        [math.inf],
        [-5.0],
        [2.0],
    )
    assert store.signals.buckets([s.id], 10.0, 100.0, 200.0)[s.id].start.size == 0
    assert store.signals.buckets([s.id], 1.0, 3.0, 3.0)[s.id].start.size == 0  # [3, 3) is empty


def test_buckets_too_fine_for_the_span_are_refused_naming_the_parameter(store):
    _points(store, "s", "x", [0.0, 1000.0], [1.0, 2.0])
    (s,) = store.signals.series("p", name="x")
    with pytest.raises(ValueError, match=r"bucket: .*100001 buckets"):
        store.signals.buckets([s.id], 0.01, max_buckets=100_000)
    assert len(store.signals.buckets([s.id], 0.01, 0.0, 5.0)[s.id]) == 1  # a short range is fine
    with pytest.raises(ValueError, match="bucket"):
        store.signals.buckets([s.id], 0.0)


def test_points_in_range_are_half_open_oldest_first_and_limited(store):
    t = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0]
    v = [0.0, float("nan"), 2.0, 3.0, 4.0, 5.0]
    _points(store, "s", "x", t, v, step=range(6))
    (s,) = store.signals.series("p", name="x")
    got = store.signals.points_in(s.id, 11.0, 15.0)
    assert got.t.tolist() == [11.0, 12.0, 13.0, 14.0]  # 11 in, 15 out
    assert math.isnan(got.value[0]) and got.value[1:].tolist() == [2.0, 3.0, 4.0]
    assert got.step.tolist() == [1, 2, 3, 4]
    assert store.signals.points_in(s.id, 11.0, 15.0, limit=2).t.tolist() == [11.0, 12.0]
    assert len(store.signals.points_in(s.id)) == 6
    assert len(store.signals.points_in(s.id, 16.0, 20.0)) == 0
    with pytest.raises(KeyError):
        store.signals.points_in(s.id + 1000)


def test_series_list_their_point_count_and_last_point(store):
    store.write(Batch(runs=[RunStart("r1", "p", "n", 1.0)]))
    _points(store, "r1", "loss", [1.0, 2.0, 3.0], [0.5, 0.25, float("nan")], run_id="r1", step=[0, 1, 2])
    _points(store, "r1", "acc", [1.0, 2.0], [0.1, 0.9], run_id="r1", step=[0, 1])
    _points(store, "model:m@1", "p99", [5.0], [0.2], labels={"endpoint": "predict"})
    got = store.signals.series(run_id="r1", stats=True)
    assert [(s.name, s.count, s.t, s.step) for s in got] == [("acc", 2, 2.0, 1), ("loss", 3, 3.0, 2)]
    assert got[0].last == 0.9 and math.isnan(got[1].last)
    assert got[0].subject == "r1" and got[0].run_id == "r1" and got[0].project == "p"
    (p99,) = store.signals.series("p", subject="model:m@1", stats=True)
    assert (p99.labels, p99.count, p99.last, p99.run_id) == ({"endpoint": "predict"}, 1, 0.2, None)
    assert store.signals.series("other") == []
    assert store.signals.series("p", name="acc")[0].count is None  # stats not asked for


# -- samples ---------------------------------------------------------------------------------------------


def _request(t, i, status="ok", label=None):
    return {
        "t": t,
        "id": f"req-{i}",
        "latency_ms": 1.0 + i,
        "status": status,
        "error": None if status == "ok" else {"$float": "nan"} if i == 3 else f"bad {i}",
        "inputs": {"x": i},
        "outputs": None if status != "ok" else {"score": i / 10, "label": label},
        "stages": None,
    }


def _sampled(store):
    """Two runs serving model:m@1 (two replicas), one other run, and a logged table with a text t."""
    store.write(
        Batch(
            runs=[RunStart(r, "p", r, 1.0) for r in ("r1", "r2", "r3")],
            profiles=[
                ProfileLog("p", "model:m@1", "window", 100.0, 160.0, 1, profile({"x": [1]}).to_bytes(), 1, r)
                for r in ("r1", "r2")
            ],
            samples=[
                SampleRows(
                    "p",
                    "samples/predict",
                    100.0,
                    [
                        _request(101.0, 0, label=1),
                        _request(105.0, 1, label=0),
                        _request(110.0, 2, "ValueError"),
                        _request(120.0, 3, "TimeoutError"),
                    ],
                    "r1",
                ),
                SampleRows(
                    "p",
                    "samples/predict",
                    100.0,
                    [_request(102.0, 4, label=1), _request(130.0, 5, label="1")],
                    "r2",
                ),
                SampleRows("p", "samples/explain", 100.0, [_request(103.0, 6, label=1)], "r2"),
                SampleRows("p", "samples/predict", 100.0, [_request(104.0, 7, label=1)], "r3"),
                SampleRows("p", "preds", 50.0, [{"t": "noon", "status": "ok"}, {"a": 1}], "r1", step=1),
            ],
        )
    )


def _ids(result):
    return [r.data.get("id") for r in result.rows]


def test_sample_filters_in_sql_newest_first(store):
    _sampled(store)
    q = store.samples.query
    every = q(project="p", key_prefix="samples/")
    assert _ids(every) == ["req-5", "req-3", "req-2", "req-1", "req-7", "req-6", "req-4", "req-0"]
    assert (every.truncated, every.scan_limited) == (False, False)
    assert (
        every.rows[0].t == 130.0 and every.rows[0].run_id == "r2" and every.rows[0].key == "samples/predict"
    )
    assert math.isnan(every.rows[1].data["error"])  # decoded by the codec
    assert _ids(q(project="p", subject="model:m@1", key="samples/predict")) == [
        "req-5",
        "req-3",
        "req-2",
        "req-1",
        "req-4",
        "req-0",
    ]
    assert _ids(q(run_ids=["r1"], key="samples/predict", status="error")) == ["req-3", "req-2"]
    assert _ids(q(run_ids=["r1", "r2"], key="samples/predict", status="ok")) == [
        "req-5",
        "req-1",
        "req-4",
        "req-0",
    ]
    assert _ids(q(project="p", key_prefix="samples/", start=102.0, end=110.0)) == [
        "req-1",
        "req-7",
        "req-6",
        "req-4",
    ]  # 102 in, 110 out: the row's own time, not its batch's
    first = q(project="p", key_prefix="samples/", limit=3)
    assert _ids(first) == ["req-5", "req-3", "req-2"] and first.truncated
    assert not q(project="p", key_prefix="samples/", limit=8).truncated
    # a logged table: a text "t" falls back to the batch time instead of failing or sorting as 0
    table = q(run_ids=["r1"], key="preds")
    assert [r.t for r in table.rows] == [50.0, 50.0] and table.rows[0].data == {"a": 1}
    assert q(run_ids=["r1"], key="preds", start=40.0, end=60.0).rows[0].step == 1
    assert q(project="other").rows == []
    with pytest.raises(ValueError, match="status"):
        q(status="failed")


def test_sample_label_filter_reads_a_bounded_number_of_rows_in_python(store):
    _sampled(store)
    q = store.samples.query
    got = q(project="p", key="samples/predict", label="1")
    assert _ids(got) == ["req-5", "req-7", "req-4", "req-0"]  # 1 and "1" both read as "1"
    assert (got.truncated, got.scanned, got.scan_limited) == (False, 7, False)
    assert _ids(q(project="p", key="samples/predict", label="0")) == ["req-1"]
    capped = q(project="p", key="samples/predict", label="1", limit=2)
    assert _ids(capped) == ["req-5", "req-7"] and capped.truncated and not capped.scan_limited
    short = q(project="p", key="samples/predict", label="1", scan_limit=3)
    assert _ids(short) == ["req-5"] and short.scan_limited and short.scanned == 3


def _check_against_numpy(got, t, v, width, start, end):
    want = _numpy_buckets(t, v, width, start, end)
    assert got.start.tolist() == sorted(want)
    for i, s in enumerate(got.start.tolist()):
        w = want[s]
        assert (int(got.count[i]), int(got.nan[i])) == (w["count"], w["nan"]), s
        for field in ("mean", "min", "max", "last"):
            assert _same(float(getattr(got, field)[i]), w[field]), (s, field)


def test_rolled_up_buckets_of_subject_series_agree_with_numpy_after_rewrites(store):
    # three days of a monitor's 1-minute points, from before zero, with NaN runs and a NaN-only hour; then a
    # monitor rewrites some windows (replace_points) and a late window arrives: the roll-ups follow the points
    t = np.arange(-7200.0, 3 * 86400.0, 60.0)
    v = RNG.normal(5, 2, t.size)
    v[RNG.random(t.size) < 0.2] = np.nan
    v[(t >= 36000) & (t < 39600)] = np.nan
    _points(store, "model:m@1", "drift_score", t, v, labels={"feature": "x"})
    redo = np.arange(100, 400) * 60.0
    v2 = RNG.normal(50, 1, redo.size)
    store.write(
        Batch(
            points=[
                Points(
                    "p",
                    "model:m@1",
                    ["drift_score"] * redo.size,
                    [None] * redo.size,
                    redo.tolist(),
                    v2.tolist(),
                    None,
                    {"feature": "x"},
                )
            ],
            replace_points=True,
        )
    )
    v[np.isin(t, redo)] = v2
    late = np.array([3 * 86400.0 + 30.0])
    _points(store, "model:m@1", "drift_score", late, np.array([-3.0]), labels={"feature": "x"})
    t, v = np.concatenate([t, late]), np.concatenate([v, [-3.0]])
    (s,) = store.signals.series("p", subject="model:m@1", name="drift_score")
    with store.connect() as conn:  # the roll-ups really exist (the answers below come from them)
        n = conn.execute(
            sa.text("SELECT COUNT(*) FROM point_rollups WHERE series_id = :s"), {"s": s.id}
        ).scalar()
    assert n == sum(len(np.unique(np.floor(t / w))) for w in (300, 1800, 3600))
    for width, start, end in [
        (3600.0, None, None),
        (7200.0, -7200.0, 86400.0),
        (1800.0, 600.0, 2 * 86400.0 + 1200.0),
        (86400.0, None, None),
    ]:
        got = store.signals.buckets([s.id], width, start, end)[s.id]
        lo = -math.inf if start is None else start
        hi = math.inf if end is None else end
        _check_against_numpy(got, t, v, width, lo, hi)
    with pytest.raises(ValueError, match=r"bucket: .* more than the 10 allowed"):
        store.signals.buckets([s.id], 3600.0, max_buckets=10)


def test_unaligned_ranges_are_bucketed_from_the_points(store):
    t = np.arange(0.0, 86400.0, 60.0)
    v = RNG.normal(size=t.size)
    _points(store, "model:m@1", "latency_p99_ms", t, v)
    (s,) = store.signals.series("p", subject="model:m@1", name="latency_p99_ms")
    got = store.signals.buckets([s.id], 3600.0, 1234.0, 50000.0)[s.id]  # start not aligned: from points
    _check_against_numpy(got, t, v, 3600.0, 1234.0, 50000.0)


def test_last_in_is_the_newest_point_of_each_series_in_the_range(store):
    t = np.arange(0.0, 6000.0, 60.0)
    v = RNG.normal(size=t.size)
    v[-1] = np.nan  # the very newest point is NaN: it is still the newest point
    _points(store, "model:m@1", "drift_p_value", t, v, labels={"feature": "a"})
    _points(store, "model:m@1", "drift_p_value", t[:10], v[:10], labels={"feature": "b"})
    a, b = store.signals.series("p", subject="model:m@1", name="drift_p_value")
    got = store.signals.last_in([a.id, b.id], 1000.0, 3000.0)
    assert got == {a.id: (2940.0, v[t == 2940.0][0])}  # b has no point in the range
    newest = store.signals.last_in([a.id, b.id])
    assert newest[b.id] == (540.0, v[9]) and newest[a.id][0] == t[-1] and math.isnan(newest[a.id][1])
