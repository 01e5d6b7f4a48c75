"""Profiling tables too large to hold at once: in chunks, whole or by time window, on one machine.

This is the local engine of ``watchkeeper profile PATH`` and ``watchkeeper monitor-batch`` (the Spark engine,
:mod:`watchkeeper.spark`, computes the same profiles partition by partition and merges them the same way).
Files are read record batch by record batch (Parquet row groups, CSV blocks); batches are gathered into
chunks of about ``chunk_rows`` rows, each chunk is profiled with :func:`watchkeeper.profile.profile` and the
chunk profiles are merged. Merging is exact for counts, missing/NaN/inf counts, min, max, true/false counts
and frequent items below their capacity; sums and moments agree to floating-point rounding; quantiles and
distinct counts stay within their sketches' error bounds whatever the chunking (see the sketches' modules).

Windows: with ``time`` and ``window``, each row goes to the window ``[s, s + window)`` holding its time, with
``s = origin + floor((t - origin) / window) * window`` (UTC epoch seconds; ``origin`` 0 is the Unix epoch, so
hourly windows start on the hour), and every window gets its own profile. The time column itself is not
profiled. A row whose time is missing or not finite belongs to no window and is counted in
``BatchProfile.untimed``. Times are float seconds, exact to the microsecond at today's epochs (the
resolution of a float64 near 1.7e9 is about 0.24 µs), so a nanosecond time closer than that to a window's
edge may fall in the later window.

Times may be an Arrow timestamp (any unit; naive timestamps are read as UTC), a date, a number of epoch
seconds, or ISO-8601 strings (with a UTC offset or naive, read as UTC; a blank string is a missing time, and
a string that does not read as a time is an untimed row, unless no value of the column reads as one).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from watchkeeper.profile.dataset import Profile, profile
from watchkeeper.profile.files import FORMATS, data_files

CHUNK_ROWS = 1 << 20


@dataclass(slots=True)
class BatchProfile:
    """What profiling a table or a set of files gave: one profile, or one per window.

    ``whole`` is the profile of every row (None when profiling by window); ``windows`` maps each window's
    start to its profile (empty without windows), oldest first; ``window`` is the windows' length in
    seconds; ``rows`` the rows read and ``untimed`` the rows left out for a missing or unreadable time.
    """

    whole: Profile | None = None
    windows: dict[float, Profile] = field(default_factory=dict)
    window: float | None = None
    rows: int = 0
    untimed: int = 0

    def merge(self, other: BatchProfile) -> BatchProfile:
        if (self.window is None) != (other.window is None) or (
            self.window is not None and self.window != other.window
        ):
            raise ValueError(f"cannot merge profiles by window {self.window} with by window {other.window}")
        whole = other.whole if self.whole is None else self.whole if other.whole is None else None
        if self.whole is not None and other.whole is not None:
            whole = self.whole.merge(other.whole)
        windows = dict(self.windows)
        for start, p in other.windows.items():
            windows[start] = windows[start].merge(p) if start in windows else p
        return BatchProfile(
            whole=whole,
            windows=dict(sorted(windows.items())),
            window=self.window,
            rows=self.rows + other.rows,
            untimed=self.untimed + other.untimed,
        )


def epoch_seconds(values: pa.Array | pa.ChunkedArray, name: str = "time") -> np.ndarray:
    """Float epoch seconds of a time column (NaN where missing); ValueError naming ``name`` otherwise."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    t = values.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _iso_seconds(values, name)
    if pa.types.is_date(t):
        values = pc.cast(pc.cast(values, pa.date32()), pa.timestamp("s"))
        t = values.type
    if pa.types.is_timestamp(t):
        return _timestamp_seconds(values)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    raise ValueError(f"{name}: expected timestamps, dates, epoch seconds or ISO-8601 strings, got {t}")


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def _timestamp_seconds(values: pa.Array) -> np.ndarray:
    # The int64 of a timestamp counts from the epoch in UTC whatever its time zone. Dividing (rather than
    # multiplying by 1e-6) rounds once, so a time on a window's edge stays on it.
    ints = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
    out = ints.astype(np.float64) / _PER_SECOND[values.type.unit]
    if values.null_count:
        out[~pc.is_valid(values).to_numpy(zero_copy_only=False)] = np.nan
    return out


