"""Online anomaly scoring of a KPI stream: rows/s of ``run.watch_anomalies`` over 1M KPI rows, next to the
plain pandas way of computing the same window features in one batch.

The bar (issue): scoring a stream of 1M KPI rows runs at no less than 100,000 rows/s on this machine.

Run: ``.venv/bin/python bench/bench_anomaly_stream.py`` (3 to 4 minutes on 2 cores; ``--quick`` for a
smoke run: 20 devices, 1 repeat). The exit code is 0 whether or not the bar is met; it is non-zero only when
the benchmark itself fails: the streamed scores differ from the batch scores, the anchor's features differ
from watchkeeper's, or the store does not hold one score per scored window.

The data: ``--devices`` (200) devices, ``--rows-per-device`` (5,000) rows each, every 10 s (about 14 hours
ending at the last whole 10 minutes before now), 5 KPI columns: latency, throughput, packet_loss, cpu,
requests. Seeded. Six incidents are injected after the training part (``INCIDENTS``): latency and packet
loss up, throughput down, cpu saturated, a traffic surge, a slow latency drift. The frame is sorted by
time (then device), as a live service receives it.

The windows are ``Windows("10min", stats=["mean", "std", "max"], time="timestamp")`` by ``device_id``:
15 features. Each detector is fitted on the windows of the first ``TRAIN_HOURS`` hours and its threshold set
at the 99.5th percentile of their scores: the Autoencoder (hidden (64, 32), 5 epochs),
IsolationForestDetector, RobustBaseline (EWMA) and PCADetector, all with their defaults otherwise.

What is timed (``time.perf_counter``; each figure the median of ``--repeats``, 3 by default, alternating
the three measurements of a detector so that a noisy moment does not hit one of them only):

- scoring path: a fresh ``AnomalyWatch(det, windows, by="device_id", name="kpi")``; the stream is fed in
  chunks of ``--chunk`` (10,000) rows, ``aw.log(chunk)`` then ``aw.flush()`` after each, as a live
  service would in event-time order, then ``aw.flush(final=True)``. rows/s = rows / that time. The chunks
  are slices of the frame made before the clock starts (their arrival is not ours to time).
- through a run: ``wk.init(project=..., uri="sqlite:///<tmp>/wk.db", system_metrics=False)`` then
  ``run.watch_anomalies(det, windows, by="device_id", name="kpi")``, the same chunks logged and flushed,
  then ``run.finish()``, which writes every score and flag (and the alerts ``run.alert`` sends for flagged
  windows) to SQLite. The clock starts after ``wk.init`` and stops when ``finish`` returns. A fresh database
  per repeat; afterwards the store must hold exactly one ``anomaly_score`` point per scored window.
- anchors: what a user would write without watchkeeper, on the whole frame at once (batch, not
  streaming), the columns flattened to the detector's names, then ``det.score(features)``. "resample", as
  the issue names it: ``df.groupby("device_id").resample("10min", on="timestamp").agg({kpi: ["mean",
  "std", "max"], ...})``; "grouper", the faster spelling of the same features:
  ``df.groupby(["device_id", pd.Grouper(key="timestamp", freq="10min")])[kpis].agg(["mean", "std",
  "max"])``. ours/anchor = our rows/s over the anchor's; ours streams in small chunks and the anchor sees
  everything at once, so a ratio near or above 0.5 is good.

Checked, once per detector before timing: the streamed scores equal ``det.score`` of
``windows.transform`` on the whole frame (rtol 1e-9), and the anchor's features equal watchkeeper's (the
grids agree: pandas' default origin is midnight, and 10 minutes divide a day).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

import watchkeeper as wk
from watchkeeper.anomaly import Autoencoder, IsolationForestDetector, PCADetector, RobustBaseline, Windows
from watchkeeper.sdk.anomalies import AnomalyWatch

BAR_ROWS_S = 100_000
KPIS = ["latency", "throughput", "packet_loss", "cpu", "requests"]
STATS = ["mean", "std", "max"]
STEP_S = 10.0
TRAIN_HOURS = 3.0
#: (device index, start hour, minutes, kind); all after the training part
INCIDENTS = [
    (7, 4.0, 40, "latency"),
    (42, 6.5, 30, "throughput"),
    (99, 8.0, 60, "cpu"),
    (123, 9.25, 20, "surge"),
    (150, 10.0, 120, "drift"),
    (181, 12.0, 30, "latency"),
]


def kpi_frame(devices: int, rows_per_device: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """The KPI rows sorted by time, and which rows are in an incident."""
    rng = np.random.default_rng(seed)
    n = devices * rows_per_device
    end = time.time() // 600 * 600
    t_dev = end - STEP_S * rows_per_device + STEP_S * np.arange(rows_per_device)
    t = np.tile(t_dev, devices)
    dev_idx = np.repeat(np.arange(devices), rows_per_device)
    hour = np.tile(np.arange(rows_per_device) * STEP_S / 3600.0, devices)
    daily = np.sin(2 * np.pi * hour / 24.0)  # a daily rhythm shared by all devices
    base = rng.uniform(0.8, 1.2, size=devices)[dev_idx]  # each device its own level
    latency = 20 * base + 3 * daily + 2 * rng.standard_normal(n)
    throughput = 500 * base + 60 * daily + 30 * rng.standard_normal(n)
    packet_loss = np.abs(0.002 + 0.001 * rng.standard_normal(n))
    cpu = 40 * base + 8 * daily + 4 * rng.standard_normal(n)
    requests = rng.poisson(100 * base * (1 + 0.2 * daily)).astype(np.float64)
    incident = np.zeros(n, dtype=bool)
    for d, start_h, minutes, kind in INCIDENTS:
        if d >= devices:
            continue
        rows = (dev_idx == d) & (hour >= start_h) & (hour < start_h + minutes / 60)
        incident |= rows
        k = int(rows.sum())
        if kind == "latency":
            latency[rows] += 25 + 10 * rng.standard_normal(k)
            packet_loss[rows] += 0.03
        elif kind == "throughput":
            throughput[rows] *= 0.3
        elif kind == "cpu":
            cpu[rows] = np.minimum(100.0, 95 + 3 * rng.standard_normal(k))
        elif kind == "surge":
            requests[rows] *= 4
            latency[rows] += 10
        elif kind == "drift":
            latency[rows] += np.linspace(0, 30, k)
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(t, unit="s", utc=True),
            "device_id": np.array([f"dev{i:03d}" for i in range(devices)])[dev_idx],
            "latency": latency,
            "throughput": throughput,
            "packet_loss": packet_loss,
            "cpu": cpu,
            "requests": requests,
        }
    )
    order = np.argsort(t, kind="stable")  # by time, then device: the order a live service sees
    return frame.iloc[order].reset_index(drop=True), incident[order]


def detectors() -> list[Callable[[], object]]:
    return [
        lambda: Autoencoder(hidden=(64, 32), epochs=5, seed=0),
        lambda: IsolationForestDetector(random_state=0),
        lambda: RobustBaseline(),
        lambda: PCADetector(),
    ]


def stream(aw: AnomalyWatch, chunks: list[pd.DataFrame]) -> list[pd.DataFrame]:
    out = []
    for c in chunks:
        aw.log(c)
        out.append(aw.flush())
    out.append(aw.flush(final=True))
    return out


def time_scoring(det, windows: Windows, chunks: list[pd.DataFrame]) -> tuple[float, AnomalyWatch]:
    aw = AnomalyWatch(det, windows, by="device_id", name="kpi")
    t0 = time.perf_counter()
    stream(aw, chunks)
    return time.perf_counter() - t0, aw


def time_run(det, windows: Windows, chunks: list[pd.DataFrame], tmp: Path, i: int) -> tuple[float, int]:
    """Seconds from after ``wk.init`` to the end of ``run.finish()``; checks the store afterwards."""
    uri = f"sqlite:///{tmp}/wk-{i}.db"
    run = wk.init(project="kpi-bench", name=f"stream-{i}", uri=uri, system_metrics=False)
    t0 = time.perf_counter()
    aw = run.watch_anomalies(det, windows, by="device_id", name="kpi")
    for c in chunks:
        aw.log(c)
        aw.flush()
    run.finish()
    seconds = time.perf_counter() - t0
    store = wk.Store(uri)
    try:
        stored = sum(
            len(store.signals.points_in(s.id).value)
            for s in store.signals.series("kpi-bench", subject=run.id, name="anomaly_score")
        )
    finally:
        store.close()
    if stored != aw.scored_windows:
        sys.exit(f"the store holds {stored} anomaly_score points for {aw.scored_windows} scored windows")
    return seconds, stored


def resample_features(df: pd.DataFrame) -> pd.DataFrame:
    """The anchor as the issue names it: groupby(device).resample("10min"), mean/std/max per KPI."""
    # a dict, not .agg(STATS): pandas 3.1's groupby-resample gives 90 columns (a third level) for a list
    feats = df.groupby("device_id").resample("10min", on="timestamp").agg({c: STATS for c in KPIS})
    feats.columns = [f"{c}_{s}" for c, s in feats.columns]
    return feats


def grouper_features(df: pd.DataFrame) -> pd.DataFrame:
    """The same features by one groupby on (device, 10-minute bin): the fast way to write it in pandas.
    Unlike resample it leaves out windows with no rows (this data has none)."""
    feats = df.groupby(["device_id", pd.Grouper(key="timestamp", freq="10min")])[KPIS].agg(STATS)
    feats.columns = [f"{c}_{s}" for c, s in feats.columns]
    return feats


ANCHORS = {"resample": resample_features, "grouper": grouper_features}


def time_anchor(det, df: pd.DataFrame, features: Callable[[pd.DataFrame], pd.DataFrame]) -> float:
    t0 = time.perf_counter()
    det.score(features(df))
    return time.perf_counter() - t0


def check(det, windows: Windows, df: pd.DataFrame, chunks: list[pd.DataFrame], incident_windows) -> str:
    """Streamed scores against the batch ones, the anchor's features against ours; a line of sanity."""
    aw = AnomalyWatch(det, windows, by="device_id", name="kpi")
    online = pd.concat([g for g in stream(aw, chunks) if len(g)], ignore_index=True)
    feats = windows.transform(df, by="device_id")
    want = pd.Series(det.score(feats), index=feats.index)
    idx = pd.MultiIndex.from_arrays([online["device_id"], online["window_start"]])
    if not idx.is_unique or len(online) != len(want):
        sys.exit(f"{det.name}: {len(online)} windows streamed, {len(want)} in the batch (or some twice)")
    np.testing.assert_allclose(online["score"].to_numpy(), want.loc[idx].to_numpy(), rtol=1e-9)
    for features in ANCHORS.values():
        theirs = features(df)
        theirs.index = theirs.index.set_names(["device_id", "window_start"])
        if len(theirs) != len(feats):
            sys.exit(f"the anchor {features.__name__} made {len(theirs)} windows, watchkeeper {len(feats)}")
        got = theirs.loc[feats.index, feats.columns].to_numpy()
        np.testing.assert_allclose(got, feats.to_numpy(), rtol=1e-9, atol=1e-12)
    hit = online[online["anomaly"]]
    flagged = set(zip(hit["device_id"], hit["window_start"], strict=True))
    found = len(flagged & incident_windows)
    return (
        f"{len(online):,} windows; flagged {len(flagged)}, {found} of the {len(incident_windows)} "
        f"incident windows among them"
    )


