"""watchkeeper.spark on a local Spark session: the merged Spark profile equals the local engine's in its exact
parts, and within the sketches' bounds of the exact answers in the rest; windows, partitions, time zones and
errors."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from watchkeeper import spark as wks
from watchkeeper.profile import Profile, profile
from watchkeeper.profile import batch as local

# PySpark 4 warns at session start and on mapInArrow that it does not support pandas 3 fully; no pandas here
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC, not on the hour
HOUR = 3600.0
ROWS = 15_000
QS = np.linspace(0.01, 0.99, 33)


def make_table(rows: int = ROWS, seed: int = 11) -> pa.Table:
    rng = np.random.default_rng(seed)
    t_us = T0 * 10**6 + rng.integers(0, 5 * 3600 * 10**6, rows)
    x = rng.lognormal(1.0, 1.0, rows)
    x[rng.random(rows) < 0.03] = np.nan
    x[rng.random(rows) < 0.004] = np.inf
    x[rng.random(rows) < 0.004] = -np.inf
    colours = np.array(["red", "green", "blue", "cyan", "magenta"])[
        rng.choice(5, rows, p=[0.5, 0.2, 0.2, 0.05, 0.05])
    ]
    return pa.table(
        {
            "t": pa.array(t_us, pa.timestamp("us", tz="UTC"), mask=rng.random(rows) < 0.02),
            "x": pa.array(x, mask=rng.random(rows) < 0.04),
            "n": pa.array(rng.integers(-1000, 1000, rows), mask=rng.random(rows) < 0.05),
            "f32": pa.array(rng.normal(0.0, 1.0, rows).astype(np.float32)),
            "c": pa.array(colours, mask=rng.random(rows) < 0.05),
            "id": pa.array([f"user_{k}" for k in rng.integers(0, 4000, rows)]),  # beyond the exact 1,024
            "b": pa.array(rng.random(rows) < 0.3, mask=rng.random(rows) < 0.01),
        }
    )


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table()


@pytest.fixture(scope="module")
def files(table, tmp_path_factory):
    """The table as three Parquet files (row groups of 1,500 rows) and as two CSV files."""
    root = tmp_path_factory.mktemp("spark-data")
    (root / "parquet" / "day=2").mkdir(parents=True)
    pq.write_table(table.slice(0, 6_000), root / "parquet" / "a.parquet", row_group_size=1_500)
    pq.write_table(table.slice(6_000, 5_000), root / "parquet" / "b.parquet", row_group_size=1_500)
    pq.write_table(table.slice(11_000), root / "parquet" / "day=2" / "c.parquet", row_group_size=1_500)
    (root / "csv").mkdir()
    pacsv.write_csv(table.slice(0, 8_000), root / "csv" / "a.csv")
    pacsv.write_csv(table.slice(8_000), root / "csv" / "b.csv")
    return root


# -- comparing profiles --------------------------------------------------------------------------------------


def exact_parts(p: Profile) -> dict[str, object]:
    """What merging keeps exactly: rows, and per column its counts, min, max, booleans, string counts,
    frequent items while exact, distinct count (exact sets and HyperLogLog registers both merge exactly)."""
    out: dict[str, object] = {"rows": p.rows, "columns": list(p.columns)}
    for name, col in p.columns.items():
        part: dict[str, object] = {"kind": col.kind, "counts": col.counts.to_bytes(), "invalid": col.invalid}
        part["bools"] = (col.true_count, col.false_count)
        if col.numeric is not None:
            m, q = col.numeric.moments, col.numeric.quantiles
            part["numeric"] = (col.numeric.seen, m.n, m.min, m.max, q.n, q.min, q.max)
        if col.strings is not None:
            s = col.strings
            part["strings"] = (s.seen, s.distinct.estimate, s.lengths.n, s.lengths.min, s.lengths.max)
            if s.frequent.is_exact:
                part["frequent"] = {it.value: it.count for it in s.frequent.top(10**6)}
        out[name] = part
    return out


def micros(column: pa.ChunkedArray) -> np.ndarray:
    """Integer microseconds since the epoch of a timestamp column (NaN where missing)."""
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy(zero_copy_only=False)


def finite_values(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        us = micros(column)
        return np.sort(us[np.isfinite(us)] / 1e6)
    x = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return np.sort(x[np.isfinite(x)])


def assert_matches(spark_p: Profile, local_p: Profile, data: pa.Table) -> None:
    """Exact parts equal to the local engine's; moments to 1e-9; every quantile within the KLL rank error of
    the exact sorted data; distinct counts within 3 HyperLogLog standard errors of the exact count."""
    assert exact_parts(spark_p) == exact_parts(local_p)
    for name, col in spark_p.columns.items():
        if col.numeric is not None and col.numeric.moments.n:
            a, b = col.numeric.moments, local_p[name].numeric.moments
            assert a.mean == pytest.approx(b.mean, rel=1e-9, abs=1e-12), name
            assert a.variance() == pytest.approx(b.variance(), rel=1e-9, abs=1e-12), name
            x = finite_values(data[name])
            assert a.n == x.size
            assert a.mean == pytest.approx(x.mean(), rel=1e-9, abs=1e-9), name
            est = np.atleast_1d(col.quantile(QS))
            lo = np.searchsorted(x, est, "left") / x.size
            hi = np.searchsorted(x, est, "right") / x.size
            err = np.where((lo <= QS) & (hi >= QS), 0.0, np.minimum(np.abs(QS - lo), np.abs(QS - hi)))
            bound = col.numeric.quantiles.rank_error + 1.0 / x.size
            assert err.max() <= bound, f"{name}: rank error {err.max():.4f} > {bound:.4f}"
        if col.strings is not None:
            truth = len(set(data[name].drop_null().to_pylist()))
            d = col.strings.distinct
            assert abs(d.estimate - truth) <= 3 * d.relative_standard_error * truth, (name, d.estimate, truth)


def window_rows(table: pa.Table, window: float = HOUR) -> dict[float, pa.Table]:
    """The table's rows by window, computed on integer microseconds (apart from both engines)."""
    starts = np.floor(micros(table["t"]) / (window * 1e6)) * window
    rest = table.drop_columns(["t"])
    return {float(s): rest.filter(pa.array(starts == s)) for s in np.unique(starts[np.isfinite(starts)])}


