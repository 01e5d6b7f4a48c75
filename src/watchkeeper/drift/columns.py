"""Pairing a reference's columns with a current sample's, and saying what can be compared.

For raw data each column becomes numpy values without missing entries: floats for numeric columns
(timestamps as epoch seconds; NaN and ±inf are counted and left out), int codes over one shared dictionary
for categorical and boolean columns (so counting them is an integer ``bincount``, not a sort of strings), and
string lengths for free text, and 2-D float arrays for vector (embedding) columns: lists or arrays of numbers
of one length, the dimension being the most common length, as in the profile; rows of another length and
rows with a non-finite component are counted as missing and left out. A column that cannot be compared gets
a status and a message instead of a verdict: present on one side only, no values on a side, different kinds
on the two sides, vectors of different dimensions, mixed types, or a kind no method covers (lists of
strings, structs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.profile.column import TEXT_MIN_DISTINCT_RATIO, TEXT_MIN_MEAN_LENGTH, _epoch_seconds
from watchkeeper.profile.frames import ColumnValues

OK = "ok"
ONLY_REFERENCE = "only in reference"
ONLY_CURRENT = "only in current"
EMPTY = "no values"
KIND_MISMATCH = "kind mismatch"
DIMENSION_MISMATCH = "dimension mismatch"
NOT_COMPARED = "not compared"


@dataclass(slots=True)
class ColumnPair:
    name: str
    kind: str  # numeric, categorical, boolean, text, vector, mixed, other, empty
    status: str = OK
    message: str = ""
    ref: np.ndarray | None = None  # 1-D; 2-D (rows, dimension) for vectors
    cur: np.ndarray | None = None
    labels: list[Any] = field(default_factory=list)  # code -> label, for categorical and boolean
    ref_rows: int = 0
    cur_rows: int = 0
    ref_missing: int = 0  # None/null, NaN and ±inf: left out of the comparison
    cur_missing: int = 0


@dataclass(slots=True)
class _Side:
    kind: str
    values: Any  # pa.Array (no nulls) or np.ndarray
    rows: int
    missing: int
    note: str = ""  # what was left out beyond missing values, for the column's message


def _side(values: ColumnValues) -> _Side:
    if isinstance(values, np.ndarray) and values.dtype == object:
        present = [v for v in values.tolist() if v is not None]
        types = {type(v) for v in present}
        if not present:
            return _Side("empty", None, len(values), len(values))
        if types <= {str}:
            return _side(pa.array(present, type=pa.string()))
        if all(issubclass(t, int | float) and not issubclass(t, bool) for t in types):
            return _side(pa.array(present, type=pa.float64()))
        if all(issubclass(t, list | tuple | np.ndarray) for t in types):
            try:  # as the profile reads them: lists of numbers (None inside counts as non-finite)
                lists = pa.array([list(v) for v in present], type=pa.list_(pa.float64()))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
                pass
            else:
                side = _side(lists)
                side.rows, side.missing = len(values), side.missing + len(values) - len(present)
                return side
        names = ", ".join(sorted(t.__name__ for t in types))
        return _Side("mixed", names, len(values), len(values) - len(present))
    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if isinstance(arr, np.ndarray):
        arr = pa.array(arr)
    rows = len(arr)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    missing = arr.null_count
    if missing:
        arr = pc.drop_null(arr)
    t = arr.type
    if len(arr) == 0:
        return _Side("empty", None, rows, missing)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t) or pa.types.is_temporal(t):
        x = (
            _epoch_seconds(arr)
            if pa.types.is_temporal(t)
            else arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
        )
        finite = np.isfinite(x)
        if not finite.all():
            missing += int((~finite).sum())
            x = x[finite]
        return _Side("numeric" if x.size else "empty", x, rows, missing)
    if pa.types.is_boolean(t):
        return _Side("boolean", arr, rows, missing)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return _Side("categorical", arr, rows, missing)
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _vectors(arr, rows, missing)
    return _Side("other", arr, rows, missing)


def _vectors(arr: pa.Array, rows: int, missing: int) -> _Side:
    """Rows of a list column (no nulls) as a 2-D float64 array of finite rows of the most common length."""
    value_type = arr.type.value_type
    if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)):
        return _Side("other", arr, rows, missing)  # lists of strings and the like: profiled, not compared
    note = ""
    if pa.types.is_fixed_size_list(arr.type):
        dim = arr.type.list_size
    else:
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        dim = int(np.bincount(lengths).argmax())
        keep = lengths == dim
        if not keep.all():
            other = int((~keep).sum())
            missing += other
            note = f"{other:,} rows of another length than {dim} left out"
            arr = arr.filter(pa.array(keep))
    if dim == 0 or len(arr) == 0:
        return _Side("empty", None, rows, rows)
    x = arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(-1, dim)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        missing += int((~finite).sum())
        x = x[finite]
    return _Side("vector" if len(x) else "empty", x, rows, missing, note)


def _is_text(arr: pa.Array) -> bool:
    lengths = pc.utf8_length(arr)
    mean = pc.mean(lengths).as_py() or 0.0
    if mean < TEXT_MIN_MEAN_LENGTH:
        return False
    return pc.count_distinct(arr).as_py() / len(arr) >= TEXT_MIN_DISTINCT_RATIO


def pair_column(name: str, ref: ColumnValues | None, cur: ColumnValues | None) -> ColumnPair:
    """The ``ColumnPair`` of one column; ``None`` for a side that lacks it."""
    if cur is None:
        return ColumnPair(name, "-", ONLY_REFERENCE, "the column is missing from the current data")
    if ref is None:
        return ColumnPair(name, "-", ONLY_CURRENT, "the column is not in the reference")
    return _pair(name, _side(ref), _side(cur))


def _pair(name: str, a: _Side, b: _Side) -> ColumnPair:
    pair = ColumnPair(
        name, a.kind, ref_rows=a.rows, cur_rows=b.rows, ref_missing=a.missing, cur_missing=b.missing
    )
    if a.kind == "empty" or b.kind == "empty":
        side = "reference" if a.kind == "empty" else "current data"
        pair.kind = b.kind if a.kind == "empty" else a.kind
        pair.status, pair.message = EMPTY, f"the {side} has no values in this column"
        return pair
    if "mixed" in (a.kind, b.kind):
        which = a if a.kind == "mixed" else b
        pair.kind, pair.status = "mixed", NOT_COMPARED
        pair.message = f"values of several types ({which.values}); give the column one type to compare it"
        return pair
    if a.kind != b.kind:
        pair.status = KIND_MISMATCH
        pair.message = f"{a.kind} in the reference, {b.kind} in the current data"
        return pair
    if a.kind == "other":
        pair.status = NOT_COMPARED
        pair.message = "lists of non-numbers, structs and binary columns are profiled but not compared"
        return pair
    if a.kind == "vector":
        pair.message = "; ".join(
            f"{side}: {s.note}" for side, s in (("reference", a), ("current", b)) if s.note
        )
        if a.values.shape[1] != b.values.shape[1]:
            pair.status = DIMENSION_MISMATCH
            pair.message = (
                f"vectors of dimension {a.values.shape[1]} in the reference, "
                f"{b.values.shape[1]} in the current data"
            )
            return pair
        pair.ref, pair.cur = a.values, b.values
        return pair
    if a.kind == "numeric":
        pair.ref, pair.cur = a.values, b.values
    elif a.kind == "categorical" and _is_text(a.values):
        pair.kind = "text"  # compared by the distribution of lengths: free text has no categories to count
        pair.ref = pc.utf8_length(a.values).to_numpy(zero_copy_only=False).astype(np.float64)
        pair.cur = pc.utf8_length(b.values).to_numpy(zero_copy_only=False).astype(np.float64)
    else:  # categorical, boolean: codes over one dictionary
        # one type for both sides (a Parquet file may hold large_string where a CSV gives string)
        common = pa.bool_() if a.kind == "boolean" else pa.large_string()
        both = (
            pa.chunked_array([a.values.cast(common), b.values.cast(common)])
            .dictionary_encode()
            .combine_chunks()
        )
        codes = both.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        pair.labels = both.dictionary.to_pylist()
        pair.ref, pair.cur = codes[: len(a.values)], codes[len(a.values) :]
    return pair
