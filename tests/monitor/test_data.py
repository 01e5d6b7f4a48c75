"""Data signals: drift against watchkeeper.drift and scipy on the same data, missing and type-change rates
counted by hand from the raw values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from watchkeeper.drift import drift
from watchkeeper.monitor import data
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.profile import Profile, profile

RNG = np.random.default_rng(23)


def _ctx(prof: Profile | None, reference: Profile | None, alpha: float = 0.01) -> WindowContext:
    return WindowContext(
        store=None,  # type: ignore[arg-type]
        project="p",
        model="m",
        version="1",
        subject="model:m@1",
        start=0.0,
        end=60.0,
        profile=prof,
        reference=reference,
        reference_info=None,
        training_run=None,
        settings=MonitorSettings(alpha=alpha),
        now=90.0,
    )


def _signals(ctx: WindowContext) -> dict[tuple[str, str | None], float]:
    out = {}
    for d in data.derive(ctx):
        assert set(d.labels) <= {"feature"}
        key = (d.name, d.labels.get("feature"))
        assert key not in out, f"{key} derived twice"
        out[key] = d.value
    return out


def _with_roles(p: Profile, roles: dict[str, str]) -> Profile:
    return Profile(p.columns, rows=p.rows, roles=roles)


def test_drift_per_feature_is_the_drift_modules_answer_over_the_inputs_only():
    n_ref, n_cur = 5000, 2000
    ref_raw = {
        "x": RNG.normal(0.0, 1.0, n_ref),
        "y": RNG.normal(10.0, 2.0, n_ref),
        "c": RNG.choice(["a", "b", "c"], n_ref, p=[0.5, 0.3, 0.2]),
        "score": RNG.uniform(0, 1, n_ref),
    }
    cur_raw = {
        "x": RNG.normal(0.5, 1.0, n_cur),  # shifted by half a standard deviation
        "y": RNG.normal(10.0, 2.0, n_cur),
        "c": RNG.choice(["a", "b", "c"], n_cur, p=[0.5, 0.3, 0.2]),
        "score": RNG.uniform(0.5, 1, n_cur),  # an output: drifts, but is not a feature
    }
    ref = profile(ref_raw)
    cur = _with_roles(profile(cur_raw), {"score": "output"})
    sig = _signals(_ctx(cur, ref))

    expected = drift(ref, cur, columns=["x", "y", "c"], alpha=0.01)
    features = {f for name, f in sig if name == "drift_score"}
    assert features == {"x", "y", "c"}
    for col in expected.columns:
        assert sig[("drift_score", col.column)] == col.statistic
        assert sig[("drift_p_value", col.column)] == col.p_value
        assert sig[("drift_detected", col.column)] == float(col.drifted)
    assert sig[("drift_detected", "x")] == 1.0
    assert sig[("drift_detected", "y")] == 0.0
    assert sig[("drift_detected", "c")] == 0.0
    # the profile-based KS statistic is the exact one within the sketches' error
    exact = stats.ks_2samp(ref_raw["x"], cur_raw["x"]).statistic
    assert sig[("drift_score", "x")] == pytest.approx(exact, abs=0.02)
    assert sig[("dataset_drift_share", None)] == pytest.approx(1 / 3)
    assert sig[("dataset_drift", None)] == 0.0  # 1 of 3 is below the default share of 0.5
    assert ("missing_rate", "score") not in sig


def test_dataset_drift_when_most_features_drift():
    ref = profile({f"f{i}": RNG.normal(0, 1, 3000) for i in range(4)})
    shifted = {f"f{i}": RNG.normal(1.0 if i < 3 else 0.0, 1, 1000) for i in range(4)}
    sig = _signals(_ctx(profile(shifted), ref))
    detected = [sig[("drift_detected", f"f{i}")] for i in range(4)]
    assert detected == [1.0, 1.0, 1.0, 0.0]
    assert sig[("dataset_drift_share", None)] == 0.75
    assert sig[("dataset_drift", None)] == 1.0


def test_missing_rate_counts_nulls_nan_and_rows_without_the_column():
    x = RNG.normal(size=400)
    x[RNG.choice(400, 30, replace=False)] = np.nan
    values = [None if i % 16 == 0 else float(v) for i, v in enumerate(x)]
    a = profile({"x": values, "z": RNG.normal(size=400)})
    b = profile({"z": RNG.normal(size=100)})  # a replica whose inputs lacked x
    sig = _signals(_ctx(a.merge(b), None))
    nones = sum(v is None for v in values)
    nans = sum(v is not None and math.isnan(v) for v in values)
    assert sig[("missing_rate", "x")] == (nones + nans + 100) / 500
    assert sig[("missing_rate", "z")] == 0.0
    # without a reference: missing values only, no drift and no type change
    assert {name for name, _ in sig} == {"missing_rate"}


def test_type_change_rate_is_the_share_of_values_of_another_kind():
    ref = profile(
        {"num": RNG.normal(size=500), "cat": RNG.choice(["a", "b"], 500), "flag": [True, False] * 250}
    )
    num = np.array([1.0, 2, "3", True, None, "abc", float("nan"), 7, 8.5, None], dtype=object)
    cat = np.array(["a", 3, "b", 4.5, None, "b", "a", "a"], dtype=object)
    flag = np.array([True, False, 1, "yes", True, None], dtype=object)
    cur = profile({"num": num}).merge(profile({"cat": cat})).merge(profile({"flag": flag}))
    sig = _signals(_ctx(cur, ref))

    def by_hand(values: np.ndarray, ok: tuple[type, ...], excluded: tuple[type, ...] = ()) -> float:
        present = [v for v in values.tolist() if v is not None]
        same = [v for v in present if isinstance(v, ok) and not isinstance(v, excluded)]
        return 1 - len(same) / len(present)

    # a number is an int or a float (NaN too), but not a bool; a string stays a string even if it reads "3"
    assert sig[("type_change_rate", "num")] == pytest.approx(by_hand(num, (int, float), (bool,)))
    assert sig[("type_change_rate", "num")] == pytest.approx(3 / 8)
    assert sig[("type_change_rate", "cat")] == pytest.approx(by_hand(cat, (str,)))
    assert sig[("type_change_rate", "flag")] == pytest.approx(by_hand(flag, (bool,)))


def test_type_change_rate_of_a_declared_numeric_column_counts_unparseable_strings():
    ref = profile({"amount": RNG.normal(size=200)}, schema={"amount": "numeric"})
    cur = profile({"amount": ["1.5", "abc", "2", None, "n/a", "3e2"]}, schema={"amount": "numeric"})
    sig = _signals(_ctx(cur, ref))
    assert sig[("type_change_rate", "amount")] == pytest.approx(2 / 5)  # "abc" and "n/a" of 5 present
    assert sig[("missing_rate", "amount")] == pytest.approx(1 / 6)


def test_no_comparable_feature_gives_nan_dataset_drift():
    ref = profile({"a": RNG.normal(size=100)})
    sig = _signals(_ctx(profile({"b": RNG.normal(size=100)}), ref))
    assert math.isnan(sig[("dataset_drift_share", None)]) and math.isnan(sig[("dataset_drift", None)])
    assert not any(name == "drift_score" for name, _ in sig)


def test_nothing_without_a_profile():
    assert list(data.derive(_ctx(None, profile({"a": [1.0]})))) == []
