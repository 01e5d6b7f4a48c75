"""The local engine for tables and files too large to hold at once (watchkeeper.profile.batch): windows
against a pandas groupby of the same rows, chunking invariance, every way of giving a time, files, and bad
input."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from watchkeeper.profile import Profile
from watchkeeper.profile.batch import (
    BatchProfile,
    epoch_seconds,
    iter_batches,
    profile_batches,
    profile_files,
    profile_table,
    window_starts,
)

T0 = 1_700_000_000  # 2023-11-14 22:13:20 UTC: not on an hour, so the first window starts before the data
HOUR = 3600.0
ROWS = 12_000


def make_table(rows: int = ROWS, seed: int = 7) -> pa.Table:
    """Numbers with NaN, ±inf and nulls, ints, categorical strings with nulls, booleans, and a timestamp
    column over about 6 hours with 2% missing."""
    rng = np.random.default_rng(seed)
    t_us = T0 * 10**6 + rng.integers(0, 6 * 3600 * 10**6, rows)
    t_missing = rng.random(rows) < 0.02
    x = rng.normal(10.0, 3.0, rows)
    x[rng.random(rows) < 0.03] = np.nan
    x[rng.random(rows) < 0.005] = np.inf
    x[rng.random(rows) < 0.005] = -np.inf
    x_missing = rng.random(rows) < 0.04
    levels = np.array(["red", "green", "blue", "cyan", "magenta"])
    c = levels[rng.choice(5, rows, p=[0.5, 0.2, 0.15, 0.1, 0.05])]
    c_missing = rng.random(rows) < 0.05
    return pa.table(
        {
            "t": pa.array(t_us, pa.timestamp("us", tz="UTC"), mask=t_missing),
            "x": pa.array(x, mask=x_missing),
            "n": pa.array(rng.integers(-500, 500, rows)),
            "c": pa.array(c, mask=c_missing),
            "b": pa.array(rng.random(rows) < 0.3),
        }
    )


def exact_parts(p: Profile) -> dict[str, dict[str, object]]:
    """What merging keeps exactly, column by column (quantiles only by their count and extremes)."""
    out: dict[str, dict[str, object]] = {"": {"rows": p.rows, "columns": list(p.columns)}}
    for name, col in p.columns.items():
        part: dict[str, object] = {"kind": col.kind, "counts": col.counts.to_bytes(), "invalid": col.invalid}
        part["bools"] = (col.true_count, col.false_count)
        if col.numeric is not None:
            m, q = col.numeric.moments, col.numeric.quantiles
            part["numeric"] = (col.numeric.seen, m.n, m.min, m.max, q.n, q.min, q.max)
        if col.strings is not None:
            s = col.strings
            top = {it.value: (it.count, it.lower_bound, it.upper_bound) for it in s.frequent.top(10**6)}
            part["strings"] = (s.seen, top, s.distinct.estimate, s.lengths.n, s.lengths.min, s.lengths.max)
        out[name] = part
    return out


def assert_same_profile(a: Profile, b: Profile) -> None:
    """Exact parts equal; means and variances to 1e-9 relative; each quantile of ``a`` within the rank
    error bound of ``b``'s at the same q."""
    assert exact_parts(a) == exact_parts(b)
    for name, col in a.columns.items():
        if col.numeric is None or col.numeric.moments.n == 0:
            continue
        other = b[name].numeric
        assert other is not None
        ma, mb = col.numeric.moments, other.moments
        assert ma.mean == pytest.approx(mb.mean, rel=1e-9, abs=1e-12)
        assert ma.variance() == pytest.approx(mb.variance(), rel=1e-9, abs=1e-12)
        qs = np.linspace(0.01, 0.99, 25)
        est = np.atleast_1d(col.quantile(qs))
        ranks_in_b = other.quantiles.rank(est)
        assert np.all(np.abs(ranks_in_b - qs) <= 2 * col.numeric.quantiles.rank_error + 1e-12)


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return make_table()


