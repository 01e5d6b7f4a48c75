"""Profiling on Spark: the profile of a Spark DataFrame, or of CSV/Parquet files, computed partition by
partition and merged on the driver.

How it works. Each partition is handed to :func:`watchkeeper.profile.batch.profile_batches` as Arrow record
batches (``DataFrame.mapInArrow``), which profiles them in chunks exactly as the local engine does
(:mod:`watchkeeper.profile.batch`), whole or by time window. Each task returns a few small rows: one with the
rows it read, the rows left out for a missing time, and (whole) its serialised profile; and, by window, one
per window it saw with that window's profile (``Profile.to_bytes()``). The driver collects them and merges
with ``Profile.merge`` and ``BatchProfile.merge``. ``profile_files`` does not read with Spark's own readers:
it lists the files on the driver with the local engine's rule (:func:`watchkeeper.profile.files.data_files`),
splits Parquet files into runs of row groups and CSV files into whole files, and each Spark task reads its
share with pyarrow, the local engine's reader. So types, null rules, a file that gained a column and
nanosecond timestamps read the same as locally; Spark's CSV reader infers types and nulls differently, and
its Parquet reader refuses nanosecond timestamps and fills a column some files lack with nulls.

What is exact. Merging is associative and commutative, so however Spark partitions the data the merged
profile equals the local engine's in its exact parts: rows, per-column counts (missing, NaN, ±inf, value
types), min, max, true/false counts, string lengths' counts, frequent items while a column has at most
1,024 distinct values, distinct counts up to 1,024 (and beyond, the HyperLogLog registers: a merge is their
maximum). Sums, means and variances agree to rounding (they are merged with Chan et al.'s pairwise
formulas, see :mod:`watchkeeper.sketch.moments`); quantiles are within the KLL sketch's rank error bound
(:mod:`watchkeeper.sketch.quantiles`), not bit-equal, because KLL compaction is randomised. Windows follow
the local rule, ``start = origin + floor((t - origin) / window) * window`` in UTC epoch seconds: Spark hands
``timestamp`` columns to Python as Arrow timestamps in the session's time zone, whose underlying value is
UTC, and ``timestamp_ntz`` columns as naive timestamps, read as UTC as the local engine reads them; so the
grid does not depend on ``spark.sql.session.timeZone``.

Cost. One pass over the data, CPU-bound in the Python workers (pyarrow and the sketches), with no shuffle.
``profile(df)`` also pays Spark's hand-over of the rows from the JVM to Python as Arrow batches, which can
cost more than the profiling: on 10M rows x 25 columns of Parquet on 2 cores, ``profile_files`` ran at
0.82M rows/s and ``profile(spark.read.parquet(...))`` at 0.24M rows/s (bench/bench_spark_profile.py).
What reaches the driver is one profile per partition, per window: up to about 17 kB per numeric column
(KLL at k = 700) and some 40 kB per string column; the benchmark's 25 columns take about 0.34 MB.

Limits. The driver holds (partitions x windows per partition) profiles before merging them: for thousands
of partitions, ``df.coalesce(n)`` first or raise ``spark.driver.maxResultSize`` (1 GiB by default). The
Python workers must import the same watchkeeper as the driver (``session()`` sees to it for local mode; on a
cluster, install it on the executors). ``profile_files`` reads local paths (or any mounted on every
executor); for object stores, read with Spark and call ``profile(df)``. Needs PySpark 3.5 or newer
(``mapInArrow``; the ``spark`` extra pins it) and Java 17 for Spark 4.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from watchkeeper.profile.batch import (
    CHUNK_ROWS,
    BatchProfile,
    _check_window,
    iter_batches,
    profile_batches,
)
from watchkeeper.profile.column import KINDS
from watchkeeper.profile.dataset import Profile
from watchkeeper.profile.dataset import profile as local_profile
from watchkeeper.profile.files import FORMATS, data_files

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

NEEDS_PYSPARK = "profiling on Spark needs PySpark: pip install 'watchkeeper[spark]'"
RESULT_SCHEMA = pa.schema(
    [("window_start", pa.float64()), ("rows", pa.int64()), ("untimed", pa.int64()), ("data", pa.binary())]
)
RESULT_DDL = "window_start double, rows long, untimed long, data binary"
BATCH_ROWS = 65_536

# Spark's types (as ``DataFrame.dtypes`` names them) that a time column may have: times, dates, epoch
# seconds (numbers; decimals too) and ISO-8601 strings
_TIME_TYPES = frozenset({"timestamp", "timestamp_ntz", "date", "string", "decimal", "float", "double"})
_TIME_TYPES |= {"tinyint", "smallint", "int", "bigint"}


def _pyspark_sql() -> Any:
    try:
        import pyspark.sql
    except ImportError as exc:
        raise ModuleNotFoundError(NEEDS_PYSPARK, name="pyspark") from exc
    return pyspark.sql


# -- the session ---------------------------------------------------------------------------------------------


def session(master: str = "local[*]", **conf: Any) -> SparkSession:
    """A Spark session set up for profiling: the existing one if there is one, else a new local one.

    Settings (each can be overridden through ``conf``):

    - ``spark.pyspark.python`` = this interpreter (``sys.executable``), also set as ``PYSPARK_PYTHON`` in this
      process's environment before the session starts, so that the Python workers import the same
      watchkeeper, numpy and pyarrow as the driver;
    - ``spark.sql.session.timeZone`` = UTC, so that times Spark shows and parses are the profiles' times;
    - ``spark.sql.execution.arrow.pyspark.enabled`` = true (``toPandas``/``createDataFrame`` through
      Arrow) and ``spark.sql.execution.arrow.maxRecordsPerBatch`` = 65536 (rows per batch to the workers);
    - ``spark.driver.memory`` = 2g: in local mode the driver's JVM runs the tasks too; the profiling itself
      happens in the Python workers, outside that heap;
    - the web UI and the console progress bar off.

    ``conf`` keys are Spark's (``session(**{"spark.driver.memory": "4g"})``), or a short form without the
    ``spark.`` prefix and with ``_`` for ``.`` (``session(driver_memory="4g")``). Settings read at JVM
    start-up (memory, the interpreter) take effect only when no Spark session exists yet in this process.
    """
    sql = _pyspark_sql()
    settings: dict[str, str] = {
        "spark.app.name": "watchkeeper",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH_ROWS),
        "spark.driver.memory": "2g",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    for key, value in conf.items():
        name = key if "." in key else "spark." + key.replace("_", ".")
        settings[name] = str(value).lower() if isinstance(value, bool) else str(value)
    # pyspark picks the workers' interpreter from the environment when it starts the SparkContext
    os.environ["PYSPARK_PYTHON"] = settings["spark.pyspark.python"]
    builder = sql.SparkSession.builder.master(master)
    for name, value in settings.items():
        builder = builder.config(name, value)
    return builder.getOrCreate()


def _active_session(spark: SparkSession | None) -> SparkSession:
    if spark is not None:
        return spark
    active = _pyspark_sql().SparkSession.getActiveSession()
    return active if active is not None else session()


# -- what each task runs -------------------------------------------------------------------------------------


def _result_batches(part: BatchProfile) -> Iterator[pa.RecordBatch]:
    """One row for the partition (rows, untimed, its whole profile if any), one per window; a batch each,
    so that no batch's binary column nears Arrow's 2 GiB offset limit."""
    yield pa.RecordBatch.from_pylist(
        [
            {
                "window_start": None,
                "rows": part.rows,
                "untimed": part.untimed,
                "data": part.whole.to_bytes() if part.whole is not None else None,
            }
        ],
        schema=RESULT_SCHEMA,
    )
    for start, prof in part.windows.items():
        row = {"window_start": start, "rows": prof.rows, "untimed": 0, "data": prof.to_bytes()}
        yield pa.RecordBatch.from_pylist([row], schema=RESULT_SCHEMA)


def _profile_partition(
    batches: Iterable[pa.RecordBatch],
    *,
    time: str | None,
    window: float | None,
    origin: float,
    schema: Mapping[str, str] | None,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function for a DataFrame: the partition's batches, profiled."""
    nonempty = (b for b in batches if b.num_rows)
    part = profile_batches(nonempty, time=time, window=window, origin=origin, schema=schema)
    yield from _result_batches(part)


