"""A realistic simulated deployment, written into a store the way the SDK and a training job write a real
one: what ``watchkeeper demo``, the dashboard's browser tests and its benchmark look at.

The story (:class:`Scenario`): a fraud classifier, ``fraud-clf``, trained twice (version 1, the champion,
and version 2, the challenger taking a share of the traffic), each training run logging its config, its
per-epoch curves, its summary metrics and the reference profile of its training data (with the target
column ``label``). Then hours of 1-minute windows of serving traffic per version, each window a profile
of the requests' inputs and outputs with its latency sketch and errors by type, sampled request rows (every
error kept), and the predictions with ids. Partway through, the traffic drifts (larger amounts, a new
merchant category taking share, fraud moving to it, so accuracy falls); for a while latency spikes and an
upstream dependency times out; labels arrive late (30 to 90 minutes after the prediction) for most
predictions. :func:`simulate` writes all of it and, optionally, runs the monitors and steps the alert
engine through the simulated time, so signals and alert history exist as they would after those hours.

Everything is drawn from a seeded generator: the same scenario writes the same data.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from watchkeeper.profile import Profile, Traffic, profile
from watchkeeper.store import Store, codec
from watchkeeper.store.batch import (
    Batch,
    LabelRows,
    Points,
    PredictionRows,
    ProfileLog,
    RunStart,
    RunUpdate,
    SampleRows,
)
from watchkeeper.store.profiles import model_subject

MERCHANTS = ("grocery", "travel", "electronics", "restaurants", "fuel", "online", "crypto")
MERCHANT_P = np.array([0.30, 0.10, 0.12, 0.20, 0.13, 0.13, 0.02])
MERCHANT_P_DRIFTED = np.array([0.24, 0.08, 0.10, 0.16, 0.10, 0.12, 0.20])
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "NG", "IN")
COUNTRY_P = np.array([0.55, 0.12, 0.1, 0.08, 0.07, 0.03, 0.05])
RISKY_COUNTRIES = ("BR", "NG")
BASE_FEATURES = (
    "amount",
    "merchant_category",
    "country",
    "hour",
    "account_age_days",
    "card_present",
    "txn_count_24h",
    "distance_km",
)


@dataclass(frozen=True)
class Scenario:
    """What to simulate. Times are seconds since the epoch; ``start`` and ``end`` are rounded down to whole
    windows. ``drift_at`` and ``incident`` are fractions of the range; ``features`` counts the model's
    inputs (the eight of a card transaction, then generic ``f09``, ``f10``, ... when more are asked for)."""

    start: float
    end: float
    project: str = "payments"
    model: str = "fraud-clf"
    window: float = 60.0
    requests_per_window: int = 120
    challenger_share: float = 0.2  # of the traffic served by version 2; 0 for one version only
    features: int = 8
    drift_at: float = 0.55
    incident: tuple[float, float] = (0.30, 0.36)
    label_share: float = 0.8
    label_delay: tuple[float, float] = (1800.0, 5400.0)
    extra_features: tuple[str, ...] = ()  # more inputs by name (standard normal, shifting with the drift)
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.end - self.start >= self.window > 0:
            raise ValueError(f"end: expected at least one window ({self.window} s) after start")
        if self.features < 1:
            raise ValueError(f"features: expected at least 1, got {self.features}")
        if not 0 <= self.challenger_share < 1:
            raise ValueError(f"challenger_share: expected a share in [0, 1), got {self.challenger_share}")

    @property
    def feature_names(self) -> list[str]:
        names = list(BASE_FEATURES[: self.features])
        names += [f"f{i:02d}" for i in range(len(names) + 1, self.features + 1)]
        return names + [n for n in self.extra_features if n not in names]

    @property
    def versions(self) -> list[str]:
        return ["1", "2"] if self.challenger_share > 0 else ["1"]


@dataclass
class Simulated:
    """What :func:`simulate` wrote: the run ids by role, the subjects, and counts."""

    scenario: Scenario
    training_runs: dict[str, str] = field(default_factory=dict)  # version -> run id
    serving_runs: dict[str, str] = field(default_factory=dict)
    windows: int = 0
    requests: int = 0
    errors: int = 0
    labels: int = 0
    monitored_windows: int = 0
    alert_evaluations: int = 0

    def subject(self, version: str) -> str:
        return model_subject(self.scenario.model, version)


# -- the world -----------------------------------------------------------------------------------------------


def transactions(
    rng: np.random.Generator, n: int, drift: float, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """``n`` transactions; ``drift`` in [0, 1] moves them from the training distribution to the drifted."""
    merchants_p = (1 - drift) * MERCHANT_P + drift * MERCHANT_P_DRIFTED
    cols: dict[str, np.ndarray] = {
        "amount": np.round(rng.lognormal(3.6 + 0.5 * drift, 0.9, n), 2),
        "merchant_category": rng.choice(MERCHANTS, n, p=merchants_p / merchants_p.sum()),
        "country": rng.choice(COUNTRIES, n, p=COUNTRY_P),
        "hour": rng.integers(0, 24, n).astype(np.float64),
        "account_age_days": np.round(rng.exponential(700.0 * (1 - 0.3 * drift), n)),
        "card_present": rng.random(n) < 0.6 - 0.15 * drift,
        "txn_count_24h": rng.poisson(2.0 + drift, n).astype(np.float64),
        "distance_km": np.round(rng.lognormal(2.0, 1.2, n), 1),
    }
    for name in names:
        if name not in cols:
            # of the generic inputs f09, f10, ... those ending in 1 drift; inputs named by the caller all do
            generic = len(name) == 3 and name[0] == "f" and name[1:].isdigit()
            cols[name] = rng.normal(0.0, 1.0, n) + (0.8 * drift if name.endswith("1") or not generic else 0.0)
    return {k: cols[k] for k in names}


def model_logit(cols: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The fraud model's log-odds (what both versions learnt, version 2 a little better)."""
    z = np.full(n, -4.2)
    if "amount" in cols:
        z += 0.9 * np.log(np.asarray(cols["amount"], dtype=np.float64) / 40.0)
    if "country" in cols:
        z += 1.3 * np.isin(cols["country"], RISKY_COUNTRIES)
    if "card_present" in cols:
        z -= 1.0 * cols["card_present"]
    if "txn_count_24h" in cols:
        z += 0.25 * cols["txn_count_24h"]
    if "account_age_days" in cols:
        z -= 0.0012 * cols["account_age_days"]
    return z


