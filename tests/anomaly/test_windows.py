"""Windowing KPI rows: statistics against NumPy, the fixed grid, sliding windows against brute force, and
the bad-input policies (duplicates, disorder, NaN, gaps, bad timestamps) with what the report says."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from scipy.stats import linregress

from watchkeeper.anomaly.base import as_matrix
from watchkeeper.anomaly.windows import WindowReport, Windows, window_starts

T0 = pd.Timestamp("2024-03-01 00:00:00", tz="UTC")
ALL_STATS = [
    "mean", "std", "var", "min", "max", "median", "sum", "count", "first", "last", "range", "slope",
    "zero_frac", "q05", "q25", "q75", "q95",
]  # fmt: skip


def _frame(offsets_s, values, device=None, **more) -> pd.DataFrame:
    df = pd.DataFrame({"timestamp": T0 + pd.to_timedelta(np.asarray(offsets_s, dtype=float), unit="s")})
    if device is not None:
        df["device_id"] = device
    df["cpu"] = np.asarray(values, dtype=float)
    for k, v in more.items():
        df[k] = v
    return df


def _brute_stat(name: str, t_s: np.ndarray, x: np.ndarray) -> float:
    """One statistic of one window by plain NumPy, NaN values left out."""
    ok = ~np.isnan(x)
    t_s, x = t_s[ok], x[ok]
    if name == "count":
        return float(len(x))
    if len(x) == 0:
        return np.nan
    if name in ("std", "var"):
        if len(x) < 2:
            return np.nan
        return float(np.std(x, ddof=1) if name == "std" else np.var(x, ddof=1))
    if name == "slope":
        if np.ptp(t_s) == 0:
            return np.nan
        return float(linregress(t_s, x).slope)
    if name == "median" or name.startswith("q"):
        q = 0.5 if name == "median" else int(name[1:]) / 100
        return float(np.quantile(x, q))
    simple = {
        "mean": np.mean, "sum": np.sum, "min": np.min, "max": np.max, "first": lambda v: v[0],
        "last": lambda v: v[-1], "range": np.ptp, "zero_frac": lambda v: np.mean(v == 0),
    }  # fmt: skip
    return float(simple[name](x))


def _brute(df: pd.DataFrame, size_s: float, step_s: float, stats, columns, by="device_id") -> pd.DataFrame:
    """Every grid window holding a row, by looping over entities and windows: the reference."""
    # seconds from T0 (a whole number of seconds after the epoch): absolute epoch seconds as floats would
    # blur times by ~1e-7 s, enough to move a slope in its 9th digit
    base = int(T0.timestamp())
    t_all = (df["timestamp"] - T0).dt.total_seconds().to_numpy()
    rows = {}
    for dev in sorted(df[by].unique()):
        sel = (df[by] == dev).to_numpy()
        order = np.argsort(t_all[sel], kind="stable")
        t = t_all[sel][order]
        k_lo = int(np.floor((t.min() + base - size_s) / step_s)) + 1
        k_hi = int(np.floor((t.max() + base) / step_s))
        for k in range(k_lo, k_hi + 1):
            start = k * step_s - base
            inside = (t >= start) & (t < start + size_s)
            if not inside.any():
                continue
            feats = []
            for c in columns:
                x = df[c].to_numpy()[sel][order][inside]
                feats += [_brute_stat(s, t[inside] - start, x) for s in stats]
            rows[(dev, pd.Timestamp(k * step_s, unit="s", tz="UTC"))] = feats
    names = [f"{c}_{s}" for c in columns for s in stats]
    out = pd.DataFrame.from_dict(rows, orient="index", columns=names)
    out.index = pd.MultiIndex.from_tuples(out.index, names=[by, "window_start"])
    return out


def _random_kpis(seed: int, n: int = 400) -> pd.DataFrame:
    """Three devices over ~3 hours with a gap, NaN values, zeros, ties in value and in time."""
    rng = np.random.default_rng(seed)
    dev = rng.choice(["a", "b", "c"], size=n)
    t = np.round(rng.uniform(0, 3 * 3600, size=n), 1) + np.where(dev == "c", 1800.0, 0.0)
    t = np.where((dev == "b") & (t > 3600) & (t < 6000), t + 4000, t)  # a gap for b
    cpu = np.round(rng.normal(50, 10, size=n), 0)
    cpu[rng.random(n) < 0.1] = np.nan
    mem = rng.choice([0.0, 1.0, 2.5], size=n)
    df = _frame(t, cpu, device=dev, mem=mem)
    return df.drop_duplicates(["device_id", "timestamp"])


# -- statistics ----------------------------------------------------------------------------------------


def test_statistics_of_a_small_frame_agree_with_numpy():
    t = np.array([0, 60, 120, 300, 420, 599.9, 600, 660])
    x = np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=float)
    feats = Windows("10min", stats=ALL_STATS).transform(_frame(t, x))
    assert list(feats.index) == [T0, T0 + pd.Timedelta("10min")]
    first, second = feats.iloc[0], feats.iloc[1]
    w = slice(0, 6)
    assert first["cpu_mean"] == pytest.approx(23 / 6)
    assert first["cpu_std"] == pytest.approx(np.std(x[w], ddof=1))
    assert first["cpu_var"] == pytest.approx(np.var(x[w], ddof=1))
    assert (first["cpu_min"], first["cpu_max"], first["cpu_range"]) == (1.0, 9.0, 8.0)
    assert (first["cpu_sum"], first["cpu_count"], first["cpu_first"], first["cpu_last"]) == (23, 6, 3, 9)
    assert first["cpu_median"] == pytest.approx(3.5)
    for q in (5, 25, 75, 95):
        assert first[f"cpu_q{q:02d}"] == pytest.approx(np.quantile(x[w], q / 100))
    assert first["cpu_slope"] == pytest.approx(np.polyfit(t[w], x[w], 1)[0])
    assert first["cpu_zero_frac"] == 0.0
    assert second["cpu_slope"] == pytest.approx(4 / 60)  # from 2 to 6 in one minute
    assert second["cpu_std"] == pytest.approx(np.sqrt(8))


def test_output_is_float_features_only_indexed_by_entity_and_utc_window_start():
    df = _random_kpis(0)
    feats = Windows("15min", stats=["max", "mean"]).transform(df, by="device_id")
    assert feats.index.names == ["device_id", "window_start"]
    assert str(feats.index.get_level_values("window_start").tz) == "UTC"
    assert list(feats.columns) == ["cpu_max", "cpu_mean", "mem_max", "mem_mean"]
    assert (feats.dtypes == np.float64).all()
    m, names = as_matrix(feats)  # what a detector's fit/score takes
    assert names == list(feats.columns) and m.shape == feats.shape
    assert list(Windows("15min").transform(df[["timestamp", "cpu"]]).index.names) == ["window_start"]


def test_constant_series_has_zero_spread_and_is_flagged():
    df = _frame([0, 10, 20, 700, 710], [0.1, 0.1, 0.1, 0.1, 0.1], device="a", mem=[1.0, 2.0, 3.0, 4.0, 5.0])
    w = Windows("10min", stats=["std", "var", "slope"])
    feats = w.transform(df, by="device_id")
    # a mean of 0.1s is not exactly 0.1 in floating point; the spread must still be exactly 0
    assert (feats["cpu_std"] == 0.0).all() and (feats["cpu_var"] == 0.0).all()
    assert (feats["cpu_slope"] == 0.0).all()
    assert feats["mem_slope"].iloc[0] == pytest.approx(0.1)
    assert w.report.constant_columns == {"a": ["cpu"]}
    assert "constant columns in 1 entity (a: cpu)" in str(w.report)


# -- the grid ------------------------------------------------------------------------------------------


def test_entities_starting_at_different_times_share_the_grid():
    df = pd.concat(
        [_frame([30, 300, 720], [1, 2, 3], device="a"), _frame([1033, 1199, 1200], [4, 5, 6], device="b")]
    )
    w = Windows("10min", stats=["mean", "count"])
    feats = w.transform(df, by="device_id")
    starts = {d: list(feats.loc[d].index) for d in ("a", "b")}
    ten = pd.Timedelta("10min")
    assert starts["a"] == [T0, T0 + ten]
    assert starts["b"] == [T0 + ten, T0 + 2 * ten]  # b's first row at 17:13 does not start a window there
    assert feats.loc[("b", T0 + ten), "cpu_mean"] == 4.5  # 17:13 and 19:59; 20:00 opens the next window
    assert w.report.entities_starting_late == ["b"]


def test_a_gap_never_shifts_later_windows_and_fill_modes():
    df = _frame([60, 120, 45 * 60, 46 * 60], [1, 3, 10, 20])
    ten = pd.Timedelta("10min")

    none = Windows("10min", stats=["mean"])
    f = none.transform(df)
    assert list(f.index) == [T0 + i * ten for i in range(5)]
    np.testing.assert_array_equal(f["cpu_mean"], [2, np.nan, np.nan, np.nan, 15])
    pw = none.report.per_window
    assert pw["empty"].tolist() == [False, True, True, True, False]
    assert pw["n_rows"].tolist() == [2, 0, 0, 0, 2]
    assert none.report.empty_windows == 3 and "3 empty windows emitted as NaN" in str(none.report)

    drop = Windows("10min", stats=["mean"], fill="drop")
    f = drop.transform(df)
    assert list(f.index) == [T0, T0 + 4 * ten] and f["cpu_mean"].tolist() == [2, 15]
    assert drop.report.empty_windows == 3 and "dropped" in str(drop.report)

    ffill = Windows("10min", stats=["mean"], fill="ffill")
    f = ffill.transform(df)
    assert f["cpu_mean"].tolist() == [2, 2, 2, 2, 15]
    assert ffill.report.per_window["filled"].tolist() == [False, True, True, True, False]


def test_origin_moves_the_grid():
    df = _frame([0, 290, 310, 900], [1, 2, 3, 4])
    feats = Windows("10min", stats=["sum"], origin=300).transform(df)
    five = pd.Timedelta("5min")
    assert list(feats.index) == [T0 - five, T0 + five, T0 + 3 * five]  # 00:00 and 00:10 start nothing
    assert feats["cpu_sum"].tolist() == [3, 3, 4]
    assert list(Windows("10min", stats=["sum"], origin="2024-03-01 00:05").transform(df).index) == list(
        feats.index
    )


def test_window_starts_lists_the_windows_containing_each_time():
    rng = np.random.default_rng(3)
    t = rng.uniform(-5000, 5000, size=200)
    for size, step in ((600, 600), (600, 120), (600, 250)):
        got = window_starts(t, size, step)
        for ti, row in zip(t, got, strict=True):
            ks = np.arange(np.floor((ti - size) / step) - 1, np.floor(ti / step) + 2)
            want = ks[(ks * step <= ti) & (ti < ks * step + size)] * step
            np.testing.assert_array_equal(row[~np.isnan(row)], want)
    assert np.isnan(window_starts([np.nan], 60)).all()


# -- sliding windows -----------------------------------------------------------------------------------

MERGEABLE = [
    "mean",
    "std",
    "var",
    "min",
    "max",
    "sum",
    "count",
    "first",
    "last",
    "range",
    "slope",
    "zero_frac",
]


@pytest.mark.parametrize(
    ("size", "step", "stats", "method"),
    [
        (600, 600, ALL_STATS, "tumbling"),
        ("10min", "2min", MERGEABLE, "sliding (merged sub-windows)"),
        ("10min", "2min", ALL_STATS, "sliding (rows repeated per window)"),
        (600, 250, ALL_STATS, "sliding (rows repeated per window)"),
    ],
)
def test_windows_equal_brute_force_on_random_data(size, step, stats, method):
    df = _random_kpis(1, n=300)
    w = Windows(size, step=step, stats=stats, fill="drop")
    got = w.transform(df, by="device_id")
    assert w.report.method == method
    size_s = pd.Timedelta(size).total_seconds() if isinstance(size, str) else size
    step_s = pd.Timedelta(step).total_seconds() if isinstance(step, str) else step
    want = _brute(df, size_s, step_s, stats, ["cpu", "mem"])
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-9, atol=1e-9)
    assert w.report.per_window["n_rows"].sum() >= len(df)  # each row in size/step windows (>= 1)


def test_sliding_windows_each_row_in_several():
    df = _frame([0, 150, 330], [1, 2, 4])
    feats = Windows("10min", step="5min", stats=["sum", "count"]).transform(df)
    five = pd.Timedelta("5min")
    assert list(feats.index) == [T0 - five, T0, T0 + five]
    assert feats["cpu_sum"].tolist() == [3, 7, 4]
    assert feats["cpu_count"].tolist() == [2, 3, 1]


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "mean", "count"),
    [("last", 5.0, 3), ("first", 13 / 3, 3), ("mean", 14 / 3, 3), ("keep", 17 / 4, 4)],
)
def test_duplicate_timestamps_follow_the_policy(policy, mean, count):
    df = pd.concat(
        [_frame([0, 60, 60, 120], [1, 2, 4, 10], device="a"), _frame([60], [100], device="b")]
    )  # b at the same time as a's duplicates is not a duplicate
    w = Windows("10min", stats=["mean", "count"], duplicates=policy)
    feats = w.transform(df, by="device_id")
    assert feats.loc[("a", T0), "cpu_mean"] == pytest.approx(mean)
    assert feats.loc[("a", T0), "cpu_count"] == count
    assert w.report.duplicates_resolved == 1
    assert w.report.rows_used == (5 if policy == "keep" else 4)
    expected = {"last": "kept last", "first": "kept first", "mean": "averaged", "keep": "kept 1 rows"}[policy]
    assert expected in str(w.report)


def test_unsorted_rows_give_the_sorted_result_and_are_counted():
    df = _random_kpis(2)
    stats = ["mean", "first", "last", "slope", "q25"]
    ordered = df.sort_values(["device_id", "timestamp"])
    w = Windows("10min", stats=stats)
    want = w.transform(ordered, by="device_id")
    assert w.report.unsorted_rows_sorted == 0
    got = w.transform(df.sample(frac=1.0, random_state=0), by="device_id")
    pd.testing.assert_frame_equal(got, want)
    assert w.report.unsorted_rows_sorted > 0

    # by hand: 60 comes after 120 and 30 after 180; interleaved devices are not out of order
    small = pd.concat(
        [_frame([0, 120, 60, 180, 30], [1, 2, 3, 4, 5], device="a"), _frame([0], [0], device="b")]
    )
    w.transform(small.sort_index(kind="stable"), by="device_id")
    assert w.report.unsorted_rows_sorted == 2
    assert "sorted 2 out-of-order rows" in str(w.report)


def test_nan_values_are_left_out_and_flagged():
    df = _frame(
        [0, 60, 120, 600, 660, 1200], [1, np.nan, 3, np.nan, np.inf, 7], mem=[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    )
    w = Windows("10min", stats=["mean", "count", "std"])
    feats = w.transform(df)
    assert feats["cpu_mean"].tolist()[0] == 2.0 and feats["cpu_count"].tolist() == [2, 0, 1]
    assert np.isnan(feats["cpu_mean"].iloc[1]) and np.isnan(feats["cpu_std"].iloc[1])  # all missing
    assert np.isnan(feats["cpu_std"].iloc[2])  # one value: no sample spread
    assert feats["mem_mean"].tolist() == [2.0, 4.5, 6.0]  # the other column keeps its rows
    assert w.report.nan_values == {"cpu": 3, "mem": 0}
    assert w.report.per_window["has_nan"].tolist() == [True, True, False]


def test_short_windows_get_nan_features():
    df = _frame([0, 60, 120, 600, 660], [1, 2, 3, 4, 5])
    w = Windows("10min", stats=["mean"], min_rows=3)
    feats = w.transform(df)
    assert feats["cpu_mean"].iloc[0] == 2.0 and np.isnan(feats["cpu_mean"].iloc[1])
    assert w.report.per_window["short"].tolist() == [False, True]
    assert w.report.short_windows == 1


def test_bad_timestamps_and_missing_entities_are_dropped_and_counted():
    df = pd.DataFrame(
        {
            "timestamp": [
                "2024-03-01T00:00:10Z",
                "not a time",
                None,
                "2024-03-01T00:01:00Z",
                "2024-03-01T00:02:00Z",
            ],
            "device_id": ["a", "a", "a", None, "a"],
            "cpu": [1.0, 2.0, 3.0, 4.0, 5.0],
        }
    )
    w = Windows("10min", stats=["sum"])
    feats = w.transform(df, by="device_id")
    assert feats["cpu_sum"].tolist() == [6.0]
    assert (w.report.bad_timestamps_dropped, w.report.missing_by_dropped) == (2, 1)
    assert (w.report.rows_in, w.report.rows_used) == (5, 2)


# -- input forms ---------------------------------------------------------------------------------------


def test_epoch_seconds_tz_aware_strings_and_index_give_the_same_windows():
    df = _random_kpis(4)
    w = Windows("10min", stats=["mean", "max", "slope"])
    want = w.transform(df, by="device_id")
    epoch = (df["timestamp"] - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    forms = {
        "epoch float": epoch,
        "naive": df["timestamp"].dt.tz_localize(None),
        "paris": df["timestamp"].dt.tz_convert("Europe/Paris"),
        "strings": df["timestamp"].dt.tz_convert("America/New_York").astype(str),
    }
    for name, ts in forms.items():
        got = w.transform(df.assign(timestamp=ts), by="device_id")
        pd.testing.assert_frame_equal(got, want, obj=name)
    whole = df[df["timestamp"].dt.microsecond == 0]
    as_int = whole.assign(timestamp=(whole["timestamp"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta("1s"))
    assert as_int["timestamp"].dtype == np.int64 and len(whole) > 10
    pd.testing.assert_frame_equal(w.transform(as_int, by="device_id"), w.transform(whole, by="device_id"))
    indexed = w.transform(df.set_index("timestamp"), by="device_id")
    pd.testing.assert_frame_equal(indexed, want)


def test_polars_input_equals_pandas_input():
    pl = pytest.importorskip("polars")
    df = _random_kpis(5)
    w = Windows("20min", step="5min", stats=["mean", "q95", "last"])
    want = w.transform(df, by="device_id")
    got = w.transform(pl.from_pandas(df), by="device_id")
    pd.testing.assert_frame_equal(got, want, check_index_type=False)


def test_several_by_columns():
    df = pd.concat(
        [
            _frame([0, 60], [1, 2], device="a", site="x"),
            _frame([0, 700], [3, 4], device="a", site="y"),
            _frame([30], [5], device="b", site="x"),
        ]
    )
    feats = Windows("10min", stats=["sum"]).transform(df, by=["site", "device_id"])
    assert feats.index.names == ["site", "device_id", "window_start"]
    assert feats["cpu_sum"].to_dict() == {
        ("x", "a", T0): 3.0,
        ("x", "b", T0): 5.0,
        ("y", "a", T0): 3.0,
        ("y", "a", T0 + pd.Timedelta("10min")): 4.0,
    }


# -- the report and errors -----------------------------------------------------------------------------


def test_report_is_logged(caplog):
    df = pd.concat(
        [_frame([0, 120, 60, 60, 3000], [1, 2, 3, 4, 5], device="a"), _frame([900], [0], device="b")]
    )
    w = Windows("10min", stats=["mean"])
    with caplog.at_level(logging.INFO, logger="watchkeeper.anomaly"):
        w.transform(df, by="device_id")
    assert isinstance(w.report, WindowReport)
    text = str(w.report)
    assert text.startswith("windowed 5 of 6 rows (2 entities) into")
    for part in (
        "sorted 2 out-of-order rows",  # both rows at 60 s came after the one at 120 s
        "resolved 1 duplicate timestamps (kept last)",
        "empty windows",
    ):
        assert part in text
    assert text in caplog.text
    assert w.report.entities_starting_late == ["b"]
    assert w.report.per_window.index.equals(w.transform(df, by="device_id").index)


@pytest.mark.parametrize(
    ("make", "kwargs", "message"),
    [
        (lambda: Windows("10min", stats=["mean", "kurtosis"]), {}, "unknown statistic 'kurtosis'"),
        (lambda: Windows("10min", step="11min"), {}, "step must not exceed size"),
        (lambda: Windows("10 parsecs"), {}, "size: expected a duration"),
        (lambda: Windows(-5), {}, "expected a positive duration"),
        (lambda: Windows("10min", fill="zero"), {}, "fill must be one of"),
        (lambda: Windows("10min", duplicates="max"), {}, "duplicates must be one of"),
        (lambda: Windows("10min", time="ts"), {}, "time column 'ts' not found"),
        (lambda: Windows("10min"), {"by": "site"}, "by column 'site' not found"),
        (lambda: Windows("10min", columns=["disk"]), {}, "KPI column 'disk' not found"),
        (lambda: Windows("10min", columns=["name"]), {}, "KPI column 'name' must be numeric"),
    ],
)
def test_clear_errors(make, kwargs, message):
    df = _frame([0, 60], [1, 2], name=["x", "y"])
    with pytest.raises(ValueError, match=message):
        make().transform(df, **kwargs)


def test_unknown_statistic_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"known: mean, std, var, .*qNN"):
        Windows("1h", stats=["p99"])


def test_input_frame_is_left_as_it_was():
    df = _frame([120, 0, 60, 60], [np.inf, 1.0, np.nan, 3.0], device="a")
    before = df.copy()
    Windows("10min", stats=["mean", "q50"], duplicates="mean").transform(df, by="device_id")
    pd.testing.assert_frame_equal(df, before)


def test_empty_input_and_all_rows_dropped_give_empty_features():
    df = pd.DataFrame({"timestamp": ["garbage", None], "device_id": ["a", "b"], "cpu": [1.0, 2.0]})
    w = Windows("10min", stats=["mean"])
    feats = w.transform(df, by="device_id")
    assert feats.shape == (0, 1) and feats.index.names == ["device_id", "window_start"]
    assert w.report.bad_timestamps_dropped == 2 and w.report.entities == 0


def test_epoch_milliseconds_are_refused_with_a_hint():
    df = pd.DataFrame({"timestamp": [1.7e12, 1.7e12 + 1000], "cpu": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"time column 'timestamp' .* out of range for epoch seconds"):
        Windows("10min").transform(df)


def test_sliding_over_a_long_gap_repeats_rows_instead_of_a_dense_grid():
    df = _frame([0, 20 * 86400], [1.0, 2.0])  # 1.7 million one-second steps apart
    w = Windows("2s", step="1s", stats=["mean", "count"], fill="drop")
    feats = w.transform(df)
    assert w.report.method == "sliding (rows repeated per window)"
    one, day20 = pd.Timedelta("1s"), T0 + pd.Timedelta("20D")
    assert list(feats.index) == [T0 - one, T0, day20 - one, day20]
    assert feats["cpu_mean"].tolist() == [1, 1, 2, 2] and w.report.empty_windows > 1_000_000