def _read_piece(piece: tuple[str, tuple[int, ...] | None], columns: Sequence[str] | None) -> Iterator[Any]:
    path, row_groups = piece
    if row_groups is None:  # a CSV file, read whole by the local engine's reader
        for _, batch in iter_batches(path, columns=columns):
            yield batch
        return
    pf = pq.ParquetFile(path)
    yield from pf.iter_batches(
        batch_size=BATCH_ROWS, row_groups=list(row_groups), columns=list(columns) if columns else None
    )


def _profile_pieces(
    ids: Iterable[pa.RecordBatch],
    *,
    pieces: Sequence[tuple[str, tuple[int, ...] | None]],
    columns: Sequence[str] | None,
    time: str | None,
    window: float | None,
    origin: float,
    schema: Mapping[str, str] | None,
) -> Iterator[pa.RecordBatch]:
    """``mapInArrow``'s function for ``profile_files``: read the pieces whose ids the partition holds."""
    for batch in ids:
        for i in batch.column(0).to_pylist():
            batches = _read_piece(pieces[i], columns)
            part = profile_batches(batches, time=time, window=window, origin=origin, schema=schema)
            yield from _result_batches(part)


# -- on the driver -------------------------------------------------------------------------------------------


def _run(df: DataFrame, func: Any) -> list[Any]:
    """Run ``func`` over every partition and collect its rows; a ValueError in a task is raised here as
    the ValueError it was (Spark wraps it in its own exception, with the worker's traceback as text)."""
    from pyspark.errors import PythonException

    with warnings.catch_warnings():
        # mapInArrow checks pandas' version though it uses no pandas
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
        mapped = df.mapInArrow(func, RESULT_DDL)
    try:
        return mapped.collect()
    except PythonException as exc:
        found = re.findall(r"^(?:\w+\.)*(ValueError|FileNotFoundError|ArrowInvalid): (.+)$", str(exc), re.M)
        if found:
            kind, message = found[-1]
            raise (FileNotFoundError if kind == "FileNotFoundError" else ValueError)(message) from exc
        raise