# -- windows against pandas ----------------------------------------------------------------------------------


def test_windows_match_a_pandas_groupby_of_the_same_rows(table):
    result = profile_table(table, time="t", window=HOUR)
    # the window of each row in integer microseconds, apart from the engine's float seconds
    t_us = pa.compute.cast(table["t"], pa.int64()).to_numpy(zero_copy_only=False)  # NaN where missing
    df = table.drop_columns(["t"]).to_pandas()
    df["w"] = np.floor(t_us / 3_600_000_000) * HOUR
    timed = df.dropna(subset=["w"])
    groups = timed.groupby("w")

    assert result.window == HOUR
    assert result.whole is None
    assert result.rows == ROWS
    assert result.untimed == int(np.isnan(t_us).sum()) > 0
    assert list(result.windows) == sorted(groups.groups)  # oldest first
    assert len(result.windows) == 7  # 6 hours of data that do not start on the hour
    assert min(result.windows) == math.floor(T0 / HOUR) * HOUR
    for start, g in groups:
        p = result.windows[float(start)]
        assert "t" not in p  # the time column is not profiled
        assert p.rows == len(g)
        x = g["x"]
        finite = x[np.isfinite(x)]
        col = p["x"]
        assert col.count == len(g)
        assert col.missing + col.counts.nan == int(x.isna().sum())  # pandas holds both as NaN
        assert col.counts.posinf == int((x == np.inf).sum())
        assert col.counts.neginf == int((x == -np.inf).sum())
        assert col.numeric.moments.n == len(finite)
        assert col.numeric.moments.sum == pytest.approx(finite.sum(), rel=1e-12)
        assert (col.min, col.max) == (finite.min(), finite.max())
        n = p["n"]
        assert n.numeric.moments.sum == pytest.approx(float(g["n"].sum()), rel=1e-12, abs=1e-9)
        assert (n.min, n.max) == (g["n"].min(), g["n"].max())
        counts = g["c"].value_counts()
        top = {it.value: it.count for it in p["c"].top(10)}
        assert top == counts.to_dict()
        assert p["c"].missing == int(g["c"].isna().sum())
        assert (p["b"].true_count, p["b"].false_count) == (int(g["b"].sum()), int((~g["b"]).sum()))


def test_missing_and_nan_counts_of_a_window_split_as_arrow_holds_them(table):
    # pandas merges null and NaN into NaN; Arrow keeps them apart, and the profile with it
    result = profile_table(table, time="t", window=HOUR)
    starts = window_starts(epoch_seconds(table["t"]), HOUR)
    x = table["x"]
    null = ~pa.compute.is_valid(x).to_numpy(zero_copy_only=False)
    nan = np.isnan(x.to_numpy(zero_copy_only=False)) & ~null
    for start, p in result.windows.items():
        rows = starts == start
        assert p["x"].missing == int((null & rows).sum())
        assert p["x"].counts.nan == int((nan & rows).sum())


def test_origin_shifts_the_grid_and_whole_has_no_windows(table):
    shifted = profile_table(table, time="t", window=HOUR, origin=1800.0)
    assert all((s - 1800.0) % HOUR == 0 for s in shifted.windows)
    assert sum(p.rows for p in shifted.windows.values()) + shifted.untimed == ROWS
    whole = profile_table(table)
    assert whole.windows == {} and whole.window is None
    assert whole.whole.rows == ROWS and "t" in whole.whole


# -- chunking ------------------------------------------------------------------------------------------------


def test_chunking_changes_no_exact_part(table):
    small = profile_batches(table.to_batches(max_chunksize=500), chunk_rows=1_000)
    large = profile_batches(table.to_batches(max_chunksize=500), chunk_rows=1_000_000)
    assert small.rows == large.rows == ROWS
    assert_same_profile(small.whole, large.whole)
    assert_same_profile(large.whole, profile_table(table).whole)

    seen: list[int] = []
    by_window_small = profile_batches(
        table.to_batches(max_chunksize=500), time="t", window=HOUR, chunk_rows=1_000, on_chunk=seen.append
    )
    by_window_large = profile_table(table, time="t", window=HOUR)
    assert sum(seen) == ROWS and len(seen) == ROWS // 1_000
    assert by_window_small.untimed == by_window_large.untimed
    assert list(by_window_small.windows) == list(by_window_large.windows)
    for start, p in by_window_large.windows.items():
        assert_same_profile(by_window_small.windows[start], p)