def true_logit(cols: dict[str, np.ndarray], n: int, drift: float) -> np.ndarray:
    """The world's log-odds of fraud: the model's, plus a pattern the model never saw once traffic drifts
    (fraud moving to the new merchant category), which is what makes accuracy fall."""
    z = model_logit(cols, n)
    if "merchant_category" in cols:
        z += 3.0 * drift * (cols["merchant_category"] == "crypto")
    return z


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# -- writing -------------------------------------------------------------------------------------------------


def _training_run(store: Store, sc: Scenario, version: str, rng: np.random.Generator, t: float) -> str:
    """A training run of ``version``: config, curves per epoch, summary metrics, and the reference profile
    of its training data (inputs and the target ``label``)."""
    run_id = uuid.uuid4().hex
    config = {
        "model": "gradient_boosting",
        "learning_rate": 0.1 if version == "1" else 0.05,
        "n_estimators": 300 if version == "1" else 600,
        "max_depth": 6 if version == "1" else 8,
        "features": sc.feature_names,
        "class_weight": "balanced",
    }
    epochs = 25
    n = 20_000
    cols = transactions(rng, n, 0.0, sc.feature_names)
    y = rng.random(n) < sigmoid(true_logit(cols, n, 0.0))
    scores = sigmoid(model_logit(cols, n) + rng.normal(0, 0.6 if version == "1" else 0.45, n))
    accuracy = float(np.mean((scores >= 0.5) == y))
    store.write(
        Batch(
            runs=[
                RunStart(
                    run_id,
                    sc.project,
                    f"train-{sc.model}-v{version}",
                    t,
                    job_type="train",
                    tags=["fraud", f"v{version}"],
                    config=codec.encode(config),
                    model=sc.model,
                    version=version,
                )
            ]
        )
    )
    names, steps, times, values = [], [], [], []
    better = 0.03 if version == "2" else 0.0
    for epoch in range(epochs):
        loss = (
            0.45 * math.exp(-epoch / (6 + 3 * better * 100)) + 0.08 - better + 0.004 * rng.standard_normal()
        )
        points = {
            "train/loss": loss,
            "val/loss": loss * 1.08 + 0.01 * abs(rng.standard_normal()),
            "val/roc_auc": 0.93 + better - 0.35 * math.exp(-epoch / 5) + 0.004 * rng.standard_normal(),
            "val/accuracy": accuracy - 0.2 * math.exp(-epoch / 4) + 0.003 * rng.standard_normal(),
            "lr": config["learning_rate"] * 0.97**epoch,
        }
        for name, v in points.items():
            names.append(name)
            steps.append(epoch)
            times.append(t + 20.0 * epoch)
            values.append(float(v))
    ref_cols = dict(cols)
    ref_cols["label"] = y.astype(np.int64)
    ref = profile(ref_cols)
    subject = model_subject(sc.model, version)
    end = t + 20.0 * epochs
    summary = {
        "accuracy": accuracy,
        "roc_auc": float(values[names.index("val/roc_auc", len(names) - 5)]),
        "f1": 0.71 + better,
        "epochs": epochs,
    }
    store.write(
        Batch(
            points=[Points(sc.project, run_id, names, steps, times, values, run_id)],
            profiles=[
                ProfileLog(
                    sc.project,
                    subject,
                    "reference",
                    end,
                    end,
                    ref.rows,
                    ref.to_bytes(),
                    ref.format_version,
                    run_id,
                    reference=(sc.model, version, "train"),
                )
            ],
            run_updates=[
                RunUpdate(
                    run_id, status="finished", ended_at=end, heartbeat_at=end, summary=codec.encode(summary)
                )
            ],
        )
    )
    return run_id