def assert_windows_match(got: local.BatchProfile, ref: local.BatchProfile, table: pa.Table) -> None:
    by_window = window_rows(table)
    assert (got.rows, got.untimed, got.window) == (ref.rows, ref.untimed, ref.window)
    assert got.untimed == table["t"].null_count > 0
    assert list(got.windows) == list(ref.windows) == list(by_window)
    for start, p in got.windows.items():
        assert p.rows == ref.windows[start].rows == by_window[start].num_rows
        assert_matches(p, ref.windows[start], by_window[start])


# -- files ---------------------------------------------------------------------------------------------------


def test_parquet_files_profile_as_the_local_engine_profiles_them(spark, files, table):
    got = wks.profile_files(files / "parquet")  # on the active session
    ref = local.profile_files(files / "parquet")
    assert got.rows == ref.rows == ROWS and got.windows == {}
    assert_matches(got.whole, ref.whole, table)


def test_parquet_windows_equal_the_local_engines(spark, files, table):
    got = wks.profile_files(files / "parquet", time="t", window=HOUR, spark=spark)
    assert_windows_match(got, local.profile_files(files / "parquet", time="t", window=HOUR), table)


def test_csv_windows_equal_the_local_engines(spark, files):
    got = wks.profile_files(files / "csv", time="t", window=HOUR, columns=["x", "c"], spark=spark)
    ref = local.profile_files(files / "csv", time="t", window=HOUR, columns=["x", "c"])
    read = pa.concat_tables([pacsv.read_csv(files / "csv" / f) for f in ("a.csv", "b.csv")])
    assert_windows_match(got, ref, read.select(["t", "x", "c"]))


# -- DataFrames ----------------------------------------------------------------------------------------------


def test_a_dataframe_from_sparks_parquet_reader(spark, files, table):
    df = spark.read.parquet(str(files / "parquet" / "*.parquet"), str(files / "parquet" / "day=2"))
    assert_matches(wks.profile(df), local.profile_files(files / "parquet").whole, table)
    ref = local.profile_files(files / "parquet", time="t", window=HOUR)
    assert_windows_match(wks.profile_windows(df, "t", HOUR), ref, table)


def test_the_window_grid_does_not_depend_on_the_session_time_zone(spark, table):
    df = spark.createDataFrame(table.select(["t", "x", "c"]))
    ref = local.profile_table(table.select(["t", "x", "c"]), time="t", window=HOUR)
    spark.conf.set("spark.sql.session.timeZone", "Asia/Kolkata")  # +05:30: a misread grid would show
    try:
        got = wks.profile_windows(df, "t", HOUR, origin=0.0)
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert_windows_match(got, ref, table.select(["t", "x", "c"]))
    assert all(s % HOUR == 0 for s in got.windows)


