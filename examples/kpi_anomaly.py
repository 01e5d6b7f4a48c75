"""KPI anomaly detection end to end, as a network-operations team runs it.

    python examples/kpi_anomaly.py [--dir DIR] [--devices 12]

1. per-device KPIs (latency, throughput, packet loss, CPU, requests; one row a minute) are windowed into
   10-minute statistics (mean, std, max);
2. an autoencoder learns the normal windows of the first two days, its loss curve logged to a training run;
3. it is validated on a labelled third day: ROC AUC, the operating point's precision and recall, and the
   threshold chosen there (logged to the run);
4. the model is exported as TorchScript and loaded back without the class that trained it;
5. a fourth day streams in live through ``run.watch_anomalies``: each closed window's score becomes the
   signal ``anomaly_score``, windows above the threshold are counted and alerted;
6. an alert rule over that signal, evaluated by the alert engine, notifies a webhook (a local sink here).

Everything is written under ``--dir`` (a SQLite store, the model, the notifications); open the runs and the
signals with ``watchkeeper server --uri sqlite:///DIR/wk.db``. Needs ``pip install 'watchkeeper[torch]'``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

import watchkeeper as wk
from watchkeeper.alerting.engine import AlertEngine
from watchkeeper.anomaly import Autoencoder, Windows, load
from watchkeeper.demo import NotificationSink

DAY = 86_400
RULES = """
notifiers:
  - {name: noc, type: webhook, url: "%s"}
route: {notifiers: [noc], group_by: [alertname, entity], group_wait: 0s}
rules:
  - name: KpiAnomaly
    # any window above the threshold in the last day (a live deployment would say `anomaly{...} > 0`)
    expr: max_over_time(anomaly{detector="kpi-ae"}[1d]) > 0
    severity: warning
    annotations:
      summary: "anomalous KPIs on {{ $labels.entity }}"
