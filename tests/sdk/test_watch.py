"""Production monitoring: watch and watching, windows, stages, samples, predictions, usage, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile
from watchkeeper.sdk import watcher as watch_mod
from watchkeeper.sdk.watcher import Watcher
from watchkeeper.store import Store

RNG = np.random.default_rng(7)


class FakeClock:
    """Stands in for perf_counter_ns inside the watch module: the test decides how long each call takes."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(watch_mod, "perf_counter_ns", c)
    return c


def _watcher(**kw) -> Watcher:
    return Watcher(project="p", subject="model:m@1", run_id="r1", **kw)


def _window_profile(drained) -> Profile:
    profiles = [Profile.from_bytes(p.data) for p in drained.profiles]
    assert profiles, "no window was emitted"
    out = profiles[0]
    for p in profiles[1:]:
        out = out.merge(p)
    return out


# -- the call itself --


def test_the_watched_function_returns_its_result_and_raises_its_own_exception_unchanged():
    w = _watcher()
    boom = KeyError("missing")

    def predict(x, *, scale=1.0):
        """Doc."""
        if x is None:
            raise boom
        return x * scale

    watched = w.wrap(predict, Watcher.spec("predict"))
    assert watched(2.0, scale=3.0) == 6.0
    with pytest.raises(KeyError) as info:
        watched(None)
    assert info.value is boom
    assert watched.__name__ == "predict" and watched.__doc__ == "Doc." and watched.__wrapped__ is predict
    prof = _window_profile(w.drain(final=True))
    ep = prof.traffic.endpoints["predict"]
    assert (ep.requests, ep.errors) == (2, {"KeyError": 1})


def test_latency_sketch_matches_the_durations_of_the_calls(clock):
    w = _watcher()
    durations = RNG.lognormal(-4.0, 1.0, 5000)  # seconds, ~18 ms median

    def predict(d):
        clock.advance(d)
        return 0.0

    watched = w.wrap(predict, Watcher.spec("predict"))
    for d in durations:
        watched(float(d))
    ep = _window_profile(w.drain(final=True)).traffic.endpoints["predict"]
    assert ep.requests == 5000 and ep.latency.count == 5000
    for q in (0.5, 0.9, 0.99):
        exact = np.quantile(durations, q, method="lower")
        assert abs(ep.latency.quantile(q) - exact) <= 0.01 * exact + 1e-9
    assert ep.latency.sum == pytest.approx(durations.sum(), rel=1e-6)


def test_async_functions_are_watched_too(clock):
    w = _watcher()

    async def predict(x):
        clock.advance(0.004)
        if x < 0:
            raise ValueError("negative")
        return {"score": x}

    watched = w.wrap(predict, Watcher.spec("predict"))
    assert asyncio.run(watched(0.25)) == {"score": 0.25}
    with pytest.raises(ValueError, match="negative"):
        asyncio.run(watched(-1.0))
    prof = _window_profile(w.drain(final=True))
    ep = prof.traffic.endpoints["predict"]
    assert ep.requests == 2 and ep.errors == {"ValueError": 1}
    assert ep.latency.quantile(0.5) == pytest.approx(0.004, rel=0.01)
    assert prof["score"].count == 1 and prof.role("score") == "output"


# -- what a window holds --


