"""Operational signals against numpy on the raw durations and errors the traffic was built from."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest

from watchkeeper.monitor import ops
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.profile import Profile, Traffic
from watchkeeper.sdk import watcher as watch_mod
from watchkeeper.sdk.watcher import Watcher

RNG = np.random.default_rng(17)
ALPHA = 0.01  # the latency sketch's relative accuracy


def _ctx(prof: Profile | None, start: float = 0.0, end: float = 60.0) -> WindowContext:
    return WindowContext(
        store=None,  # type: ignore[arg-type]  # ops never reads the store
        project="p",
        model="m",
        version="1",
        subject="model:m@1",
        start=start,
        end=end,
        profile=prof,
        reference=None,
        reference_info=None,
        training_run=None,
        settings=MonitorSettings(),
        now=end + 30.0,
    )


def _signals(ctx: WindowContext) -> dict[tuple[str, frozenset], float]:
    out = {}
    for d in ops.derive(ctx):
        key = (d.name, frozenset(d.labels.items()))
        assert key not in out, f"{key} derived twice"
        out[key] = d.value
    return out


def _at(sig: dict, name: str, **labels: str) -> float:
    return sig[(name, frozenset(labels.items()))]


def _check_latency(sig: dict, seconds: np.ndarray, **labels: str) -> None:
    ms = seconds * 1e3
    for name, q in (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95), ("latency_p99_ms", 0.99)):
        exact = np.quantile(ms, q, method="lower")
        assert abs(_at(sig, name, **labels) - exact) <= ALPHA * exact, name
    # exact but for float rounding (and the SDK's nanosecond clock: 1e-6 ms)
    assert _at(sig, "latency_mean_ms", **labels) == pytest.approx(ms.mean(), rel=1e-9, abs=1e-6)
    assert _at(sig, "latency_max_ms", **labels) == pytest.approx(ms.max(), rel=1e-12, abs=1e-6)


def _errors(n: int, p: dict[str, float]) -> list[str | None]:
    kinds = [None, *p]
    probs = [1 - sum(p.values()), *p.values()]
    return [kinds[i] for i in RNG.choice(len(kinds), size=n, p=probs)]


def test_function_endpoints_and_their_total():
    a_lat, b_lat = RNG.lognormal(-4.0, 0.8, 4000), RNG.lognormal(-3.0, 0.5, 1500)
    a_err = _errors(4000, {"ValueError": 0.02, "TimeoutError": 0.01})
    b_err = _errors(1500, {"KeyError": 0.05})
    traffic = Traffic()
    traffic.endpoint("predict").update(a_lat, a_err)
    traffic.endpoint("explain").update(b_lat, b_err)
    sig = _signals(_ctx(Profile(rows=5500, traffic=traffic), start=120.0, end=180.0))

    for name, lat, err in (("predict", a_lat, a_err), ("explain", b_lat, b_err)):
        n_err = sum(e is not None for e in err)
        assert _at(sig, "requests", endpoint=name) == lat.size
        assert _at(sig, "request_rate", endpoint=name) == lat.size / 60.0
        assert _at(sig, "errors", endpoint=name) == n_err
        assert _at(sig, "error_rate", endpoint=name) == n_err / lat.size
        for kind in {e for e in err if e is not None}:
            share = sum(e == kind for e in err) / lat.size
            assert _at(sig, "error_type_rate", endpoint=name, error_type=kind) == share
        _check_latency(sig, lat, endpoint=name)

    # the total (no endpoint label) is every function together: the merged sketch, not averaged percentiles
    lat = np.concatenate([a_lat, b_lat])
    err = a_err + b_err
    assert _at(sig, "requests") == 5500
    assert _at(sig, "request_rate") == 5500 / 60.0
    assert _at(sig, "error_rate") == sum(e is not None for e in err) / 5500
    assert _at(sig, "error_type_rate", error_type="KeyError") == err.count("KeyError") / 5500
    _check_latency(sig, lat)
    # error_rate has only the overall series per endpoint: the per-type rates go by another name
    assert {k for k in sig if k[0] == "error_rate"} == {
        ("error_rate", frozenset()),
        ("error_rate", frozenset({("endpoint", "predict")})),
        ("error_rate", frozenset({("endpoint", "explain")})),
    }
    assert _at(sig, "dropped_calls") == 0


def test_total_is_the_http_routes_when_there_are_any():
    fn_lat, http_lat = RNG.lognormal(-4.0, 0.5, 800), RNG.lognormal(-3.5, 0.5, 900)
    statuses = RNG.choice([200, 200, 200, 503], size=900).tolist()
    traffic = Traffic()
    traffic.endpoint("predict").update(fn_lat, [None] * 800)
    traffic.endpoint("POST /predict", "http").update(
        http_lat, [f"HTTP {s}" if s >= 500 else None for s in statuses], statuses
    )
    sig = _signals(_ctx(Profile(rows=800, traffic=traffic)))
    assert _at(sig, "requests") == 900
    assert _at(sig, "error_rate") == statuses.count(503) / 900
    assert _at(sig, "error_type_rate", error_type="HTTP 503") == statuses.count(503) / 900
    _check_latency(sig, http_lat)
    _check_latency(sig, fn_lat, endpoint="predict")


def test_replicas_merged_give_the_signals_of_all_their_requests():
    lat = RNG.lognormal(-4.0, 1.0, 6000)
    err = _errors(6000, {"RuntimeError": 0.03})
    parts = []
    for lo, hi in ((0, 1000), (1000, 3500), (3500, 6000)):
        t = Traffic()
        t.endpoint("predict").update(lat[lo:hi], err[lo:hi])
        parts.append(Profile(rows=hi - lo, traffic=t))
    merged = parts[0].merge(parts[1]).merge(parts[2])
    sig = _signals(_ctx(merged))
    assert _at(sig, "requests", endpoint="predict") == 6000
    assert _at(sig, "errors") == err.count("RuntimeError")
    _check_latency(sig, lat, endpoint="predict")


def test_stages_dropped_calls_and_input_problems():
    fetch, infer = RNG.lognormal(-5.0, 0.7, 3000), RNG.lognormal(-3.0, 0.3, 3000)
    traffic = Traffic()
    traffic.endpoint("predict").update(fetch + infer, [None] * 3000)
    traffic.stage("feature_fetch").update(fetch)
    traffic.stage("inference").update(infer)
    traffic.count_problem("features: None", 4)
    traffic.count_problem("outputs: 'score' mixes value types", 2)
    traffic.dropped = 17
    sig = _signals(_ctx(Profile(rows=3000, traffic=traffic)))
    for stage, x in (("feature_fetch", fetch), ("inference", infer)):
        exact = np.quantile(x * 1e3, 0.95, method="lower")
        assert abs(_at(sig, "stage_latency_p95_ms", stage=stage) - exact) <= ALPHA * exact
    assert _at(sig, "dropped_calls") == 17
    assert _at(sig, "input_problems", problem="features: None") == 4
    assert _at(sig, "input_problems", problem="outputs: 'score' mixes value types") == 2


def test_an_endpoint_without_requests_gives_nan_latency_and_rates_not_zero():
    traffic = Traffic()
    traffic.endpoint("predict")
    sig = _signals(_ctx(Profile(rows=0, traffic=traffic)))
    assert _at(sig, "requests", endpoint="predict") == 0
    assert _at(sig, "request_rate", endpoint="predict") == 0
    assert math.isnan(_at(sig, "error_rate", endpoint="predict"))
    assert math.isnan(_at(sig, "latency_p99_ms", endpoint="predict"))
    assert math.isnan(_at(sig, "latency_mean_ms"))


def test_a_profile_without_traffic_gives_nothing():
    assert list(ops.derive(_ctx(Profile(rows=10)))) == []
    assert list(ops.derive(_ctx(None))) == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def test_signals_of_a_window_the_sdk_watched(monkeypatch):
    """The SDK's window profile (durations timed by a fake clock) gives the numpy answers."""
    clock = FakeClock()
    monkeypatch.setattr(watch_mod, "perf_counter_ns", clock)
    w = Watcher(project="p", subject="model:m@1", run_id="r1")
    durations = RNG.lognormal(-4.0, 1.0, 2000)

    def predict(i):
        clock.advance(float(durations[i]))
        if i % 25 == 0:
            raise ValueError("bad input")
        return {"score": 0.5}

    watched = w.wrap(predict, Watcher.spec("predict"))
    for i in range(durations.size):
        with contextlib.suppress(ValueError):
            watched(i)
    drained = w.drain(final=True)
    prof = Profile.from_bytes(drained.profiles[0].data)
    for p in drained.profiles[1:]:
        prof = prof.merge(Profile.from_bytes(p.data))
    sig = _signals(_ctx(prof, start=0.0, end=60.0))
    assert _at(sig, "requests", endpoint="predict") == 2000
    assert _at(sig, "error_type_rate", endpoint="predict", error_type="ValueError") == 80 / 2000
    _check_latency(sig, durations, endpoint="predict")