def test_an_in_memory_dataframe_with_more_partitions_than_rows(spark, table):
    small = table.slice(0, 7)
    df = spark.createDataFrame(small).repartition(16)  # at least 9 empty partitions
    assert df.rdd.getNumPartitions() == 16
    assert_matches(wks.profile(df), profile(small), small)
    got = wks.profile_windows(df, "t", HOUR)
    ref = local.profile_table(small, time="t", window=HOUR)
    assert (got.rows, got.untimed, list(got.windows)) == (ref.rows, ref.untimed, list(ref.windows))
    for start, p in ref.windows.items():
        assert exact_parts(got.windows[start]) == exact_parts(p)


def test_an_empty_dataframe_profiles_as_an_empty_table(spark, table):
    df = spark.createDataFrame(table).filter("false")
    got = wks.profile(df)
    assert got.rows == 0 and list(got.columns) == table.column_names
    assert exact_parts(got) == exact_parts(profile(table.slice(0, 0)))
    windows = wks.profile_windows(df, "t", 60.0)
    assert (windows.rows, windows.untimed, windows.windows) == (0, 0, {})


def test_declared_kinds_reach_the_workers(spark, table):
    df = spark.createDataFrame(table.select(["n", "c"]))
    got = wks.profile(df, schema={"n": "categorical"})
    assert got["n"].kind == "categorical"
    ref = profile(table.select(["n", "c"]), schema={"n": "categorical"})
    assert exact_parts(got) == exact_parts(ref)


# -- errors and set-up ---------------------------------------------------------------------------------------


def test_a_bad_time_column_or_window_is_refused_naming_it(spark, files, table):
    df = spark.createDataFrame(table.select(["t", "x", "c", "b"]))
    with pytest.raises(ValueError, match=r"time: no column 'when' in the data \(columns: t, x, c, b\)"):
        wks.profile_windows(df, "when", HOUR)
    with pytest.raises(ValueError, match=r"time: column 'b' is boolean; expected a timestamp"):
        wks.profile_windows(df, "b", HOUR)
    with pytest.raises(ValueError, match=r"window: expected a positive number of seconds, got 0"):
        wks.profile_windows(df, "t", 0)
    with pytest.raises(ValueError, match=r"schema: column 'x': kind must be one of"):
        wks.profile(df, schema={"x": "number"})
    with pytest.raises(ValueError, match=r"schema: no column\(s\) \['y'\] in the data"):
        wks.profile(df, schema={"y": "numeric"})
    with pytest.raises(ValueError, match=r"time: no column 'when' in a.parquet"):
        wks.profile_files(files / "parquet", time="when", window=HOUR)
    with pytest.raises(ValueError, match=r"a.parquet: no column\(s\) \['nope'\]"):
        wks.profile_files(files / "parquet", columns=["nope"])
    # strings that are no times: found by a task, raised on the driver as the ValueError it was
    with pytest.raises(ValueError, match=r"^time column 'c': expected .* got strings such as"):
        wks.profile_windows(df.filter("c is not null"), "c", HOUR)


def test_the_session_runs_workers_on_this_interpreter_in_utc(spark):
    assert spark.conf.get("spark.sql.session.timeZone") == "UTC"
    assert spark.conf.get("spark.sql.execution.arrow.pyspark.enabled") == "true"
    assert wks.session("local[2]", sql_shuffle_partitions=3) is spark  # the running session, configured
    assert spark.conf.get("spark.sql.shuffle.partitions") == "3"

    def where(batches):
        for _ in batches:
            yield pa.RecordBatch.from_pylist([{"python": sys.executable}])

    seen = {r.python for r in spark.range(2, numPartitions=2).mapInArrow(where, "python string").collect()}
    assert seen == {sys.executable}


def test_without_pyspark_the_error_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    pq.write_table(pa.table({"x": [1.0]}), tmp_path / "a.parquet")
    for call in (lambda: wks.session(), lambda: wks.profile_files(tmp_path), lambda: wks.profile(object())):
        with pytest.raises(ModuleNotFoundError, match=r"needs PySpark: pip install 'watchkeeper\[spark\]'"):
            call()