def test_window_profile_of_features_and_outputs_equals_the_profile_of_the_same_data():
    w = _watcher()
    X = RNG.normal(size=(3000, 20))
    names = [f"f{i}" for i in range(20)]
    watched = w.wrap(
        lambda x: float(1 / (1 + math.exp(-x["f0"]))),
        Watcher.spec("predict", features=lambda x: x, outputs=lambda y: {"score": y, "label": int(y > 0.5)}),
    )
    scores = []
    for row in X:
        scores.append(watched(dict(zip(names, row.tolist(), strict=True))))
    prof = _window_profile(w.drain(final=True))
    assert prof.rows == 3000
    assert prof.inputs() == names and prof.outputs() == ["score", "label"]
    for j, name in enumerate(names):
        col = prof[name]
        assert col.kind == "numeric" and col.count == 3000
        assert col.mean == pytest.approx(X[:, j].mean(), rel=1e-9, abs=1e-12)
        assert col.std == pytest.approx(X[:, j].std(ddof=1), rel=1e-9)
        assert col.min == X[:, j].min() and col.max == X[:, j].max()
    assert prof["score"].mean == pytest.approx(np.mean(scores), rel=1e-12)
    assert prof["label"].mean == pytest.approx(np.mean(np.array(scores) > 0.5), rel=1e-12)


def test_calls_fall_into_aligned_windows_by_completion_time_and_windows_close_after_grace(clock, monkeypatch):
    wall = [1_700_000_000.0]
    monkeypatch.setattr(watch_mod.time, "time", lambda: wall[0])
    monkeypatch.setattr(watch_mod.time, "time_ns", lambda: round(wall[0] * 1e9))
    w = _watcher(window=10.0, grace=1.0)
    watched = w.wrap(lambda x: x, Watcher.spec("predict"))
    counts = {}
    for _ in range(3):  # three windows of 10 s, 7 calls in the first, 8 in the second, ...
        start = math.floor(wall[0] / 10) * 10
        n = 7 + len(counts)
        for _ in range(n):
            watched(1.0)
        counts[start] = n
        wall[0] += 10.0
        clock.advance(10.0)
    # the clocks moved in step: each batch of calls completed inside its own window
    wall[0] -= 10.0 - 0.5  # now: 0.5 s into the third window's successor is not reached yet
    clock.advance(-(10.0 - 0.5))
    drained = w.drain()
    got = {p.window_start: p.rows for p in drained.profiles}
    assert got == {s: n for s, n in counts.items() if s + 10.0 + 1.0 <= wall[0]}
    assert all(p.window_end - p.window_start == 10.0 and p.window_start % 10 == 0 for p in drained.profiles)
    rest = w.drain(final=True)
    assert {p.window_start: p.rows for p in rest.profiles} == {
        s: n for s, n in counts.items() if s not in got
    }