"""


def simulate(devices: int, days: int, start: float, seed: int = 7) -> tuple[pd.DataFrame, list[tuple]]:
    """One row per device and minute: a daily traffic cycle drives requests, throughput and CPU, CPU drives
    latency; incidents (link congestion, a CPU runaway) from day 3 on. Returns the rows and the incidents
    (device, start, end, kind)."""
    rng = np.random.default_rng(seed)
    t = start + 60.0 * np.arange(days * 1440)
    frames, incidents = [], []
    for d in range(devices):
        load = (
            0.55 + 0.35 * np.sin(2 * np.pi * (t / DAY - 0.3 + 0.05 * d)) + 0.04 * rng.standard_normal(len(t))
        )
        requests = np.maximum(0, 400 * load + 15 * rng.standard_normal(len(t)))
        throughput = 2.1 * requests + 20 * rng.standard_normal(len(t))
        cpu = np.clip(20 + 60 * load + 3 * rng.standard_normal(len(t)), 0, 100)
        latency = 8 + 0.002 * cpu**2 + rng.gamma(2.0, 0.8, len(t))
        loss = rng.binomial(1000, 0.0005, len(t)) / 1000
        for _ in range(2):
            if rng.random() < 0.6:
                continue
            a = start + 2 * DAY + rng.integers(0, (days - 2) * 1440 - 90) * 60.0
            b = a + rng.integers(20, 80) * 60.0
            hit = (t >= a) & (t < b)
            if rng.random() < 0.5:  # congestion: loss and latency up, throughput down
                loss[hit] += rng.uniform(0.02, 0.06)
                latency[hit] *= 2.5
                throughput[hit] *= 0.6
                kind = "congestion"
            else:  # a runaway process: CPU pinned, latency up, traffic normal
                cpu[hit] = np.clip(cpu[hit] + 45, 0, 100)
                latency[hit] += 25
                kind = "cpu runaway"
            incidents.append((f"r{d:02d}", a, b, kind))
        frames.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(t, unit="s", utc=True),
                    "device_id": f"r{d:02d}",
                    "latency": latency,
                    "throughput": throughput,
                    "packet_loss": loss,
                    "cpu": cpu,
                    "requests": requests,
                }
            )
        )
    return pd.concat(frames, ignore_index=True), incidents


def window_labels(feats: pd.DataFrame, incidents: list[tuple], size: float) -> np.ndarray:
    """1 for a device's window that overlaps one of its incidents."""
    dev = feats.index.get_level_values("device_id")
    s = feats.index.get_level_values("window_start").astype("int64").to_numpy() / 1e9
    y = np.zeros(len(feats), dtype=int)
    for device, a, b, _ in incidents:
        y[(dev == device) & (s < b) & (s + size > a)] = 1
    return y


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=None, help="where to write (default: a new temporary folder)")
    ap.add_argument("--devices", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args(argv)
    out = args.dir or Path(tempfile.mkdtemp(prefix="wk-kpi-"))
    out.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{out / 'wk.db'}"

    # the fourth day ends now, so the live signals are fresh for the alert rule
    start = (time.time() // 600) * 600 - 4 * DAY
    kpis, incidents = simulate(args.devices, 4, start)
    windows = Windows("10min", stats=["mean", "std", "max"])
    feats = windows.transform(kpis, by="device_id")
    print(
        f"1. {len(kpis):,} KPI rows of {args.devices} devices -> {len(feats):,} windows x {feats.shape[1]} "
        f"features ({windows.report})"
    )
    labels = window_labels(feats, incidents, 600)
    day = (feats.index.get_level_values("window_start").astype("int64").to_numpy() / 1e9 - start) // DAY
    train, val = (day < 2) & (labels == 0), day == 2

    run = wk.init(
        project="netops",
        name="kpi-ae-train",
        job_type="train",
        uri=uri,
        system_metrics=False,
        config={"windows": repr(windows), "train_days": 2},
    )
    det = Autoencoder(hidden=(32, 8), epochs=args.epochs, seed=0).fit(feats[train], run=run)
    h = det.history
    print(
        f"2. autoencoder trained on {int(train.sum())} normal windows: loss {h[0]['train_loss']:.4f} -> "
        f"{h[-1]['train_loss']:.4f} over {len(h)} epochs (logged to run {run.name})"
    )
    cal = det.calibrate(feats[val], labels=labels[val], run=run)
    print(f"3. validation on day 3 ({int(labels[val].sum())} anomalous windows of {int(val.sum())}): {cal}")
    model_path = det.save(out / "kpi-ae.pt")
    run.finish()
    scripted = load(model_path)
    print(
        f"4. exported {model_path.name} (TorchScript); loaded back: threshold {scripted.threshold:.4g}, "
        f"{len(scripted.columns)} input columns"
    )

    live = wk.init(
        project="netops",
        name="kpi-live",
        job_type="serve",
        model="kpi-ae",
        version="1",
        uri=uri,
        system_metrics=False,
    )
    aw = live.watch_anomalies(scripted, windows, by="device_id", name="kpi-ae")
    day4 = kpis[kpis["timestamp"] >= pd.Timestamp(start + 3 * DAY, unit="s", tz="UTC")].sort_values(
        "timestamp"
    )
    scored = []
    for _, chunk in day4.groupby(day4["timestamp"].dt.floor("5min")):  # five minutes of traffic at a time
        aw.log(chunk)
        scored.append(aw.flush())
    scored.append(aw.flush(final=True))
    live.finish()
    scored = pd.concat([s for s in scored if len(s)], ignore_index=True)
    day4_incidents = [i for i in incidents if i[1] >= start + 3 * DAY]
    found = {
        (dev, a)
        for dev, a, b, _ in day4_incidents
        for _, r in scored[scored["anomaly"] & (scored["device_id"] == dev)].iterrows()
        if r["window_start"].timestamp() < b and r["window_end"].timestamp() > a
    }
    print(
        f"5. day 4 live: {len(scored)} windows scored, {int(scored['anomaly'].sum())} above the threshold; "
        f"{len(found)} of {len(day4_incidents)} incidents found"
    )

    sink = NotificationSink(out / "notifications.jsonl").start()
    store = wk.Store(uri)
    try:
        rules = out / "rules.yml"
        rules.write_text(RULES % sink.url)
        engine = AlertEngine(store)
        problems = engine.load(rules)
        if problems:
            raise SystemExit(f"rules: {problems}")
        engine.evaluate()
        engine.flush(10)
        engine.close()
        run_alerts = [a.title for a in store.alerts.run_alerts(0)]
    finally:
        store.close()
        sink.close()
    lines = (
        [json.loads(x) for x in (out / "notifications.jsonl").read_text().splitlines()]
        if sink.received
        else []
    )
    entities = sorted(
        {
            a["labels"]["entity"]
            for n in lines
            for a in n.get("alerts", [])
            if a["labels"].get("alertname") == "KpiAnomaly"
        }
    )
    print(
        f"6. alert rule KpiAnomaly notified the webhook for {entities or 'no device'}; run.alert sent "
        f"{len(run_alerts)} alert(s); everything is in {out}"
    )
    return {
        "auc": cal.auc,
        "threshold": cal.threshold,
        "scored": len(scored),
        "flagged": int(scored["anomaly"].sum()),
        "incidents": len(day4_incidents),
        "found": len(found),
        "notified": entities,
        "run_alerts": run_alerts,
        "dir": str(out),
    }


if __name__ == "__main__":
    main()