def verdict(rows_s: float) -> str:
    return "PASS" if rows_s >= BAR_ROWS_S else "MISS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 devices and 1 repeat: a smoke run")
    parser.add_argument("--devices", type=int, help="devices (default 200; quick 20)")
    parser.add_argument("--rows-per-device", type=int, default=5_000, help="rows per device, 10 s apart")
    parser.add_argument("--chunk", type=int, default=10_000, help="rows per aw.log call (default 10,000)")
    parser.add_argument("--repeats", type=int, help="repeats per measurement (default 3; quick 1)")
    args = parser.parse_args()
    devices = args.devices or (20 if args.quick else 200)
    repeats = args.repeats or (1 if args.quick else 3)

    import torch

    print(
        f"watchkeeper anomaly stream bench, {dt.date.today()}: {platform.machine()}, {os.cpu_count()} cores "
        f"(shared), Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
        f"torch {torch.__version__}"
    )
    df, incident = kpi_frame(devices, args.rows_per_device)
    n = len(df)
    chunks = [df.iloc[a : a + args.chunk] for a in range(0, n, args.chunk)]
    windows = Windows("10min", stats=STATS, time="timestamp")
    start = df["timestamp"].iloc[0]
    train = windows.transform(df[df["timestamp"] < start + pd.Timedelta(hours=TRAIN_HOURS)], by="device_id")
    bad = df.loc[incident, ["device_id", "timestamp"]]
    incident_windows = set(zip(bad["device_id"], bad["timestamp"].dt.floor("10min"), strict=True))
    print(
        f"{n:,} KPI rows: {devices} devices x {args.rows_per_device:,} rows every {STEP_S:g} s, "
        f"{len(KPIS)} KPIs, {len(INCIDENTS)} incidents; {windows!r} -> {train.shape[1]} features; "
        f"fitted on {len(train):,} windows of the first {TRAIN_HOURS:g} h; chunks of {args.chunk:,} rows; "
        f"medians of {repeats}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-anomaly-") as tmp:
        for make in detectors():
            det = make()
            with warnings.catch_warnings():
                # (64, 32) as the issue asks; its bottleneck is not narrower than the 15 features
                warnings.filterwarnings("ignore", message="Autoencoder: the bottleneck")
                t0 = time.perf_counter()
                det.fit(train)
                fit_s = time.perf_counter() - t0
            det.calibrate(train, percentile=99.5)
            sanity = check(det, windows, df, chunks, incident_windows)
            print(f"\n{det.name}: fitted in {fit_s:.1f} s; {sanity}; streamed scores = batch scores")
            secs: dict[str, list[float]] = {k: [] for k in ("scoring", "run", *ANCHORS)}
            for i in range(repeats):
                secs["scoring"].append(time_scoring(det, windows, chunks)[0])
                secs["run"].append(time_run(det, windows, chunks, Path(tmp), len(results) * repeats + i)[0])
                for key, features in ANCHORS.items():
                    secs[key].append(time_anchor(det, df, features))
            rate = {k: n / statistics.median(v) for k, v in secs.items()}
            results.append((det.name, rate))
            spread = ", ".join(f"{n / s:,.0f}" for s in secs["scoring"])
            print(f"  scoring path     {rate['scoring']:>11,.0f} rows/s  (each: {spread})")
            print(f"  through a run    {rate['run']:>11,.0f} rows/s  (SQLite, finish included)")
            print(f"  anchor resample  {rate['resample']:>11,.0f} rows/s  (groupby.resample.agg + score)")
            print(
                f"  anchor grouper   {rate['grouper']:>11,.0f} rows/s  (groupby([dev, Grouper]).agg + score)"
            )

    print(
        f"\n{'detector':17s} {'scoring':>10s} {'run':>10s} {'resample':>10s} {'grouper':>10s}  "
        f"{'ours/resample':>13s} {'ours/grouper':>12s} {'run/resample':>12s}  bar {BAR_ROWS_S:,} rows/s"
    )
    for name, r in results:
        print(
            f"{name:17s} {r['scoring']:10,.0f} {r['run']:10,.0f} {r['resample']:10,.0f} "
            f"{r['grouper']:10,.0f}  "
            f"{r['scoring'] / r['resample']:13.2f} {r['scoring'] / r['grouper']:12.2f} "
            f"{r['run'] / r['resample']:12.2f}  scoring {verdict(r['scoring'])}, run {verdict(r['run'])}"
        )
    print("(rows/s, medians; scoring = AnomalyWatch log + flush; run = through wk.init ... run.finish)")


if __name__ == "__main__":
    main()
