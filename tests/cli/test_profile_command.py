"""``watchkeeper profile PATH``: files profiled in chunks and stored as a reference or as windows by time,
checked against numpy on the same rows; a re-run stores nothing new; bad options name themselves."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from watchkeeper.cli import app
from watchkeeper.profile import Profile
from watchkeeper.store import Store
from watchkeeper.store.profiles import model_subject

runner = CliRunner(env={"COLUMNS": "200"})
T0 = 1_790_000_000.0  # a whole hour: 2026-09-21 14:13:20 is not, so the grid below starts mid-file


@pytest.fixture
def partition(tmp_path):
    """Three Parquet files and a CSV of one day: a timestamp, two numbers (one with NaN), a category and a
    score, rows out of time order."""
    rng = np.random.default_rng(3)
    root = tmp_path / "day"
    root.mkdir()
    parts = []
    for i in range(4):
        n = 3000 + 500 * i
        t = T0 + rng.uniform(0, 86_400, n)
        x = rng.normal(10.0 * i, 1.0, n)
        y = rng.normal(size=n)
        y[rng.random(n) < 0.05] = np.nan
        c = rng.choice(["a", "b", "c"], n)
        s = rng.uniform(size=n)
        table = pa.table(
            {
                "ts": pa.array((t * 1e6).astype("int64")).cast(pa.timestamp("us", tz="UTC")),
                "x": x,
                "y": y,
                "c": c,
                "score": s,
            }
        )
        if i < 3:
            pq.write_table(table, root / f"part-{i}.parquet", row_group_size=1000)
        else:
            pacsv.write_csv(table, root / "part-3.csv")
        parts.append((t, x, y, c, s))
    cols = [np.concatenate(v) for v in zip(*parts, strict=True)]
    return root, dict(zip(["t", "x", "y", "c", "score"], cols, strict=True))


def _run(*args: str):
    res = runner.invoke(app, ["profile", *args])
    assert res.exit_code == 0, res.output
    return res


def test_a_partition_stored_as_a_reference_equals_numpy_on_its_rows(partition, sqlite_uri):
    root, rows = partition
    out = _run(
        str(root), "--model", "m", "--version", "1", "--outputs", "score", "--uri", sqlite_uri, "--json"
    )
    doc = json.loads(out.output.strip().splitlines()[-1])
    assert doc["rows"] == len(rows["x"]) and "reference 'train'" in doc["stored"]
    store = Store(sqlite_uri)
    try:
        ref = Profile.from_bytes(store.profiles.reference("default", "m", "1").data)
    finally:
        store.close()
    assert ref.rows == len(rows["x"]) and ref.outputs() == ["score"]
    x, y = ref["x"], ref["y"]
    assert (x.count, x.min, x.max) == (len(rows["x"]), rows["x"].min(), rows["x"].max())
    assert x.mean == pytest.approx(rows["x"].mean(), rel=1e-12)
    # CSV has no NaN apart from an empty field: the CSV file's NaN come back missing, the Parquet files' NaN
    csv_rows = len(rows["y"]) - 4500  # the last file, part-3.csv, holds the last 4,500 rows
    assert y.counts.nan == int(np.isnan(rows["y"][:csv_rows]).sum())
    assert y.missing == int(np.isnan(rows["y"][csv_rows:]).sum())
    values, counts = np.unique(rows["c"], return_counts=True)
    assert {i.value: i.count for i in ref["c"].top(3)} == dict(
        zip(values.tolist(), counts.tolist(), strict=True)
    )


def test_windows_by_time_hold_exactly_their_rows_and_a_rerun_stores_nothing(partition, sqlite_uri):
    root, rows = partition
    args = [
        str(root),
        "--model",
        "m",
        "--version",
        "2",
        "--by-time",
        "ts",
        "--window",
        "1h",
        "--uri",
        sqlite_uri,
    ]
    doc = json.loads(_run(*args, "--json").output.strip().splitlines()[-1])
    starts = np.floor(rows["t"] / 3600.0) * 3600.0
    want = {float(s): int(n) for s, n in zip(*np.unique(starts, return_counts=True), strict=True)}
    assert doc["windows"] == len(want) == 25  # a day that starts mid-hour spans 25 hourly windows
    store = Store(sqlite_uri)
    try:
        stored = store.profiles.windows("default", model_subject("m", "2"))
        assert {w.window_start: w.rows for w in stored} == want
        for w in stored:
            assert w.window_end - w.window_start == 3600.0
            p = Profile.from_bytes(w.data)
            inside = starts == w.window_start
            assert "ts" not in p.columns  # the time column is the grid, not a feature
            assert p["x"].max == rows["x"][inside].max() and p["x"].count == inside.sum()
        runs = store.runs.list(project="default")
        assert [r.job_type for r in runs] == ["profile"]

        again = json.loads(_run(*args, "--json").output.strip().splitlines()[-1])
        assert again["stored"].startswith("nothing")
        assert len(store.profiles.windows("default", model_subject("m", "2"))) == len(want)
        assert len(store.runs.list(project="default")) == 1
    finally:
        store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by-time", "ts"], "--window"),
        (["--by-time", "ts", "--window", "soon", "--model", "m", "--version", "1"], "--window"),
        (["--by-time", "when", "--window", "1h", "--model", "m", "--version", "1"], "'when'"),
        (["--model", "m"], "--version"),
        (["--engine", "dask"], "--engine"),
        (["--schema", "x=number"], "--schema"),
        (["--outputs", "nope"], "--outputs"),
    ],
)
def test_bad_options_are_refused_naming_what_was_expected(partition, sqlite_uri, args, message):
    root, _ = partition
    res = runner.invoke(app, ["profile", str(root), "--uri", sqlite_uri, *args])
    assert res.exit_code != 0
    assert message in res.output


def test_a_missing_path_is_an_error_not_a_traceback(tmp_path):
    res = runner.invoke(app, ["profile", str(tmp_path / "nowhere")])
    assert res.exit_code == 2 and "no file or directory" in res.output


def test_outputs_are_marked_in_every_window_that_holds_them_and_the_format_matches(tmp_path, sqlite_uri):
    """A partition whose newer file gained the output column: windows without it are stored without the
    role, windows with it mark it an output, and each stored row's format version is its bytes' own."""
    root = tmp_path / "day"
    root.mkdir()
    t0 = 1_790_002_800.0  # on the hour
    pq.write_table(pa.table({"ts": [t0 + 10.0, t0 + 20.0], "x": [1.0, 2.0]}), root / "a.parquet")
    pq.write_table(pa.table({"ts": [t0 + 3600.0 + 5.0], "x": [3.0], "score": [0.9]}), root / "b.parquet")
    args = ["profile", str(root), "--model", "m", "--version", "3", "--by-time", "ts", "--window", "1h"]
    res = runner.invoke(app, [*args, "--outputs", "score", "--uri", sqlite_uri])
    assert res.exit_code == 0, res.output
    store = Store(sqlite_uri)
    try:
        first, second = store.profiles.windows("default", model_subject("m", "3"))
    finally:
        store.close()
    a, b = Profile.from_bytes(first.data), Profile.from_bytes(second.data)
    assert (first.rows, second.rows) == (2, 1)
    assert a.outputs() == [] and b.outputs() == ["score"]
    assert (first.format_version, second.format_version) == (a.format_version, b.format_version)