def test_batch_profiles_merge_like_their_rows(table):
    a = profile_table(table.slice(0, 5_000), time="t", window=HOUR)
    b = profile_table(table.slice(5_000), time="t", window=HOUR)
    both = a.merge(b)
    assert (both.rows, both.untimed) == (ROWS, a.untimed + b.untimed)
    whole = profile_table(table, time="t", window=HOUR)
    assert list(both.windows) == list(whole.windows)
    for start, p in whole.windows.items():
        assert exact_parts(both.windows[start]) == exact_parts(p)
    with pytest.raises(ValueError, match=r"cannot merge profiles by window 3600\.0 with by window None"):
        a.merge(BatchProfile())


# -- ways of giving a time -----------------------------------------------------------------------------------


EDGES = [T0 - T0 % 3600 + 3600 * k for k in range(4)]  # exact hour starts: each must open its window


def _window_rows(bp: BatchProfile) -> dict[float, int]:
    return {s: p.rows for s, p in bp.windows.items()}


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "Asia/Kolkata", "America/St_Johns"])
def test_timestamps_of_any_unit_and_time_zone_fall_on_the_utc_grid(unit, tz):
    per_s = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}[unit]
    seconds = np.array([*EDGES, EDGES[0] + 1, EDGES[1] - 1], dtype=np.int64)
    # a tick before an edge stays in the earlier window; for nanoseconds, 1 µs: times are float seconds,
    # whose resolution today is about 0.24 µs
    before = 1000 if unit == "ns" else 1
    ticks = np.r_[seconds * per_s, EDGES[2] * per_s - before]
    t = pa.array(ticks, pa.timestamp(unit, tz=tz))
    got = profile_table(pa.table({"t": t, "v": np.arange(len(ticks))}), time="t", window=HOUR)
    assert _window_rows(got) == {float(e): n for e, n in zip(EDGES, (3, 2, 1, 1), strict=True)}
    assert got.windows[float(EDGES[1])]["v"].max == len(ticks) - 1  # the tick before EDGES[2]


def test_iso_strings_epoch_numbers_and_dates_give_the_same_windows():
    iso_utc = ["2024-03-10T00:00:00Z", "2024-03-10T05:59:59.999Z", "2024-03-10T06:00:00+00:00", None]
    iso_offset = ["2024-03-10T01:00:00+01:00", "2024-03-10T00:29:59.999-05:30", "2024-03-10T06:00:00Z", ""]
    naive = ["2024-03-10 00:00:00", "2024-03-10T05:59:59.999", "2024-03-10T06:00", " "]
    epoch = 1710028800.0  # 2024-03-10T00:00:00Z
    numbers = [epoch, epoch + 6 * 3600 - 0.001, epoch + 6 * 3600, float("nan")]
    ints = pa.array([int(epoch), int(epoch) + 21599, int(epoch) + 21600, None], pa.int64())
    expected = {epoch: 2, epoch + 21600: 1}
    for times in (iso_utc, iso_offset, naive, numbers, ints):
        got = profile_table(pa.table({"t": times, "v": [1, 2, 3, 4]}), time="t", window=6 * 3600.0)
        assert _window_rows(got) == expected, times
        assert got.untimed == 1
    days = pa.array([19792, 19792, 19793, None], pa.date32())  # 2024-03-10, 10, 11
    got = profile_table(pa.table({"t": days, "v": [1, 2, 3, 4]}), time="t", window=86400.0)
    assert _window_rows(got) == {epoch: 2, epoch + 86400: 1} and got.untimed == 1
    dict_strings = pa.array(naive).dictionary_encode()
    got = profile_table(pa.table({"t": dict_strings, "v": [1, 2, 3, 4]}), time="t", window=6 * 3600.0)
    assert _window_rows(got) == expected