def _serving_run(store: Store, sc: Scenario, version: str, t: float) -> str:
    run_id = uuid.uuid4().hex
    store.write(
        Batch(
            runs=[
                RunStart(
                    run_id,
                    sc.project,
                    f"serve-{sc.model}-v{version}",
                    t,
                    job_type="serve",
                    tags=["production"],
                    config={"replicas": 1, "route": "/predict"},
                    model=sc.model,
                    version=version,
                    host="fraud-api-0",
                )
            ]
        )
    )
    return run_id


def _window(
    sc: Scenario, version: str, run_id: str, start: float, rng: np.random.Generator, frac: float
) -> tuple[Batch, int, int, list[tuple[str, float, int]]]:
    """One window of one version: the batch to write, its requests, its errors, and (id, time, label) of its
    predictions whose labels will arrive."""
    share = sc.challenger_share if version == "2" else 1.0 - sc.challenger_share
    n = max(1, int(rng.poisson(sc.requests_per_window * share)))
    drift = float(np.clip((frac - sc.drift_at) / 0.08, 0.0, 1.0))
    incident = sc.incident[0] <= frac < sc.incident[1]
    cols = transactions(rng, n, drift, sc.feature_names)
    noise = 0.6 if version == "1" else 0.45
    score = sigmoid(model_logit(cols, n) + rng.normal(0, noise, n))
    label = (score >= 0.5).astype(np.int64)
    truth = rng.random(n) < sigmoid(true_logit(cols, n, drift))
    # latency: a lognormal around 22 ms (version 2 is a bigger model), five times slower in the incident
    base = 0.022 if version == "1" else 0.03
    seconds = rng.lognormal(math.log(base), 0.35, n) * (5.0 if incident else 1.0)
    p_err = 0.06 if incident else 0.003
    failed = rng.random(n) < p_err
    kinds = np.where(rng.random(n) < (0.9 if incident else 0.2), "UpstreamTimeout", "ValueError")
    errors = [str(k) if f else None for k, f in zip(kinds, failed, strict=True)]
    ok = ~failed
    traffic = Traffic()
    traffic.endpoint("predict").update(seconds, errors)
    p = profile({**{k: v[ok] for k, v in cols.items()}, "score": score[ok], "label": label[ok]})
    roles = {"score": "output", "label": "output"}
    prof = Profile(p.columns, rows=int(ok.sum()), traffic=traffic, roles=roles)
    end = start + sc.window
    wall = start + np.sort(rng.uniform(0, sc.window, n))
    subject = model_subject(sc.model, version)
    ids = [f"v{version}-{int(start)}-{i}" for i in range(n)]
    chosen = failed | (rng.random(n) < 8.0 / n)  # every error, about eight others
    rows = []
    for i in np.flatnonzero(chosen):
        inputs = {k: plain(v[i]) for k, v in cols.items()}
        err = None
        if failed[i]:
            err = (
                "upstream feature store timed out after 2.0 s"
                if kinds[i] == "UpstreamTimeout"
                else input_error(inputs)
            )
        rows.append(
            {
                "t": float(wall[i]),
                "id": ids[i],
                "latency_ms": float(seconds[i] * 1e3),
                "status": "ok" if err is None else str(kinds[i]),
                "error": err,
                "inputs": codec.encode(inputs),
                "outputs": None if err else {"score": float(score[i]), "label": int(label[i])},
                "stages": None,
            }
        )
    good = np.flatnonzero(ok)
    batch = Batch(
        profiles=[
            ProfileLog(
                sc.project,
                subject,
                "window",
                start,
                end,
                prof.rows,
                prof.to_bytes(),
                prof.format_version,
                run_id,
            )
        ],
        samples=[SampleRows(sc.project, "samples/predict", start, rows, run_id)] if rows else [],
        predictions=[
            PredictionRows(
                sc.project,
                subject,
                [ids[i] for i in good],
                [float(wall[i]) for i in good],
                [{"score": float(score[i]), "label": int(label[i])} for i in good],
                run_id,
            )
        ],
    )
    labelled = [(ids[i], float(wall[i]), int(truth[i])) for i in good if rng.random() < sc.label_share]
    return batch, n, int(failed.sum()), labelled