def _gather(rows: Sequence[Any], window: float | None) -> BatchProfile:
    out = BatchProfile(window=float(window) if window is not None else None)
    windows: dict[float, Profile] = {}
    for row in rows:
        if row.window_start is None:
            out.rows += row.rows
            out.untimed += row.untimed
            if row.data is not None:
                part = Profile.from_bytes(row.data)
                out.whole = part if out.whole is None else out.whole.merge(part)
        else:
            part = Profile.from_bytes(row.data)
            start = float(row.window_start)
            windows[start] = windows[start].merge(part) if start in windows else part
    out.windows = dict(sorted(windows.items()))
    return out


def _check_schema(schema: Mapping[str, str] | None, columns: Sequence[str] | None) -> None:
    for name, kind in (schema or {}).items():
        if kind not in KINDS:
            raise ValueError(f"schema: column {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if columns is not None:
        unknown = sorted(set(schema or {}) - set(columns))
        if unknown:
            raise ValueError(f"schema: no column(s) {unknown} in the data (columns: {', '.join(columns)})")


def _empty_profile(df: DataFrame, schema: Mapping[str, str] | None) -> Profile:
    """The local engine's profile of no rows with ``df``'s columns (every partition was empty)."""
    try:
        empty = df.limit(0).toArrow()
    except AttributeError:  # PySpark 3.5 has no toArrow
        from pyspark.sql.pandas.types import to_arrow_schema

        empty = to_arrow_schema(df.schema).empty_table()
    return local_profile(empty, schema=schema)


def profile(df: DataFrame, *, schema: Mapping[str, str] | None = None) -> Profile:
    """The profile of every row and column of the Spark DataFrame ``df``, computed partition by partition.

    ``schema`` declares columns' kinds as in :func:`watchkeeper.profile` (``{"zip": "categorical"}``).
    """
    _pyspark_sql()
    _check_schema(schema, df.columns)
    func = functools.partial(_profile_partition, time=None, window=None, origin=0.0, schema=schema)
    result = _gather(_run(df, func), None)
    if result.whole is None:
        return _empty_profile(df, schema)
    return result.whole


def profile_windows(
    df: DataFrame,
    time: str,
    window: float,
    *,
    origin: float = 0.0,
    schema: Mapping[str, str] | None = None,
) -> BatchProfile:
    """One profile per window of ``window`` seconds of column ``time`` (a timestamp, date, epoch seconds or
    ISO-8601 strings), with the rule and the ``untimed`` count of
    :func:`watchkeeper.profile.batch.profile_table`; the time column itself is not profiled."""
    _pyspark_sql()
    _check_window(time, window)
    types = dict(df.dtypes)
    if time not in types:
        raise ValueError(f"time: no column {time!r} in the data (columns: {', '.join(df.columns)})")
    if types[time].split("(")[0] not in _TIME_TYPES:
        raise ValueError(
            f"time: column {time!r} is {types[time]}; expected a timestamp, a date, epoch seconds or "
            "ISO-8601 strings"
        )
    _check_schema(schema, df.columns)
    func = functools.partial(_profile_partition, time=time, window=window, origin=origin, schema=schema)
    return _gather(_run(df, func), window)


def _pieces(
    files: Sequence[Path], columns: Sequence[str] | None, time: str | None, chunk_rows: int
) -> list[tuple[str, tuple[int, ...] | None]]:
    """Work units: runs of consecutive row groups of about ``chunk_rows`` rows, or whole CSV files. Parquet
    footers are read here, so a missing column is reported before any task runs (CSV files: by the task)."""
    pieces: list[tuple[str, tuple[int, ...] | None]] = []
    for f in files:
        if FORMATS[f.suffix.lower()] != "parquet":
            pieces.append((str(f), None))
            continue
        meta = pq.ParquetFile(f)
        names = meta.schema_arrow.names
        missing = [c for c in columns or () if c not in names]
        if missing:
            raise ValueError(f"{f.name}: no column(s) {missing} (columns: {', '.join(names)})")
        if time is not None and time not in names:
            raise ValueError(f"time: no column {time!r} in {f.name} (columns: {', '.join(names)})")
        sizes = [meta.metadata.row_group(i).num_rows for i in range(meta.metadata.num_row_groups)]
        # as many runs as chunks of chunk_rows the file holds, of about equal rows (not full ones and a rest)
        target = sum(sizes) / max(1, -(-sum(sizes) // chunk_rows))
        run: list[int] = []
        held = 0
        for i, rows in enumerate(sizes):
            if run and held + rows / 2 > target:
                pieces.append((str(f), tuple(run)))
                run, held = [], 0
            run.append(i)
            held += rows
        if run:
            pieces.append((str(f), tuple(run)))
    return pieces


def profile_files(
    path: str | Path,
    *,
    time: str | None = None,
    window: float | None = None,
    origin: float = 0.0,
    columns: Sequence[str] | None = None,
    schema: Mapping[str, str] | None = None,
    spark: SparkSession | None = None,
) -> BatchProfile:
    """Profile the CSV/Parquet files at ``path`` on Spark: the counterpart of
    :func:`watchkeeper.profile.batch.profile_files`, with the same files, types and windows.

    Each task reads about a million rows of Parquet row groups, or one CSV file, with pyarrow. ``spark``:
    the session to run on (default: the active one, else :func:`session`'s).
    """
    _pyspark_sql()
    _check_window(time, window)
    _check_schema(schema, None)
    read = list(columns) if columns else None
    if read is not None and time is not None and time not in read:
        read.append(time)
    pieces = _pieces(data_files(path), read, time, CHUNK_ROWS)
    if not pieces:  # only empty Parquet files: what the local engine gives for no rows
        return BatchProfile(window=float(window) if window is not None else None)
    spark = _active_session(spark)
    ids = spark.range(len(pieces), numPartitions=len(pieces))
    func = functools.partial(
        _profile_pieces, pieces=pieces, columns=read, time=time, window=window, origin=origin, schema=schema
    )
    return _gather(_run(ids, func), window)


__all__ = ["profile", "profile_files", "profile_windows", "session"]
