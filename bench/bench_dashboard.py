"""How fast the web dashboard's pages get their data: every data route a page loads, timed through a real
``watchkeeper server`` over 30 days of 1-minute windows of one model with 25 features, beside the same
series in a real Prometheus queried the way a Grafana panel would.

The bar (issue): each page's data loads in under 300 ms at p95 for 30 days of 1-minute windows of one model
with 25 features. Printed: per route and range (1h, 24h, 7d, 30d), the first (cold) request and then p50,
p95 and max over ``--repeats`` requests, with PASS or MISS against 300 ms at p95; then per page (overview,
drift) and range, our p95 over Prometheus' p95.

Run: ``.venv/bin/python bench/bench_dashboard.py`` (the first run builds the data and the TSDB, 15-35 minutes
on a shared 2-core machine, cached under ``--data-dir``; later runs take about 10 minutes). ``--quick`` is a
smoke run over 3 days of data with fewer repeats (about 6 minutes, its data cached too); ``--store
postgresql+psycopg://postgres@127.0.0.1:5432/<db>`` builds (once) and times a PostgreSQL database instead of
the SQLite file. The exit code is 0 whether or not the bar is met, non-zero when the benchmark breaks.

**The data** (:func:`build`), written through ``Store.write(Batch(...))`` in batches of a few hours of
windows, so the store keeps its roll-ups (``watchkeeper.store.signals``) as it does in production: project
``payments``, model ``fraud-clf``, version 1 and version 2 (the challenger, at a quarter of the traffic). Per
version and 1-minute window, at the window's end as the monitors write them, every signal the monitors
derive for a classifier with 25 features (``watchkeeper.monitor.catalogue``): request rate and count,
latency p50/p95/p99/mean/max, error rate and count, each in total and for the endpoint ``predict``; the
error rate per error type (2 types); per feature the drift score, p-value and decision, missing rate and
type-change rate; the share of drifted features and the dataset decision; per output the prediction mean
and positive rate, class shares, confidence mean and quartiles, low-confidence rate; accuracy with its
Wilson interval, precision, recall, F1, ROC AUC with its interval, the training baselines and the drops,
labelled rows; label delay and label drift; model and reference age: 186 series and 30 x 1,440 points each,
8.0M points per version. Values are random walks with a daily cycle of traffic, two latency and error
incidents, and drift of 7 features in the last week (accuracy falling with it).

Window *profiles* of 30 days would be 43,200 x 2 profiles of about 40 KiB (several GB), so real window
profiles (with sampled request rows, predictions and late labels) are written only for the last
``--profile-hours`` (48) by ``watchkeeper.simulate`` with 25 features, beside both versions' training runs
and reference profiles: the distribution route merges a bounded number of window profiles anyway, and no
other route reads them. Two more training runs log 5 curves x 10,000 steps each (the runs page's
comparison). Alerts: 4 rules, a firing and a pending instance, 400 state changes spread over the 30 days
and 100 notifications.

**The timing** (:func:`time_routes`): ``watchkeeper server --no-monitor --no-auth`` over that store, on
127.0.0.1, as a subprocess. The routes are every ``GET /api/v1/views/*`` route found in the server's
``/openapi.json`` at run time (so pages added later are timed too), plus the query routes pages load
(``/api/v1/samples``, ``/alerts``, ``/alerts/history``, ``/alerts/notifications``, ``/silences``,
``/runs``, ``/projects``); required parameters are filled from their names (``project=payments``,
``model=fraud-clf``, ``version=1``, ``a=1``, ``b=2``, ``feature=amount``, ``ids``/``run_id`` = the long
training runs, ``subject``), and a route with a required parameter it cannot fill is listed as skipped.
Ranges end at the newest window; a route without ``start``/``end`` is timed once. Per route and range: one
cold request (the first this server process answers for it), one warm-up, then ``--repeats`` rounds, each
round visiting every (route, range) once so that the machine's noise spreads over all of them. Times are
the client's: request sent to body read (httpx, keep-alive).

**The anchor** (:func:`prometheus_anchor`): the same points of version 1 written as an OpenMetrics file
(gauges ``watchkeeper_<signal>`` with labels ``project``, ``model``, ``version`` and the signal's own),
backfilled with ``promtool tsdb create-blocks-from openmetrics`` into a TSDB directory (cached beside the
data) and served by ``prometheus --storage.tsdb.path <it> --storage.tsdb.retention.time=400d`` on
127.0.0.1. A page load is the ``/api/v1/query_range`` requests a Grafana dashboard of the same panels
makes, one per panel query, at the same step as our answer: for the overview, ``avg_over_time`` (or
``max_over_time`` where our page shows the worst window) of each of its signals; for the drift heatmap,
``max_over_time(watchkeeper_drift_score{...}[step])`` over the 25 features. The requests of a load are
sent one after the other and timed together (Grafana sends them in parallel; on 2 shared cores that gains
little); the ratio printed is our p95 over Prometheus' p95 per page and range (below 1: we are faster).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT, MODEL = "payments", "fraud-clf"
FEATURES = 25
WINDOW = 60
BAR_MS = 300.0
BUILD_FORMAT = 1  # bump when the data written changes, so cached stores are rebuilt
RANGES = {"1h": 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
QUERY_ROUTES = (
    "/api/v1/samples",
    "/api/v1/alerts",
    "/api/v1/alerts/history",
    "/api/v1/alerts/notifications",
    "/api/v1/silences",
    "/api/v1/runs",
    "/api/v1/projects",
)
"""Query routes the pages load besides their own ``/api/v1/views/*`` route."""
DRIFTING = ("amount", "merchant_category", "account_age_days", "card_present", "txn_count_24h", "f11", "f21")
"""The features whose drift scores rise in the last week (those ``watchkeeper.simulate`` drifts)."""
CURVES = ("train/loss", "val/loss", "val/accuracy", "val/roc_auc", "lr")
CURVE_STEPS = 10_000


# --- the signals of one version ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Series:
    name: str
    labels: dict[str, str]
    values: Any  # numpy float64 array, one value per window


def feature_names(n: int = FEATURES) -> list[str]:
    from watchkeeper.simulate import Scenario

    return Scenario(start=0.0, end=60.0, features=n).feature_names


def wilson(p: Any, n: Any, z: float = 1.96) -> tuple[Any, Any]:
    """The 95% Wilson score interval of a proportion ``p`` of ``n`` trials (Wilson 1927), as the
    performance monitor computes it."""
    import numpy as np

    n = np.maximum(n, 1)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def version_signals(ends: Any, version: str, seed: int) -> list[Series]:
    """Every series the monitors write for one version, one value per window ending at ``ends``."""
    import numpy as np

    rng = np.random.default_rng(seed + int(version))
    n = len(ends)
    span = ends[-1] - ends[0] + WINDOW
    frac = (ends - ends[0]) / span

    def walk(scale: float) -> Any:
        """A mean-reverting random walk around 0 (an AR(1) with coefficient 0.995)."""
        e = rng.normal(0.0, scale, n)
        out = np.empty(n)
        x = 0.0
        for i in range(n):  # 43,200 steps: a few ms per series
            x = 0.995 * x + e[i]
            out[i] = x
        return out

    share = 0.8 if version == "1" else 0.2
    tod = (ends % 86400) / 86400
    cycle = 1 + 0.5 * np.sin(2 * np.pi * (tod - 0.3))
    rate = np.maximum(0.05, 2.0 * share * cycle * np.exp(walk(0.01)))
    requests = rng.poisson(rate * WINDOW).astype(np.float64)
    rate = requests / WINDOW
    incident = ((frac >= 0.40) & (frac < 0.403)) | ((frac >= 0.92) & (frac < 0.922))
    drift = (
        np.clip((frac - (1 - 7 * 86400 / span)) / 0.05, 0, 1)
        if span > 7 * 86400
        else np.clip((frac - 0.55) / 0.08, 0, 1)
    )
    base = 22.0 if version == "1" else 30.0
    p50 = base * np.exp(walk(0.01)) * np.where(incident, 5.0, 1.0)
    p95 = p50 * (1.8 + 0.1 * np.abs(rng.standard_normal(n)))
    p99 = p95 * (1.3 + 0.2 * np.abs(rng.standard_normal(n)))
    lat_max = p99 * (1.2 + np.abs(rng.standard_normal(n)))
    lat_mean = p50 * 1.08
    p_err = np.where(incident, 0.06, 0.003)
    errors = rng.binomial(requests.astype(np.int64), p_err).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        error_rate = np.where(requests > 0, errors / requests, np.nan)
    timeouts = rng.binomial(errors.astype(np.int64), np.where(incident, 0.9, 0.2)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        timeout_rate = np.where(requests > 0, timeouts / requests, np.nan)
    ops = {
        "request_rate": rate,
        "requests": requests,
        "latency_p50_ms": p50,
        "latency_p95_ms": p95,
        "latency_p99_ms": p99,
        "latency_mean_ms": lat_mean,
        "latency_max_ms": lat_max,
        "error_rate": error_rate,
        "errors": errors,
    }
    out: list[Series] = []
    for labels in ({}, {"endpoint": "predict"}):
        out += [Series(name, labels, v) for name, v in ops.items()]
        for kind, v in (("UpstreamTimeout", timeout_rate), ("ValueError", error_rate - timeout_rate)):
            out.append(Series("error_type_rate", {**labels, "error_type": kind}, v))
    # drift, per feature, against the reference
    detected = []
    for j, feature in enumerate(feature_names()):
        target = (0.15 + 0.05 * j % 0.35) if feature in DRIFTING else 0.0
        score = np.abs(0.03 + walk(0.002) + 0.01 * rng.standard_normal(n)) + target * drift
        p_value = np.clip(np.exp(-40 * score) * 3.0, 0.0, 1.0)
        hit = (p_value < 0.05).astype(np.float64)
        detected.append(hit)
        missing = np.clip(0.002 * (j % 3) + 0.001 * rng.standard_normal(n), 0, 1)
        labels = {"feature": feature}
        out += [
            Series("drift_score", labels, score),
            Series("drift_p_value", labels, p_value),
            Series("drift_detected", labels, hit),
            Series("missing_rate", labels, missing),
            Series("type_change_rate", labels, np.zeros(n)),
        ]
    drift_share = np.mean(detected, axis=0)
    out += [
        Series("dataset_drift_share", {}, drift_share),
        Series("dataset_drift", {}, (drift_share >= 0.5).astype(np.float64)),
    ]
    # predictions
    positive = np.clip(0.05 + 0.04 * drift + 0.005 * walk(0.05), 0, 1)
    conf = np.clip(0.86 - 0.05 * drift + walk(0.002), 0, 1)
    out += [
        Series("prediction_mean", {"output": "score"}, positive * 1.4),
        Series("prediction_mean", {"output": "label"}, positive),
        Series("positive_rate", {"output": "score"}, positive * 0.9),
        Series("positive_rate", {"output": "label"}, positive),
        Series("class_share", {"output": "label", "class": "0"}, 1 - positive),
        Series("class_share", {"output": "label", "class": "1"}, positive),
        Series("confidence_mean", {"output": "score"}, conf),
        Series("confidence_p25", {"output": "score"}, conf - 0.12),
        Series("confidence_p50", {"output": "score"}, conf + 0.03),
        Series("confidence_p75", {"output": "score"}, np.minimum(conf + 0.1, 1)),
        Series("low_confidence_rate", {"output": "score"}, np.clip(0.08 + 0.1 * drift - walk(0.002), 0, 1)),
    ]
    # performance, once labels arrive (30 to 90 minutes late: the newest windows have few or none)
    age = ends[-1] - ends
    label_share = np.clip((age - 1800) / 3600, 0, 1) * 0.8
    labelled = np.floor(requests * label_share)
    accuracy = np.clip(0.965 - 0.06 * drift + walk(0.002), 0, 1)
    lo, hi = wilson(accuracy, labelled)
    auc = np.clip(0.93 - 0.08 * drift + walk(0.002), 0, 1)
    f1 = np.clip(0.71 - 0.15 * drift + walk(0.004), 0, 1)
    none = labelled == 0
    perf = {
        "accuracy": accuracy,
        "accuracy_ci_low": lo,
        "accuracy_ci_high": hi,
        "precision": np.clip(f1 + 0.05, 0, 1),
        "recall": np.clip(f1 - 0.05, 0, 1),
        "f1": f1,
        "roc_auc": auc,
        "roc_auc_ci_low": auc - 1.96 * 0.3 / np.sqrt(np.maximum(labelled, 1)),
        "roc_auc_ci_high": np.minimum(1, auc + 1.96 * 0.3 / np.sqrt(np.maximum(labelled, 1))),
        "accuracy_baseline": np.full(n, 0.962),
        "accuracy_drop": 0.962 - accuracy,
        "f1_baseline": np.full(n, 0.71),
        "f1_drop": 0.71 - f1,
        "roc_auc_baseline": np.full(n, 0.93),
        "roc_auc_drop": 0.93 - auc,
    }
    out += [Series(name, {}, np.where(none, np.nan, v)) for name, v in perf.items()]
    out.append(Series("labelled_rows", {}, labelled))
    # ground truth
    pending = 1 - label_share
    fraud = np.clip(0.05 + 0.05 * drift + 0.005 * rng.standard_normal(n), 0, 1)
    label_drift = np.abs(0.01 + 0.02 * drift + 0.005 * rng.standard_normal(n))
    out += [
        Series("label_pending_rate", {}, pending),
        Series("labelled_share", {}, label_share),
        Series("label_class_share", {"class": "0"}, 1 - fraud),
        Series("label_class_share", {"class": "1"}, fraud),
        Series("label_drift_score", {}, label_drift),
        Series("label_drift_p_value", {}, np.clip(np.exp(-200 * label_drift), 0, 1)),
        Series("label_drift_detected", {}, (label_drift > 0.03).astype(np.float64)),
        Series("model_age_seconds", {}, ends - ends[0] + 3 * 86400.0),
        Series("reference_age_seconds", {}, ends - ends[0] + 3 * 86400.0),
        Series("dropped_calls", {}, np.zeros(n)),
    ]
    return out


def write_signals(store: Any, subject: str, ends: Any, series: list[Series], chunk: int) -> int:
    """Write ``series`` in batches of ``chunk`` windows, one ``Points`` per label set, as subject series
    (``run_id`` None), so ``Store.write`` maintains their roll-ups; the number of points written."""
    import numpy as np

    from watchkeeper.store import Batch
    from watchkeeper.store.batch import Points
    from watchkeeper.store.signals import labels_key

    groups: dict[str, list[Series]] = {}
    for s in series:
        groups.setdefault(labels_key(s.labels), []).append(s)
    written = 0
    for i0 in range(0, len(ends), chunk):
        t = ends[i0 : i0 + chunk]
        batch = Batch()
        for members in groups.values():
            names = [s.name for s in members for _ in range(len(t))]
            values = np.concatenate([s.values[i0 : i0 + chunk] for s in members]).tolist()
            times = np.tile(t, len(members)).tolist()
            batch.points.append(
                Points(PROJECT, subject, names, [None] * len(names), times, values, None, members[0].labels)
            )
            written += len(names)
        store.write(batch)
    return written


# --- the store ---------------------------------------------------------------------------------------------


def params_of(cfg: argparse.Namespace) -> dict[str, Any]:
    """What the data depends on: a cached store is reused only when these are equal."""
    return {
        "format": BUILD_FORMAT,
        "days": cfg.days,
        "profile_hours": cfg.profile_hours,
        "features": FEATURES,
        "seed": cfg.seed,
    }


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]


META_KEY = "bench_dashboard"
"""The store cursor (``store.alerts.cursor``) holding what was built: its parameters, end and run ids."""


def built_meta(uri: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """What an earlier build of these parameters wrote into ``uri``, or None."""
    from watchkeeper.store import Store

    try:
        with Store(uri, create=False) as store:
            meta = store.alerts.cursor(META_KEY)
    except Exception as exc:  # no store, or one on an older schema (a migration added since): rebuild
        print(f"no cached data at {uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", flush=True)
        return None
    if isinstance(meta, dict) and meta.get("params") == params and meta.get("complete"):
        return meta
    return None


def build(uri: str, params: dict[str, Any]) -> dict[str, Any]:
    """Write the data set into the empty store at ``uri`` (see the module docstring); its metadata."""
    import numpy as np

    from watchkeeper.simulate import Scenario, simulate
    from watchkeeper.store import Store
    from watchkeeper.store.profiles import model_subject

    days, seed = params["days"], params["seed"]
    end = float(math.floor(time.time() / 3600) * 3600)  # the newest window ends on an hour
    ends = end - np.arange(days * 1440)[::-1] * float(WINDOW)
    meta: dict[str, Any] = {"params": params, "end": end, "start": end - days * 86400.0, "points": 0}
    t0 = time.perf_counter()
    with Store(uri) as store:
        for version in ("1", "2"):
            t1 = time.perf_counter()
            series = version_signals(ends, version, seed)
            n = write_signals(store, model_subject(MODEL, version), ends, series, chunk=180)
            meta["points"] += n
            meta["series"] = len(series)
            print(
                f"  version {version}: {len(series)} series, {n:,} points in "
                f"{time.perf_counter() - t1:.0f} s",
                flush=True,
            )
        t1 = time.perf_counter()
        hours = params["profile_hours"]
        sim = simulate(
            store,
            Scenario(start=end - hours * 3600.0, end=end, features=FEATURES, seed=seed),
            monitor=False,
        )
        print(
            f"  window profiles of the last {hours} h: {sim.windows:,} profiles, {sim.requests:,} requests, "
            f"{sim.labels:,} labels, in {time.perf_counter() - t1:.0f} s",
            flush=True,
        )
        meta["training_runs"] = sim.training_runs
        meta["profiles"] = sim.windows
        meta["long_runs"] = long_training_runs(store, end - 5 * 86400.0, seed)
        alert_history(store, end - days * 86400.0, end)
        meta["complete"] = True
        meta["build_seconds"] = time.perf_counter() - t0
        store.alerts.set_cursor(META_KEY, meta)
    return meta


def long_training_runs(store: Any, t: float, seed: int) -> list[str]:
    """Two training runs of a learning-rate sweep, 5 curves x ``CURVE_STEPS`` steps each; their ids."""
    import numpy as np

    from watchkeeper.store import Batch, RunStart, RunUpdate
    from watchkeeper.store.batch import Points

    rng = np.random.default_rng(seed + 7)
    ids = []
    for k, lr in enumerate((0.1, 0.03)):
        run_id = f"sweep-lr-{lr:g}-{uuid.uuid4().hex[:8]}"
        steps = np.arange(CURVE_STEPS)
        loss = 0.08 + 0.6 * np.exp(-steps / (1500 * (k + 1))) + 0.01 * rng.standard_normal(CURVE_STEPS)
        curves = {
            "train/loss": loss,
            "val/loss": loss * 1.07 + 0.005 * np.abs(rng.standard_normal(CURVE_STEPS)),
            "val/accuracy": 0.97 - 0.5 * np.exp(-steps / 1200) + 0.003 * rng.standard_normal(CURVE_STEPS),
            "val/roc_auc": 0.93 - 0.4 * np.exp(-steps / 1000) + 0.003 * rng.standard_normal(CURVE_STEPS),
            "lr": lr * 0.5 ** (steps / 4000),
        }
        times = (t + k * 3600 + steps * 0.3).tolist()
        names = [name for name in CURVES for _ in steps]
        store.write(
            Batch(
                runs=[
                    RunStart(
                        run_id,
                        PROJECT,
                        f"sweep-lr-{lr:g}",
                        t + k * 3600,
                        job_type="train",
                        tags=["sweep"],
                        config={"learning_rate": lr, "batch_size": 256, "epochs": 40, "optimizer": "adamw"},
                        model=MODEL,
                    )
                ],
                points=[
                    Points(
                        PROJECT,
                        run_id,
                        names,
                        [int(s) for _ in CURVES for s in steps],
                        times * len(CURVES),
                        np.concatenate([curves[c] for c in CURVES]).tolist(),
                        run_id,
                    )
                ],
                run_updates=[
                    RunUpdate(
                        run_id,
                        status="finished",
                        ended_at=times[-1],
                        summary={"val/accuracy": float(curves["val/accuracy"][-1])},
                        last_step=CURVE_STEPS - 1,
                    )
                ],
            )
        )
        ids.append(run_id)
    return ids


ALERT_RULES = (
    ("HighP99Latency", "latency_p99_ms > 250", "page"),
    ("ErrorRate", "error_rate > 0.02", "page"),
    ("FeatureDrift", "dataset_drift_share > 0.2", "warning"),
    ("AccuracyDrop", "accuracy_drop > 0.03", "warning"),
)


EPISODE = (
    (0, "inactive", "pending", 1.0),
    (300, "pending", "firing", 1.2),
    (1800, "firing", "resolved", None),
    (2700, "resolved", "inactive", None),
)
"""An alert episode: (seconds after its start, from state, to state, the expression's value)."""


def alert_history(store: Any, start: float, end: float, episodes: int = 100) -> None:
    """4 rules, ``episodes`` alert episodes (pending, firing, resolved, inactive: 4 state changes each)
    spread over ``[start, end)``, a notification per episode, and two open alerts (one firing, one
    pending)."""
    from watchkeeper.store.alerts import AlertEvent, AlertState
    from watchkeeper.store.signals import labels_key

    specs = [
        (
            PROJECT,
            name,
            {
                "expr": expr,
                "for": 300.0,
                "keep_firing_for": 0.0,
                "severity": severity,
                "labels": {},
                "annotations": {"summary": f"{name} on {{{{ $labels.model }}}}"},
                "lookback": 300.0,
            },
        )
        for name, expr, severity in ALERT_RULES
    ]
    ids = store.alerts.sync_rules(specs, now=start)
    events = []
    span = end - start
    for k in range(episodes):
        name, _, severity = ALERT_RULES[k % len(ALERT_RULES)]
        labels = {"project": PROJECT, "model": MODEL, "version": "1" if k % 3 else "2", "severity": severity}
        t = start + (k + 0.5) * span / episodes
        rule_id = ids[(PROJECT, name)]
        for dt, a, b, v in EPISODE:
            events.append(AlertEvent(rule_id, name, PROJECT, labels_key(labels), labels, a, b, t + dt, v))
        store.alerts.log_notification(
            rule_id=rule_id,
            group_key=labels_key(labels),
            notifier="slack",
            t=t + 300,
            status="sent" if k % 10 else "failed",
            payload={"alerts": [{"rule": name, "labels": labels, "state": "firing"}], "group_labels": labels},
            error=None if k % 10 else "HTTP 503 from hooks.slack.com",
        )
    store.alerts.log_events(events)
    open_states = []
    for name, state in (("HighP99Latency", "firing"), ("FeatureDrift", "pending")):
        labels = {"project": PROJECT, "model": MODEL, "version": "1"}
        open_states.append(
            AlertState(
                ids[(PROJECT, name)],
                labels_key(labels),
                labels,
                state=state,
                active_at=end - 1200,
                fired_at=end - 900 if state == "firing" else None,
                last_value=310.0 if state == "firing" else 0.28,
            )
        )
    store.alerts.save(open_states)


def pg_admin_uri(uri: str) -> str:
    import sqlalchemy as sa

    return sa.engine.make_url(uri).set(database="postgres").render_as_string(hide_password=False)


def ensure_store(cfg: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(the store's URI, its metadata): the cached build when there is one with these parameters, else a new
    build (the SQLite file replaced; a PostgreSQL database created, or refused when it holds other data)."""
    params = params_of(cfg)
    if cfg.store and not cfg.store.startswith("sqlite"):
        uri = cfg.store
        meta = built_meta(uri, params)
        if meta is not None:
            return uri, meta
        import sqlalchemy as sa

        name = sa.engine.make_url(uri).database
        admin = sa.create_engine(pg_admin_uri(uri), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            ).first()
            if exists:
                from watchkeeper.store import Store

                with Store(uri) as store, store.connect() as c2:
                    from watchkeeper.store.schema import points

                    if c2.execute(sa.select(points.c.series_id).limit(1)).first() is not None:
                        raise SystemExit(
                            f"--store: database {name!r} holds data that this benchmark did not build with "
                            f'these parameters; drop it (DROP DATABASE "{name}") or name another'
                        )
            else:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        path = Path(cfg.data_dir) / f"dashboard-{cfg.days}d-{params_hash(params)}.db"
        uri = cfg.store or f"sqlite:///{path}"
        meta = built_meta(uri, params) if (cfg.store or path.exists()) else None
        if meta is not None:
            return uri, meta
        if not cfg.store:
            path.parent.mkdir(parents=True, exist_ok=True)
            for p in path.parent.glob(path.name + "*"):
                p.unlink()
    print(f"building the data into {uri} (once; cached for later runs) ...", flush=True)
    return uri, build(uri, params)


# --- the server --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1.0) as r:
            if r.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn and prometheus both shut down cleanly on it
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def watchkeeper_server(uri: str, work: Path) -> Iterator[str]:
    """``watchkeeper server --no-monitor --no-auth`` over ``uri`` on a free port; yields its URL."""
    script = Path(sys.executable).with_name("watchkeeper")
    cmd = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from watchkeeper.cli import main; main()"]
    )
    port = free_port()
    cmd += ["server", "--host", "127.0.0.1", "--port", str(port), "--uri", uri, "--no-auth", "--no-monitor"]
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHKEEPER_URI", "WATCHKEEPER_TOKEN")}
    log = work / "server.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=work)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/api/v1/health", proc, log, "the watchkeeper server")
            yield url
        finally:
            stop(proc)


# --- the routes a page loads -------------------------------------------------------------------------------


@dataclass
class Route:
    path: str
    params: dict[str, Any]  # fixed parameters (not start/end)
    ranged: bool  # takes start and end
    skipped: str = ""  # why it is not timed
    label: str = ""  # how it is printed, when not by its path (one part of a route's answer)

    @property
    def name(self) -> str:
        return self.label or self.path


def fill(name: str, schema: dict[str, Any], meta: dict[str, Any]) -> Any:
    """The value of a parameter called ``name``, or None when the name says nothing we know."""
    runs = meta["long_runs"]
    many = schema.get("type") == "array" or any(s.get("type") == "array" for s in schema.get("anyOf", []))
    known: dict[str, Any] = {
        "project": PROJECT,
        "model": MODEL,
        "version": "1",
        "a": "1",
        "b": "2",
        "version_a": "1",
        "version_b": "2",
        "champion": "1",
        "challenger": "2",
        "feature": "amount",
        "subject": f"model:{MODEL}@1",
        "run_id": runs[0],
        "run": runs[0],
        "route": "predict",
        "endpoint": "predict",
        "key": "samples/predict",
    }
    if name in ("ids", "runs", "run_ids"):
        return list(runs) if many else ",".join(runs)
    if name in ("t", "at", "window", "window_start"):
        return meta["end"] - 30 * WINDOW
    return known.get(name)


PAGE_PARAMS = frozenset(
    (
        "project",
        "model",
        "version",
        "a",
        "b",
        "version_a",
        "version_b",
        "feature",
        "subject",
        "ids",
        "run_ids",
    )
)
"""The optional parameters a page passes when a route takes them (the deployment, the versions compared,
the feature, the runs); other optional parameters keep their defaults, as the pages leave them."""


def discover(url: str, meta: dict[str, Any]) -> list[Route]:
    """Every ``GET /api/v1/views/*`` route of the server's OpenAPI schema and the query routes pages load,
    with their parameters filled (see :func:`fill`)."""
    import httpx

    schema = httpx.get(f"{url}/openapi.json", timeout=30).json()
    out = []
    for path, ops in sorted(schema["paths"].items()):
        if "get" not in ops or not (path.startswith("/api/v1/views/") or path in QUERY_ROUTES):
            continue
        params: dict[str, Any] = {}
        names = set()
        missing = []
        for p in ops["get"].get("parameters", []):
            name = p["name"]
            names.add(name)
            if name in ("start", "end") or p.get("in") not in ("query", "path"):
                continue
            wanted = p.get("required") or name in PAGE_PARAMS
            value = fill(name, p.get("schema", {}), meta) if wanted else None
            if value is not None and p.get("in") == "path":
                path = path.replace("{" + name + "}", str(value))
            elif value is not None:
                params[name] = value
            elif p.get("required"):
                missing.append(name)
        route = Route(path, params, {"start", "end"} <= names)
        if missing:
            route.skipped = f"required parameter(s) {', '.join(missing)}: no value known for the name"
        out.append(route)
        # a page that loads its answer in parts at once (the compare page: panels and drift) waits for the
        # slowest part, not for the whole answer: each part is timed too
        for p in ops["get"].get("parameters", []):
            parts = p.get("schema", {}).get("enum", []) if p["name"] == "part" else []
            for v in parts:
                if v != "all":
                    part = Route(path, {**params, "part": v}, route.ranged, route.skipped, f"{path}?part={v}")
                    out.append(part)
    return out


def percentile(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` by the nearest rank (p95 of 30 requests: the 29th fastest)."""
    s = sorted(xs)
    return s[max(0, math.ceil(q * len(s)) - 1)]


def time_routes(
    url: str, routes: list[Route], ranges: dict[str, tuple[float, float]], repeats: int
) -> tuple[dict[tuple[str, str], dict[str, Any]], dict[tuple[str, str], int]]:
    """(per (route, range): cold ms, times ms, status and bytes; the step of each (route, range) answer)."""
    import httpx

    cases = []
    for r in routes:
        if r.skipped:
            continue
        for label, (start, end) in ranges.items() if r.ranged else [("-", (0.0, 0.0))]:
            params = dict(r.params)
            if r.ranged:
                params |= {"start": start, "end": end}
            cases.append(((r.name, label), (r.path, params)))
    results: dict[tuple[str, str], dict[str, Any]] = {}
    steps: dict[tuple[str, str], int] = {}
    with httpx.Client(base_url=url, timeout=120) as client:

        def get(path: str, params: dict[str, Any]) -> tuple[float, httpx.Response]:
            t0 = time.perf_counter()
            resp = client.get(path, params=params)
            resp.read()
            return (time.perf_counter() - t0) * 1e3, resp

        for key, (path, params) in cases:  # cold: the first request of each, then one warm-up
            ms, resp = get(path, params)
            results[key] = {"cold": ms, "ms": [], "status": resp.status_code, "bytes": len(resp.content)}
            if resp.status_code == 200:
                with contextlib.suppress(ValueError, AttributeError):
                    body = resp.json()
                    if isinstance(body, dict) and isinstance(body.get("step"), int):
                        steps[key] = body["step"]
            else:
                results[key]["error"] = resp.text[:300]
            get(path, params)
        for _ in range(repeats):
            for key, (path, params) in cases:
                if results[key]["status"] == 200:
                    results[key]["ms"].append(get(path, params)[0])
    return results, steps


# --- the anchor: the same series in Prometheus -------------------------------------------------------------


def prom_selector(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


def write_openmetrics(meta: dict[str, Any], out: Path) -> tuple[list[Path], int]:
    """Version 1's points (regenerated from the same seed and window ends: the values written to the
    store), one OpenMetrics file per day (a file spanning a month would be parsed once per 2-hour block by
    promtool); (the files, the samples written). NaN points are left out, as the store keeps them out of
    every aggregate."""
    import numpy as np

    days = meta["params"]["days"]
    end = meta["end"]
    ends = end - np.arange(days * 1440)[::-1] * float(WINDOW)
    series = version_signals(ends, "1", meta["params"]["seed"])
    base = {"project": PROJECT, "model": MODEL, "version": "1"}
    by_name: dict[str, list[Series]] = {}
    for s in series:
        by_name.setdefault(s.name, []).append(s)
    files, samples = [], 0
    per_day = 1440
    for d in range(days):
        path = out / f"day-{d:03d}.om"
        with open(path, "w") as f:
            for name, members in by_name.items():
                f.write(f"# TYPE watchkeeper_{name} gauge\n")
                for s in members:
                    prefix = f"watchkeeper_{name}{prom_selector({**base, **s.labels})} "
                    t = ends[d * per_day : (d + 1) * per_day]
                    v = s.values[d * per_day : (d + 1) * per_day]
                    ok = ~np.isnan(v)
                    lines = [
                        f"{prefix}{x!r} {int(ts)}\n"
                        for x, ts in zip(v[ok].tolist(), t[ok].tolist(), strict=True)
                    ]
                    samples += len(lines)
                    f.write("".join(lines))
            f.write("# EOF\n")
        files.append(path)
    return files, samples


def block_count(tsdb: Path) -> int:
    return sum(1 for p in tsdb.iterdir() if p.is_dir() and (p / "meta.json").exists())


@contextlib.contextmanager
def prometheus(tsdb: Path, work: Path) -> Iterator[str]:
    """A real Prometheus over ``tsdb`` on 127.0.0.1 (no scrape targets); yields its URL."""
    config = work / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1m\nscrape_configs: []\n")
    port = free_port()
    cmd = [
        shutil.which("prometheus") or "prometheus",
        f"--config.file={config}",
        f"--storage.tsdb.path={tsdb}",
        "--storage.tsdb.retention.time=400d",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    log = work / "prometheus.log"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, cwd=work)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http(f"{url}/-/ready", proc, log, "prometheus", timeout=300)
            yield url
        finally:
            stop(proc)


def ensure_tsdb(meta: dict[str, Any], cfg: argparse.Namespace, work: Path) -> tuple[Path, dict[str, Any]]:
    """The TSDB of version 1's points, built once per data set: backfilled by promtool, then left to
    Prometheus until its compactor has merged the 2-hour blocks into the larger ones it would hold after a
    month (the block count unchanged for 60 s, at most 10 minutes), as a month-old Prometheus has."""
    tsdb = (
        Path(cfg.data_dir)
        / f"prometheus-{meta['params']['days']}d-{params_hash(meta['params'])}-{int(meta['end'])}"
    )
    done = tsdb / "bench-complete.json"
    if done.exists():
        return tsdb, json.loads(done.read_text())
    shutil.rmtree(tsdb, ignore_errors=True)
    tsdb.mkdir(parents=True)
    t0 = time.perf_counter()
    om = work / "openmetrics"
    om.mkdir(exist_ok=True)
    files, samples = write_openmetrics(meta, om)
    t1 = time.perf_counter()
    for f in files:
        run = subprocess.run(
            [
                shutil.which("promtool") or "promtool",
                "tsdb",
                "create-blocks-from",
                "openmetrics",
                "-q",
                str(f),
                str(tsdb),
            ],
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            raise RuntimeError(f"promtool failed on {f.name}:\n{run.stderr[-3000:]}")
        f.unlink()
    t2 = time.perf_counter()
    backfilled = block_count(tsdb)
    with prometheus(tsdb, work):
        last, stable_since = block_count(tsdb), time.monotonic()
        deadline = time.monotonic() + 600
        while time.monotonic() - stable_since < 60 and time.monotonic() < deadline:
            time.sleep(5)
            n = block_count(tsdb)
            if n != last:
                last, stable_since = n, time.monotonic()
    info = {
        "samples": samples,
        "openmetrics_s": t1 - t0,
        "promtool_s": t2 - t1,
        "blocks_backfilled": backfilled,
        "blocks": block_count(tsdb),
        "compaction_s": time.perf_counter() - t2,
    }
    done.write_text(json.dumps(info))
    return tsdb, info


def grafana_queries(page: str, step: int) -> list[str]:
    """The PromQL of the panels a Grafana dashboard of ``page`` would hold, per bucket of ``step`` s."""
    from watchkeeper.server.views import OVERVIEW

    sel = prom_selector({"project": PROJECT, "model": MODEL, "version": "1"})
    if page == "drift":
        return [f"max_over_time(watchkeeper_drift_score{sel}[{step}s])"]
    out = []
    for _, _, _, names, agg in OVERVIEW:
        out += [
            f"{agg.get(n, 'avg').replace('mean', 'avg')}_over_time(watchkeeper_{n}{sel}[{step}s])"
            for n in names
        ]
    out.append(f"last_over_time(watchkeeper_drift_detected{sel}[{step}s])")  # the drifting features' list
    return out


def time_prometheus(
    url: str, loads: dict[tuple[str, str], tuple[list[str], float, float, int]], repeats: int
) -> dict[tuple[str, str], dict[str, Any]]:
    """Per (page, range): a page load is its query_range requests one after the other; cold ms and ms."""
    import httpx

    out: dict[tuple[str, str], dict[str, Any]] = {}
    with httpx.Client(base_url=url, timeout=120) as client:

        def load(queries: list[str], start: float, end: float, step: int) -> tuple[float, int]:
            t0 = time.perf_counter()
            series = 0
            for q in queries:
                resp = client.get(
                    "/api/v1/query_range",
                    params={"query": q, "start": start + step, "end": end, "step": step},
                )
                body = resp.json()
                if resp.status_code != 200 or body.get("status") != "success":
                    raise RuntimeError(f"prometheus answered {resp.status_code} to {q}: {resp.text[:300]}")
                series += len(body["data"]["result"])
            return (time.perf_counter() - t0) * 1e3, series

        for key, (queries, start, end, step) in loads.items():
            ms, series = load(queries, start, end, step)
            out[key] = {"cold": ms, "ms": [], "series": series, "queries": len(queries), "step": step}
            load(queries, start, end, step)
        for _ in range(repeats):
            for key, (queries, start, end, step) in loads.items():
                out[key]["ms"].append(load(queries, start, end, step)[0])
    return out


# --- the report --------------------------------------------------------------------------------------------


def report(
    routes: list[Route],
    results: dict[tuple[str, str], dict[str, Any]],
    anchor: dict[tuple[str, str], dict[str, Any]] | None,
    pages: dict[str, str],
    repeats: int,
) -> None:
    print(
        f"\nPage data routes: the first (cold) request, then p50 / p95 / max over {repeats} requests after a "
        f"warm-up (client-side ms); bar: p95 < {BAR_MS:.0f} ms"
    )
    head = f"{'route':<44}{'range':>6}{'cold':>8}{'p50':>8}{'p95':>8}{'max':>8}{'KiB':>8}  verdict"
    print(head)
    print("-" * len(head))
    passed = missed = 0
    for r in routes:
        if r.skipped:
            print(f"{r.name:<44}{'':>6}{'':>40}  SKIPPED: {r.skipped}")
            continue
        for (path, label), res in results.items():
            if path != r.name:
                continue
            name = path.removeprefix("/api/v1")
            if res["status"] != 200:
                print(
                    f"{name:<44}{label:>6}{res['cold']:>8.0f}{'':>32}  ERROR {res['status']}: "
                    f"{res.get('error', '')[:80]}"
                )
                missed += 1
                continue
            p95 = percentile(res["ms"], 0.95)
            ok = p95 < BAR_MS
            passed += ok
            missed += not ok
            print(
                f"{name:<44}{label:>6}{res['cold']:>8.0f}{statistics.median(res['ms']):>8.0f}{p95:>8.0f}"
                f"{max(res['ms']):>8.0f}{res['bytes'] / 1024:>8.0f}  {'PASS' if ok else 'MISS'}"
            )
    print(f"{passed} (route, range) PASS, {missed} MISS or ERROR against p95 < {BAR_MS:.0f} ms")
    if anchor is None:
        return
    print(
        "\nAnchor: the same series in Prometheus, the query_range requests of a Grafana dashboard of the "
        "same panels at the same step, one after the other per page load; ratio = our p95 / Prometheus' p95"
    )
    head = (
        f"{'page':<10}{'range':>6}{'step':>7}{'queries':>8}{'series':>7}{'prom cold':>10}{'prom p50':>9}"
        f"{'prom p95':>9}{'ours p95':>9}{'ratio':>7}"
    )
    print(head)
    print("-" * len(head))
    for (page, label), a in anchor.items():
        prom95 = percentile(a["ms"], 0.95)
        ours = results.get((pages[page], label))
        ours95 = percentile(ours["ms"], 0.95) if ours and ours["ms"] else math.nan
        ratio = f"{ours95 / prom95:7.2f}" if ours95 == ours95 else f"{'-':>7}"
        print(
            f"{page:<10}{label:>6}{a['step']:>7}{a['queries']:>8}{a['series']:>7}{a['cold']:>10.0f}"
            f"{statistics.median(a['ms']):>9.0f}{prom95:>9.0f}{ours95:>9.0f}{ratio}"
        )


def anchor_missing() -> str | None:
    """Why the Prometheus anchor cannot run here, or None."""
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH (Debian: apt-get install prometheus)"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 days of data, fewer repeats")
    parser.add_argument("--days", type=int, help="days of 1-minute windows (default 30; quick 3)")
    parser.add_argument(
        "--profile-hours", type=int, help="hours of real window profiles (default 48; quick 3)"
    )
    parser.add_argument(
        "--repeats", type=int, help="timed requests per route and range (default 20; quick 5)"
    )
    parser.add_argument("--data-dir", default="/tmp/wk-bench-dashboard", help="where built data is cached")
    parser.add_argument(
        "--store", help="a store URI to build into and time (default: a SQLite file in --data-dir)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-anchor", action="store_true", help="leave Prometheus out")
    cfg = parser.parse_args(argv)
    cfg.days = cfg.days or (3 if cfg.quick else 30)
    cfg.profile_hours = cfg.profile_hours or (3 if cfg.quick else 48)
    cfg.repeats = cfg.repeats or (5 if cfg.quick else 20)
    if cfg.profile_hours > cfg.days * 24:
        parser.error(f"--profile-hours: expected at most the {cfg.days * 24} hours of data")

    t0 = time.perf_counter()
    uri, meta = ensure_store(cfg)
    print(
        f"data: {meta['params']['days']} days of 1-minute windows of {MODEL} versions 1 and 2, "
        f"{FEATURES} features, {meta['series']} series and {meta['points']:,} points; window profiles for "
        "the last "
        f"{meta['params']['profile_hours']} h ({meta['profiles']:,}); built in {meta['build_seconds']:.0f} s "
        f"({'cached, ' if time.perf_counter() - t0 < meta['build_seconds'] / 2 else ''}{uri})",
        flush=True,
    )
    end = meta["end"]
    ranges = {label: (end - span, end) for label, span in RANGES.items()}
    print(f"{os.cpu_count()} cores, shared with other work: read the ratios beside the times", flush=True)
    with contextlib.ExitStack() as stack:
        work = Path(cfg.data_dir) / f"work-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        stack.callback(shutil.rmtree, work, True)
        url = stack.enter_context(watchkeeper_server(uri, work))
        routes = discover(url, meta)
        print(
            f"routes: {', '.join(r.name.removeprefix('/api/v1') for r in routes if not r.skipped)}"
            + (
                f"; skipped: {', '.join(r.path for r in routes if r.skipped)}"
                if any(r.skipped for r in routes)
                else ""
            ),
            flush=True,
        )
        results, steps = time_routes(url, routes, ranges, cfg.repeats)
    pages = {"overview": "/api/v1/views/overview", "drift": "/api/v1/views/drift"}
    anchor = None
    if cfg.no_anchor:
        print("Prometheus anchor left out (--no-anchor)")
    elif why := anchor_missing():
        print(f"Prometheus anchor left out: {why}")
    else:
        from watchkeeper.server.views import time_range

        work = Path(cfg.data_dir) / f"work-{os.getpid()}"
        work.mkdir(parents=True, exist_ok=True)
        try:
            print("Prometheus: building its TSDB of the same points (once per data set) ...", flush=True)
            tsdb, info = ensure_tsdb(meta, cfg, work)
            print(
                f"Prometheus TSDB: {info['samples']:,} samples of version 1 (OpenMetrics "
                f"{info['openmetrics_s']:.0f} s, promtool {info['promtool_s']:.0f} s, "
                f"{info['blocks_backfilled']} blocks compacted by Prometheus "
                f"into {info['blocks']} in {info['compaction_s']:.0f} s)",
                flush=True,
            )
            loads = {}
            for page, path in pages.items():
                for label, (start, stop_t) in ranges.items():
                    step = steps.get((path, label)) or time_range(start, stop_t).step
                    rng = time_range(start, stop_t, step)
                    loads[(page, label)] = (grafana_queries(page, step), rng.start, rng.end, step)
            with prometheus(tsdb, work) as purl:
                anchor = time_prometheus(purl, loads, cfg.repeats)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report(routes, results, anchor, pages, cfg.repeats)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