def test_untimed_rows_are_counted_not_lost():
    t = [0.0, 10.0, float("nan"), float("inf"), float("-inf"), None, 3599.0, 3600.0]
    got = profile_table(pa.table({"t": t, "v": range(8)}), time="t", window=HOUR)
    assert got.untimed == 4  # NaN, +inf, -inf and null
    assert _window_rows(got) == {0.0: 3, 3600.0: 1}
    assert got.rows == 8
    mixed = ["2024-01-01T00:00:00Z", "2024-01-01T00:30:00", "not a time", "", "2024-13-45", None]
    got = profile_table(pa.table({"t": mixed, "v": range(6)}), time="t", window=HOUR)
    assert _window_rows(got) == {1704067200.0: 2} and got.untimed == 4


def test_epoch_seconds_reads_each_type():
    assert epoch_seconds(pa.array([1.5, None])).tolist()[0] == 1.5
    assert np.isnan(epoch_seconds(pa.array([1.5, None]))[1])
    assert epoch_seconds(pa.array([1, 2], pa.timestamp("ms"))).tolist() == [0.001, 0.002]
    assert epoch_seconds(pa.array([86_400_000], pa.date64())).tolist() == [86400.0]
    assert epoch_seconds(pa.chunked_array([[1], [2]])).tolist() == [1.0, 2.0]
    # past the nanosecond range (2262-04-11), so read one value at a time
    beyond = datetime(2262, 4, 12, tzinfo=UTC).timestamp()
    assert epoch_seconds(pa.array(["2262-04-12T00:00:00Z", "1970-01-01"])).tolist() == [beyond, 0.0]


# -- files ---------------------------------------------------------------------------------------------------


def test_a_parquet_directory_profiles_like_its_table(table, tmp_path):
    (tmp_path / "day=1").mkdir()
    pq.write_table(table.slice(0, 5_000), tmp_path / "day=1" / "a.parquet", row_group_size=1_300)
    pq.write_table(table.slice(5_000, 4_000), tmp_path / "b.parquet", row_group_size=900)
    pq.write_table(table.slice(9_000), tmp_path / "c.pq")
    (tmp_path / "notes.txt").write_text("not data")
    whole = profile_files(tmp_path)
    assert whole.rows == ROWS
    assert_same_profile(whole.whole, profile_table(table).whole)
    by_window = profile_files(tmp_path, time="t", window=HOUR)
    reference = profile_table(table, time="t", window=HOUR)
    assert by_window.untimed == reference.untimed
    assert list(by_window.windows) == list(reference.windows)
    for start, p in reference.windows.items():
        assert_same_profile(by_window.windows[start], p)
    only = profile_files(tmp_path, time="t", window=HOUR, columns=["c"])
    assert list(next(iter(only.windows.values())).columns) == ["c"]
    assert _window_rows(only) == _window_rows(reference)