def input_error(inputs: dict[str, Any]) -> str:
    """The text of the ValueError the simulated model raises when it rejects a request's inputs."""
    name = "distance_km" if "distance_km" in inputs else next(iter(inputs), "input")
    return f"input rejected: {name}={inputs.get(name)!r} is outside the range the model was trained on"


def plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def simulate(
    store: Store,
    scenario: Scenario,
    *,
    monitor: bool = True,
    rules: Sequence[str | Path] = (),
    eval_every: float = 300.0,
    progress: Callable[[str, int, int], None] | None = None,
) -> Simulated:
    """Write ``scenario`` into ``store``; with ``monitor``, run the monitors over every window (as the server
    would have after those hours), and with ``rules`` (rule files), step the alert engine every
    ``eval_every`` seconds of simulated time so the alerts have their history. ``progress(stage, done,
    total)`` is called as the work goes (for a progress bar)."""
    sc = scenario
    rng = np.random.default_rng(sc.seed)
    start = math.floor(sc.start / sc.window) * sc.window
    end = math.floor(sc.end / sc.window) * sc.window
    out = Simulated(sc)
    for version in sc.versions:
        out.training_runs[version] = _training_run(
            store, sc, version, rng, start - 86400.0 * (3 - int(version))
        )
        out.serving_runs[version] = _serving_run(store, sc, version, start)
    starts = np.arange(start, end, sc.window)
    pending: dict[str, list[tuple[str, float, int]]] = {v: [] for v in sc.versions}
    for i, ws in enumerate(starts):
        frac = (ws - start) / max(end - start, sc.window)
        batch = Batch()
        for version in sc.versions:
            b, n, errs, labelled = _window(sc, version, out.serving_runs[version], float(ws), rng, frac)
            batch.profiles += b.profiles
            batch.samples += b.samples
            batch.predictions += b.predictions
            pending[version] += labelled
            out.windows += 1
            out.requests += n
            out.errors += errs
        store.write(batch)
        if progress is not None:
            progress("traffic", i + 1, len(starts))
    # labels arrive late: only those whose arrival time has come by the end of the simulation
    for version, items in pending.items():
        if not items:
            continue
        delay = rng.uniform(*sc.label_delay, len(items))
        arrived = [(pid, t + d, y) for (pid, t, y), d in zip(items, delay, strict=True) if t + d < end]
        if arrived:
            subject = model_subject(sc.model, version)
            store.write(
                Batch(
                    labels=[
                        LabelRows(
                            sc.project,
                            subject,
                            [a[0] for a in arrived],
                            [a[2] for a in arrived],
                            [a[1] for a in arrived],
                        )
                    ]
                )
            )
            out.labels += len(arrived)
    if monitor:
        out.monitored_windows = _monitor(store, start, end, sc.window, rules, eval_every, progress)
        if rules:
            out.alert_evaluations = int((end - start) // eval_every) + 1
    return out


def _monitor(
    store: Store,
    start: float,
    end: float,
    window: float,
    rules: Sequence[str | Path],
    eval_every: float,
    progress: Callable[[str, int, int], None] | None,
) -> int:
    """Monitor the windows in time order and, with rules, evaluate them as time passes: the engine sees
    each signal only once the monitor would have produced it, as it would have live."""
    from watchkeeper.monitor.runner import MonitorRunner

    now = [start]
    runner = MonitorRunner(store, settle=0.0, clock=lambda: now[0])
    engine = None
    if rules:
        from watchkeeper.alerting.engine import AlertEngine

        engine = AlertEngine(store, clock=lambda: now[0])
        problems = engine.load(*rules)
        if problems:
            raise ValueError("rules: " + "; ".join(f"{k}: {v}" for k, v in problems.items()))
    step = max(eval_every, window)
    ticks = np.arange(start + step, end + step, step)
    done = 0
    for i, t in enumerate(ticks):
        now[0] = float(min(t, end))
        done += runner.run_once().windows
        if engine is not None:
            engine.evaluate(now[0])
        if progress is not None:
            progress("monitors", i + 1, len(ticks))
    if engine is not None:
        engine.close()
    return done