def test_batch_form_scores_many_rows_in_one_call():
    w = _watcher()
    X = RNG.normal(size=(500, 3))
    frame = {"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}

    def score_batch(batch):
        return {"score": 1 / (1 + np.exp(-batch["a"]))}

    watched = w.wrap(
        score_batch,
        Watcher.spec(
            "score_batch", batch=True, features=lambda b: b, id=lambda b: [f"r{i}" for i in range(500)]
        ),
    )
    out = watched(frame)
    drained = w.drain(final=True)
    prof = _window_profile(drained)
    assert prof.rows == 500 and prof.traffic.endpoints["score_batch"].requests == 1
    assert prof["b"].mean == pytest.approx(X[:, 1].mean(), rel=1e-9)
    assert prof["score"].mean == pytest.approx(out["score"].mean(), rel=1e-9)
    (preds,) = drained.predictions
    assert preds.ids[:2] == ["r0", "r1"] and len(preds.ids) == 500
    assert preds.values[3]["score"] == pytest.approx(out["score"][3])


def test_watching_block_with_stages_records_stage_latencies_and_attaches_them_to_samples(clock):
    w = _watcher()
    spec = Watcher.spec("handler", direct=True, sample_rate=1.0)
    for i in range(10):
        with watch_mod.Call(w, spec, {"x": float(i)}, f"id-{i}") as call:
            with call.stage("fetch"):
                clock.advance(0.010)
            with watch_mod.Stage(w, "inference"):  # run.stage(): found through the context
                clock.advance(0.030)
            call.outputs = {"score": i / 10}
    drained = w.drain(final=True)
    prof = _window_profile(drained)
    assert prof.traffic.stages["fetch"].quantile(0.5) == pytest.approx(0.010, rel=0.01)
    assert prof.traffic.stages["inference"].quantile(0.5) == pytest.approx(0.030, rel=0.01)
    assert prof.traffic.endpoints["handler"].latency.quantile(0.5) == pytest.approx(0.040, rel=0.01)
    (samples,) = drained.samples
    row = samples.rows[0]
    assert row["stages"] == {"fetch": pytest.approx(10.0), "inference": pytest.approx(30.0)}
    assert row["inputs"] == {"x": 0.0} and row["outputs"] == {"score": 0.0} and row["id"] == "id-0"
    assert [p for p in drained.predictions[0].ids] == [f"id-{i}" for i in range(10)]


def test_usage_sums_tokens_and_prices_them_or_counts_them_unpriced():
    w = _watcher()
    w.log_usage("gpt-x", 1000, 200, None)  # no price yet: unpriced
    w.set_price("gpt-x", 3.0 / 1e6, 15.0 / 1e6)
    w.log_usage("gpt-x", 812, 96, None)
    w.log_usage("other", 10, 10, 0.5)  # an explicit cost
    usage = _window_profile(w.drain(final=True)).traffic.usage
    gx = usage["gpt-x"]
    assert (gx.calls, gx.input_tokens, gx.output_tokens, gx.unpriced) == (2, 1812, 296, 1)
    assert gx.cost == pytest.approx(812 * 3.0 / 1e6 + 96 * 15.0 / 1e6)
    assert usage["other"].cost == 0.5


# -- samples and predictions --


def test_sampler_keeps_every_error_a_base_rate_of_successes_and_rare_labels():
    w = _watcher(seed=3)
    n = 20_000
    labels = (RNG.random(n) < 0.002).astype(int)  # a rare class: ~40 rows

    def predict(i):
        if i % 1000 == 0:
            raise TimeoutError("slow backend")
        return {"label": int(labels[i])}

    watched = w.wrap(predict, Watcher.spec("predict", sample_rate=0.01, max_samples=1000))
    for i in range(n):
        with contextlib.suppress(TimeoutError):
            watched(i)
    (samples,) = w.drain(final=True).samples
    rows = samples.rows
    errors = [r for r in rows if r["status"] == "TimeoutError"]
    assert len(errors) == 20 and all(r["error"] == "slow backend" for r in errors)
    rare = [r for r in rows if r["outputs"] == {"label": 1}]
    assert len(rare) >= 5  # the first five of the rare class are always kept
    ok = len(rows) - len(errors)
    assert 150 <= ok <= 260  # 1% of ~20k successes (+ 10 stratified), binomial sd ~14


def test_predictions_with_ids_are_kept_at_the_configured_rate_deterministically():
    kept = []
    for _ in range(2):
        w = _watcher()
        watched = w.wrap(
            lambda x: {"score": x}, Watcher.spec("p", id=lambda x: f"req-{x}", keep_predictions=0.25)
        )
        for i in range(4000):
            watched(i)
        (preds,) = w.drain(final=True).predictions
        kept.append(preds.ids)
    assert kept[0] == kept[1]  # the same ids in every process, not a random draw
    assert 0.2 * 4000 <= len(kept[0]) <= 0.3 * 4000


# -- it never raises into the host --


def test_bad_input_is_counted_not_raised_and_logged_once_per_window(caplog):
    w = _watcher()
    inputs = [
        {"a": 1.0, "b": 2.0},
        {"a": 1.5},  # shape change
        None,  # no features
        "a string",  # not a mapping
        {"a": float("nan"), "b": 3.0},
        {"a": "oops", "b": 4.0},  # a string in a numeric feature
        {"a": 2.0, "b": list(range(100_000))},  # a huge payload
        {"a": 3.0, "b": 5.0},
    ]
    watched = w.wrap(
        lambda x: object() if isinstance(x, dict) and x.get("a") == 3.0 else {"score": 1.0},
        Watcher.spec("predict", features=lambda x: x, sample_rate=1.0),
    )
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        results = [watched(x) for x in inputs]
        drained = w.drain(final=True)
    assert len(results) == len(inputs)
    prof = _window_profile(drained)
    q = prof.traffic.quality
    assert q["features: keys differ between calls"] == 1
    assert q["features: not a mapping"] == 1 and q["features: None"] == 1
    assert q["features: 'a' mixes value types"] == 1
    assert q["outputs: cannot read a object without outputs="] == 1
    a = prof["a"]
    assert a.counts.nan == 1 and a.counts.str == 1 and a.count == 6
    warnings = [r for r in caplog.records if "input problems" in r.getMessage()]
    assert len(warnings) == 1
    huge = [
        r for r in drained.samples[0].rows if isinstance(r["inputs"], dict) and r["inputs"].get("_truncated")
    ]
    assert len(huge) == 1 and len(huge[0]["inputs"]["head"]) == watch_mod.MAX_CELL_CHARS


def test_extractors_that_raise_are_counted():
    w = _watcher()
    watched = w.wrap(
        lambda x: x,
        Watcher.spec(
            "predict", features=lambda x: x["missing"], outputs=lambda y: y.proba, id=lambda x: 1 / 0
        ),
    )
    assert watched({"a": 1}) == {"a": 1}
    q = _window_profile(w.drain(final=True)).traffic.quality
    assert q == {
        "features: extractor raised KeyError": 1,
        "outputs: extractor raised AttributeError": 1,
        "id: extractor raised ZeroDivisionError": 1,
    }


def test_a_full_queue_drops_new_calls_counts_them_and_warns_once(caplog):
    w = _watcher(max_queue=100, wake_at=50)
    wakes = []
    w._wake = lambda: wakes.append(1)
    watched = w.wrap(lambda x: x, Watcher.spec("predict"))
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(250):
            assert watched(i) == i
    prof = _window_profile(w.drain(final=True))
    assert prof.traffic.endpoints["predict"].requests == 100
    assert prof.traffic.dropped == 150
    assert len([r for r in caplog.records if "dropping" in r.getMessage()]) == 1
    assert wakes  # the writer was woken before the queue filled


# -- through a run and a store --


def test_a_run_writes_window_profiles_samples_predictions_and_labels(store_uri):
    run = wk.init(
        project="fraud", model="fraud-clf", version="1.3.0", uri=store_uri, window=3600, system_metrics=False
    )

    @run.watch(
        features=lambda x: {"amount": x["amount"]},
        outputs=lambda y: {"score": y, "label": int(y > 0.5)},
        id=lambda x: x["request_id"],
    )
    def predict(x):
        return min(1.0, x["amount"] / 100)

    for i in range(200):
        predict({"request_id": f"req-{i}", "amount": float(i)})
    run.log_label("req-7", 0)
    run.log_label("req-99", 1)
    run.finish()
    with Store(store_uri) as store:
        windows = store.profiles.windows("fraud", "model:fraud-clf@1.3.0")
        prof = Profile.from_bytes(windows[0].data)
        for extra in windows[1:]:
            prof = prof.merge(Profile.from_bytes(extra.data))
        assert prof.rows == 200 and prof["amount"].mean == pytest.approx(99.5)
        assert prof.traffic.calls.requests == 200
        assert {w.run_id for w in windows} == {run.id}
        assert store.labels.counts("fraud", "model:fraud-clf@1.3.0") == (200, 2)
        joined = store.labels.joined("fraud", "model:fraud-clf@1.3.0")
        assert sorted(zip(joined.ids, joined.labels, strict=True)) == [("req-7", 0), ("req-99", 1)]
        tables = store.samples.tables(run.id)
        assert [t.key for t in tables] == ["samples/predict"]


def test_a_disabled_run_returns_the_function_and_records_nothing():
    run = wk.init(project="p", mode="disabled")

    def predict(x):
        return x + 1

    assert run.watch(predict) is predict
    with run.watching(features={"a": 1}) as call:
        call.outputs = 2
    run.log_label("x", 1)
    run.log_usage(1, 2)
    run.finish()


def test_bad_arguments_name_the_field():
    run = wk.init(project="p", mode="disabled")
    with pytest.raises(ValueError, match="sample_rate"):
        run.watch(lambda x: x, sample_rate=2.0)
    with pytest.raises(ValueError, match="keep_predictions"):
        run.watch(lambda x: x, keep_predictions=-0.1)
    with pytest.raises(TypeError, match="features="):
        run.watch(lambda x: x, features="x")
    with pytest.raises(ValueError, match="input_tokens"):
        run.log_usage(-1, 0)
    with pytest.raises(ValueError, match="per must be positive"):
        run.set_price("m", input=1.0, output=1.0, per=0)
    with pytest.raises(ValueError, match="window"):
        wk.init(project="p", mode="disabled", window=0)
    with pytest.raises(ValueError, match="stage name"):
        run.stage("")
    run.finish()


def test_after_finish_watched_functions_still_work_and_record_nothing(sqlite_uri, caplog):
    run = wk.init(project="p", model="m", version="1", uri=sqlite_uri, system_metrics=False)
    predict = run.watch(lambda x: x * 2, name="predict")
    assert predict(1) == 2
    run.finish()
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        assert [predict(i) for i in range(50_000)][-1] == 99_998
    w = run._watcher
    assert all(not spec.queue for spec in w._specs.values())  # nothing piles up
    assert len([r for r in caplog.records if "no longer recorded" in r.getMessage()]) == 1
    with Store(sqlite_uri) as store:
        (window,) = store.profiles.windows("p", "model:m@1")
        assert Profile.from_bytes(window.data).traffic.calls.requests == 1


def test_wk_watch_decorates_before_init_and_follows_the_current_run(sqlite_uri):
    @wk.watch(features=lambda x: {"x": x})
    def predict(x):
        return {"score": x / 10}

    assert predict(1) == {"score": 0.1}  # no run yet: just the function
    for version in ("1", "2"):
        run = wk.init(project="p", model="m", version=version, uri=sqlite_uri, system_metrics=False)
        for i in range(int(version) * 10):
            predict(i)
        run.finish()
    with Store(sqlite_uri) as store:
        for version, n in (("1", 10), ("2", 20)):
            (window,) = store.profiles.windows("p", f"model:m@{version}")
            assert Profile.from_bytes(window.data).traffic.calls.requests == n


def test_system_metrics_are_logged_as_signals_of_the_run(sqlite_uri):
    import time

    run = wk.init(project="p", uri=sqlite_uri, system_metrics=0.05)
    time.sleep(0.4)
    run.finish()
    with Store(sqlite_uri) as store:
        rss = store.signals.history(run.id, "system/process_rss_bytes")
    assert len(rss.t) >= 3 and all(v > 10e6 for v in rss.value)


def test_vector_inputs_profile_by_position_and_series_by_name():
    pd = pytest.importorskip("pandas")
    w = _watcher()
    X = RNG.normal(size=(400, 3))
    watched = w.wrap(lambda x: 0.0, Watcher.spec("predict", features=lambda x: x))
    for row in X[:200]:
        watched(row)  # a numpy vector
    for row in X[200:300]:
        watched(row.tolist())  # a list
    for row in X[300:]:
        watched(pd.Series(row, index=["0", "1", "2"]))
    prof = _window_profile(w.drain(final=True))
    assert prof.inputs() == ["0", "1", "2"] and prof.traffic.quality == {}
    assert prof["2"].count == 400 and prof["2"].mean == pytest.approx(X[:, 2].mean(), rel=1e-12)
