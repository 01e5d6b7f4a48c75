"""Turning what a user profiles into named columns, without converting row by row.

A missing value is None (or pandas' NA and NaT, or an Arrow null); a float NaN is a value, counted as NaN,
except in pandas object columns, where pandas itself uses NaN to mean missing.

Accepted: pandas and polars DataFrames, pyarrow Tables and RecordBatches, numpy arrays (1-D, 2-D,
structured), dicts of arrays or lists, and lists of dicts (records). Each column becomes a pyarrow array when
its values have one type, or a numpy object array when they do not (a column that mixes ints and strings),
so the profile can count what it saw instead of failing. Columns are converted one at a time, so peak memory
stays near the size of the largest column, not a copy of the whole frame.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

ColumnValues = pa.ChunkedArray | pa.Array | np.ndarray

_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError, TypeError)


@dataclass(frozen=True, slots=True)
class Frame:
    """A tabular input seen as a row count and a lazy sequence of (name, values) columns."""

    rows: int
    names: list[str]
    _get: Any  # name -> ColumnValues

    def columns(self) -> Iterator[tuple[str, ColumnValues]]:
        for name in self.names:
            yield name, self._get(name)

    def column(self, name: str) -> ColumnValues:
        """One column's values, converted now."""
        return self._get(name)


def _check_names(names: Sequence[Any]) -> list[str]:
    out = [str(n) for n in names]
    seen: set[str] = set()
    for n in out:
        if n in seen:
            raise ValueError(f"column {n!r} appears more than once; column names must be unique")
        seen.add(n)
    return out


def to_arrow_or_objects(values: Any, *, from_pandas: bool = False) -> ColumnValues:
    """A pyarrow array of ``values`` if they share one type, else a numpy object array.

    ``from_pandas`` reads NaN as missing, pandas' convention for object columns; elsewhere a float NaN is a
    value (counted as NaN) and only None is missing.
    """
    try:
        return pa.array(values, from_pandas=from_pandas)
    except _ARROW_ERRORS:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
        return arr


def as_frame(data: Any) -> Frame:
    """The columns of ``data``; TypeError naming the type when it is not a table."""
    mod = type(data).__module__.split(".")[0]
    if mod == "pandas" and hasattr(data, "columns") and hasattr(data, "iloc"):
        names = _check_names(list(data.columns))
        by_name = dict(zip(names, range(len(names)), strict=True))
        return Frame(len(data), names, lambda n: _pandas_column(data.iloc[:, by_name[n]]))
    if mod == "polars" and hasattr(data, "to_arrow") and hasattr(data, "columns"):
        names = _check_names(data.columns)
        return Frame(data.height, names, lambda n: _polars_column(data.get_column(n)))
    if isinstance(data, pa.Table | pa.RecordBatch):
        names = _check_names(data.schema.names)
        return Frame(data.num_rows, names, lambda n: data.column(n))
    if isinstance(data, np.ndarray):
        return _numpy_frame(data)
    if isinstance(data, Mapping):
        names = _check_names(list(data))
        cols = {str(k): v for k, v in data.items()}
        lengths = {n: len(v) for n, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"columns have different lengths: {lengths}")
        rows = next(iter(lengths.values()), 0)
        return Frame(rows, names, lambda n: _sequence_column(cols[n]))
    if isinstance(data, Sequence) and not isinstance(data, str | bytes):
        return _records_frame(data)
    raise TypeError(
        f"cannot profile a {type(data).__module__}.{type(data).__qualname__}: expected a pandas, polars or "
        "pyarrow table, a numpy array, a dict of columns or a list of dicts"
    )


def _pandas_column(series: Any) -> ColumnValues:
    if series.dtype == object:
        return to_arrow_or_objects(series.to_numpy(), from_pandas=True)
    if series.dtype.kind == "f":  # numpy floats: NaN is a value here, counted as NaN
        return pa.array(series.to_numpy())
    try:  # extension dtypes (nullable ints, categoricals, datetimes): pd.NA and NaT become nulls
        return pa.array(series, from_pandas=True)
    except _ARROW_ERRORS:
        return to_arrow_or_objects(series.to_numpy(dtype=object), from_pandas=True)


def _polars_column(series: Any) -> ColumnValues:
    try:
        return series.to_arrow()
    except Exception:  # polars Object columns have no arrow form
        return to_arrow_or_objects(series.to_list())


def _sequence_column(values: Any) -> ColumnValues:
    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if isinstance(values, np.ndarray):
        if values.ndim == 2:
            return pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(values).reshape(-1)), values.shape[1]
            )
        if values.dtype != object:
            return pa.array(values)
    return to_arrow_or_objects(values)


def _numpy_frame(arr: np.ndarray) -> Frame:
    if arr.dtype.names:  # structured
        names = _check_names(arr.dtype.names)
        return Frame(len(arr), names, lambda n: _sequence_column(arr[n]))
    if arr.ndim == 1:
        return Frame(len(arr), ["value"], lambda n: _sequence_column(arr))
    if arr.ndim == 2:
        names = [str(j) for j in range(arr.shape[1])]
        return Frame(arr.shape[0], names, lambda n: _sequence_column(arr[:, int(n)]))
    raise ValueError(f"cannot profile a numpy array of {arr.ndim} dimensions (expected 1 or 2)")


def _records_frame(rows: Sequence[Any]) -> Frame:
    if rows and not all(isinstance(r, Mapping) for r in rows):
        bad = next(i for i, r in enumerate(rows) if not isinstance(r, Mapping))
        raise TypeError(f"row {bad} is a {type(rows[bad]).__name__}; a list to profile must hold dicts")
    original: dict[str, Any] = {}  # column name -> the key as the rows spell it
    for r in rows:
        for k in r:
            original.setdefault(str(k), k)

    def column(n: str) -> ColumnValues:
        k = original[n]
        return to_arrow_or_objects([r.get(k) for r in rows])

    return Frame(len(rows), _check_names(list(original)), column)