def _iso_seconds(values: pa.Array, name: str) -> np.ndarray:
    """Epoch seconds of ISO-8601 strings: NaN for blank or unreadable ones, unless none reads."""
    values = pc.utf8_trim_whitespace(values.cast(pa.string()))
    values = pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
    for target in (pa.timestamp("ns", tz="UTC"), pa.timestamp("ns")):  # all with an offset, or all naive
        try:
            return _timestamp_seconds(pc.cast(values, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # Mixed offsets and naive times, times outside the nanosecond range, or unreadable strings: one distinct
    # value at a time.
    distinct = pc.unique(pc.drop_null(values))
    seconds = np.full(len(distinct) + 1, np.nan)  # the last slot: missing
    for i, text in enumerate(distinct.to_pylist()):
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            continue
        seconds[i] = (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
    if len(distinct) and np.isnan(seconds[:-1]).all():
        raise ValueError(
            f"{name}: expected timestamps, dates, epoch seconds or ISO-8601 strings, got strings such as "
            f"{distinct[0].as_py()!r}"
        )
    index = pc.fill_null(pc.index_in(values, value_set=distinct), len(distinct))
    return seconds[index.to_numpy(zero_copy_only=False)]


def window_starts(t: np.ndarray, window: float, origin: float = 0.0) -> np.ndarray:
    """The start of the window holding each time (NaN for NaN)."""
    return origin + np.floor((t - origin) / window) * window


def _check_window(time: str | None, window: float | None) -> None:
    if (time is None) != (window is None):
        raise ValueError("time and window: give both (profiles by window) or neither (one profile)")
    if window is not None and not (
        isinstance(window, numbers.Real)
        and not isinstance(window, bool)
        and math.isfinite(window)
        and window > 0
    ):
        raise ValueError(f"window: expected a positive number of seconds, got {window!r}")


def profile_table(
    table: pa.Table | pa.RecordBatch,
    *,
    time: str | None = None,
    window: float | None = None,
    origin: float = 0.0,
    schema: Mapping[str, str] | None = None,
) -> BatchProfile:
    """Profile one Arrow table: whole, or by window of column ``time`` (``window`` seconds)."""
    _check_window(time, window)
    if isinstance(table, pa.RecordBatch):
        table = pa.Table.from_batches([table])
    if time is None:
        return BatchProfile(whole=profile(table, schema=_schema_for(table, schema)), rows=table.num_rows)
    assert window is not None
    if time not in table.column_names:
        raise ValueError(f"time: no column {time!r} in the data (columns: {', '.join(table.column_names)})")
    starts = window_starts(epoch_seconds(table.column(time), f"time column {time!r}"), window, origin)
    data = table.drop_columns([time])
    timed = np.isfinite(starts)  # an infinite time, like a missing one, belongs to no window
    untimed = int(table.num_rows - timed.sum())
    windows: dict[float, Profile] = {}
    if timed.any():
        idx = np.flatnonzero(timed)
        order = idx[np.argsort(starts[idx], kind="stable")]
        s = starts[order]
        cuts = np.flatnonzero(np.diff(s)) + 1
        sub_schema = _schema_for(data, schema)
        for lo, hi in zip(np.r_[0, cuts], np.r_[cuts, len(order)], strict=True):
            part = data.take(pa.array(order[lo:hi]))
            windows[float(s[lo])] = profile(part, schema=sub_schema)
    return BatchProfile(windows=windows, window=float(window), rows=table.num_rows, untimed=untimed)


def _schema_for(table: pa.Table, schema: Mapping[str, str] | None) -> dict[str, str] | None:
    if not schema:
        return None
    return {k: v for k, v in schema.items() if k in table.column_names}


def iter_batches(
    path: str | Path, *, columns: Sequence[str] | None = None, batch_rows: int = 65_536
) -> Iterator[tuple[Path, pa.RecordBatch]]:
    """Record batches of every CSV/Parquet file at ``path`` (a file or a directory), file by file."""
    for f in data_files(path):
        if FORMATS[f.suffix.lower()] == "parquet":
            pf = pq.ParquetFile(f)
            missing = [c for c in columns or () if c not in pf.schema_arrow.names]
            if missing:
                raise ValueError(
                    f"{f.name}: no column(s) {missing} (columns: {', '.join(pf.schema_arrow.names)})"
                )
            for b in pf.iter_batches(batch_size=batch_rows, columns=list(columns) if columns else None):
                yield f, b
        else:
            delimiter = "\t" if f.suffix.lower() == ".tsv" else ","
            include = list(columns) if columns else None
            try:
                reader = pacsv.open_csv(
                    f,
                    parse_options=pacsv.ParseOptions(delimiter=delimiter),
                    convert_options=pacsv.ConvertOptions(include_columns=include),
                )
            except pa.ArrowKeyError:
                header = pacsv.open_csv(f, parse_options=pacsv.ParseOptions(delimiter=delimiter)).schema.names
                missing = [c for c in include or () if c not in header]
                raise ValueError(f"{f.name}: no column(s) {missing} (columns: {', '.join(header)})") from None
            try:
                for b in reader:
                    yield f, b
            except pa.ArrowInvalid as exc:  # a value later in the file that the inferred types cannot hold
                raise ValueError(f"{f.name}: {exc}") from exc


def profile_batches(
    batches: Iterable[pa.RecordBatch],
    *,
    time: str | None = None,
    window: float | None = None,
    origin: float = 0.0,
    schema: Mapping[str, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchProfile:
    """Profile a stream of record batches in chunks of about ``chunk_rows`` rows and merge the chunks.

    ``on_chunk(rows)`` is called after each chunk with the rows it held (a progress bar's hook). Batches of
    different schemas are gathered into different chunks (a file that gained a column still profiles).
    """
    _check_window(time, window)
    out = BatchProfile(window=float(window) if window is not None else None)
    pending: list[pa.RecordBatch] = []
    held = 0

    def flush() -> None:
        nonlocal out, pending, held
        if not pending:
            return
        part = profile_table(
            pa.Table.from_batches(pending), time=time, window=window, origin=origin, schema=schema
        )
        out = out.merge(part)
        if on_chunk is not None:
            on_chunk(held)
        pending, held = [], 0

    for b in batches:
        if pending and not b.schema.equals(pending[0].schema):
            flush()
        pending.append(b)
        held += b.num_rows
        if held >= chunk_rows:
            flush()
    flush()
    return out


def profile_files(
    path: str | Path,
    *,
    time: str | None = None,
    window: float | None = None,
    origin: float = 0.0,
    columns: Sequence[str] | None = None,
    schema: Mapping[str, str] | None = None,
    chunk_rows: int = CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> BatchProfile:
    """Profile the CSV/Parquet files at ``path`` (a file, or a directory read recursively) in chunks:
    whole, or by window of column ``time``. ``columns`` limits what is read (the time column is added)."""
    _check_window(time, window)
    read = list(columns) if columns else None
    if read is not None and time is not None and time not in read:
        read.append(time)
    return profile_batches(
        (b for _, b in iter_batches(path, columns=read)),
        time=time,
        window=window,
        origin=origin,
        schema=schema,
        chunk_rows=chunk_rows,
        on_chunk=on_chunk,
    )


__all__ = [
    "BatchProfile",
    "epoch_seconds",
    "iter_batches",
    "profile_batches",
    "profile_files",
    "profile_table",
    "window_starts",
]