def test_a_csv_directory_profiles_like_the_tables_pyarrow_reads(table, tmp_path):
    pacsv.write_csv(table.slice(0, 7_000), tmp_path / "a.csv")
    pacsv.write_csv(table.slice(7_000), tmp_path / "b.csv")
    read = pa.concat_tables([pacsv.read_csv(tmp_path / "a.csv"), pacsv.read_csv(tmp_path / "b.csv")])
    assert pa.types.is_timestamp(read.schema.field("t").type)
    got = profile_files(tmp_path, time="t", window=HOUR)
    reference = profile_table(read, time="t", window=HOUR)
    assert (got.rows, got.untimed) == (ROWS, reference.untimed)
    # the same windows and rows as the Parquet table: the written times read back as the same instants
    assert _window_rows(got) == _window_rows(profile_table(table, time="t", window=HOUR))
    for start, p in reference.windows.items():
        assert_same_profile(got.windows[start], p)
    tsv = tmp_path / "tsv"
    tsv.mkdir()
    (tsv / "x.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    assert profile_files(tsv).whole["a"].numeric.moments.sum == 3.0


def test_a_file_that_gained_a_column_still_profiles(tmp_path):
    pq.write_table(pa.table({"x": [1.0, 2.0, 3.0]}), tmp_path / "1.parquet")
    pq.write_table(pa.table({"x": [4.0, 5.0], "y": ["a", "b"]}), tmp_path / "2.parquet")
    got = profile_files(tmp_path).whole
    assert got.rows == 5
    assert (got["x"].count, got["x"].mean) == (5, 3.0)
    assert got["y"].count == 2  # counted where it exists; the gap to rows shows it is new
    assert {it.value: it.count for it in got["y"].top()} == {"a": 1, "b": 1}


def test_iter_batches_reads_file_by_file(table, tmp_path):
    pq.write_table(table.slice(0, 100), tmp_path / "a.parquet")
    pacsv.write_csv(table.slice(100, 50), tmp_path / "b.csv")
    seen = [(f.name, b.num_rows) for f, b in iter_batches(tmp_path, columns=["x"], batch_rows=40)]
    assert seen == [("a.parquet", 40), ("a.parquet", 40), ("a.parquet", 20), ("b.csv", 50)]


# -- bad input -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [0, -60, float("nan"), float("inf"), "60", True, None])
def test_a_bad_window_is_refused_naming_it(table, window):
    if window is None:
        with pytest.raises(ValueError, match="time and window: give both"):
            profile_table(table, time="t")
        return
    with pytest.raises(ValueError, match=r"window: expected a positive number of seconds, got"):
        profile_table(table, time="t", window=window)


def test_numpy_numbers_are_windows_too(table):
    assert _window_rows(profile_table(table, time="t", window=np.int64(3600))) == _window_rows(
        profile_table(table, time="t", window=HOUR)
    )


def test_errors_name_the_field(table, tmp_path):
    with pytest.raises(ValueError, match="time and window: give both"):
        profile_table(table, window=60.0)
    with pytest.raises(ValueError, match=r"time: no column 'when' in the data \(columns: t, x, n, c, b\)"):
        profile_table(table, time="when", window=60.0)
    with pytest.raises(ValueError, match=r"time column 'b': expected timestamps.*got bool"):
        profile_table(table, time="b", window=60.0)
    with pytest.raises(ValueError, match=r"time column 'c': expected .* strings such as"):
        profile_table(table.filter(pa.compute.is_valid(table["c"])), time="c", window=60.0)
    pq.write_table(table, tmp_path / "a.parquet")
    with pytest.raises(ValueError, match=r"a.parquet: no column\(s\) \['nope'\]"):
        profile_files(tmp_path, columns=["x", "nope"])
    with pytest.raises(ValueError, match=r"a.parquet: no column\(s\) \['when'\]"):
        profile_files(tmp_path, time="when", window=60.0, columns=["x"])
    with pytest.raises(ValueError, match=r"time: no column 'when'"):
        profile_files(tmp_path, time="when", window=60.0)
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    (csv_dir / "a.csv").write_text("x,t\n1,2024-01-01\n")
    with pytest.raises(ValueError, match=r"a.csv: no column\(s\) \['nope'\] \(columns: x, t\)"):
        profile_files(csv_dir, columns=["nope"])
    with pytest.raises(ValueError, match=r"time: no column 'when'"):
        profile_files(csv_dir, time="when", window=60.0)
    # types are inferred from the first block (1 MB); a value past it that they cannot hold
    (csv_dir / "b.csv").write_text("x\n" + "1\n" * 600_000 + "oops\n")
    with pytest.raises(ValueError, match=r"^b.csv: .*'oops'"):
        profile_files(csv_dir / "b.csv")
    with pytest.raises(FileNotFoundError, match="no file or directory"):
        profile_files(tmp_path / "absent")
