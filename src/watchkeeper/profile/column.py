"""The profile of one column: what it held, summarised by mergeable sketches.

A column is seen as it came. ``counts`` (rows, missing, NaN, ±inf, and the type of every value) is always
kept; the rest is kept per family of values the column carried, created on first sight:

* numeric (ints, floats, decimals, and timestamps as epoch seconds): ``Moments`` and KLL ``Quantiles`` of
  the finite values;
* strings: ``FrequentItems``, ``DistinctCount`` and ``Moments`` of the lengths (in characters);
* booleans: exact true and false counts;
* fixed-length vectors (embeddings): :class:`~watchkeeper.profile.vector.VectorSummary`.

So a column that changes type is visible (its type counts and both families show it) and every profile of
it merges, whatever each part saw. The column's ``kind`` is the declared one (``schema=``) or the family
holding most of its values; string columns are ``text`` when their values are long (mean length of at
least 30 characters) and mostly distinct, ``categorical`` otherwise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from watchkeeper.profile.frames import ColumnValues
from watchkeeper.profile.vector import VectorSummary
from watchkeeper.sketch import Counts, DistinctCount, FrequentItem, FrequentItems, Moments, Quantiles
from watchkeeper.sketch.base import BlobReader, BlobWriter

KINDS = ("numeric", "categorical", "text", "boolean", "vector", "datetime")
_KIND_CODES = {None: 0, **{k: i + 1 for i, k in enumerate(KINDS)}}
_CODE_KINDS = {v: k for k, v in _KIND_CODES.items()}
TEXT_MIN_MEAN_LENGTH = 30.0
TEXT_MIN_DISTINCT_RATIO = 0.5

_NUMERIC, _STRINGS, _BOOLEANS, _VECTORS = 1, 2, 4, 8


def _sketch_out(out: BlobWriter, sketch: Any) -> None:
    blob = sketch.to_bytes()
    out.pack("I", len(blob))
    out.raw(blob)


class NumericPart:
    def __init__(self) -> None:
        self.seen = 0  # numeric values, finite or not
        self.moments = Moments()
        self.quantiles = Quantiles()

    def update(self, x: np.ndarray) -> None:
        self.seen += x.size
        if x.dtype.kind == "f":
            finite = np.isfinite(x)
            if not finite.all():
                x = x[finite]
        else:
            x = x.astype(np.float64)
        if x.size:
            self.moments.update(x)
            self.quantiles.update(x)

    def merge(self, other: NumericPart) -> NumericPart:
        out = NumericPart()
        out.seen = self.seen + other.seen
        out.moments = self.moments.merge(other.moments)
        out.quantiles = self.quantiles.merge(other.quantiles)
        return out


class StringPart:
    def __init__(self) -> None:
        self.seen = 0
        self.frequent = FrequentItems()
        self.distinct = DistinctCount()
        self.lengths = Moments()

    def update(self, arr: pa.Array) -> None:
        """``arr``: a pyarrow string array without nulls."""
        if not len(arr):
            return
        self.seen += len(arr)
        vc = pc.value_counts(arr)
        values = vc.field("values").to_numpy(zero_copy_only=False)
        counts = vc.field("counts").to_numpy()
        self.frequent.update_counts(values, counts)
        self.distinct.update(values)
        self.lengths.update(pc.utf8_length(arr).to_numpy(zero_copy_only=False).astype(np.float64))

    def merge(self, other: StringPart) -> StringPart:
        out = StringPart()
        out.seen = self.seen + other.seen
        out.frequent = self.frequent.merge(other.frequent)
        out.distinct = self.distinct.merge(other.distinct)
        out.lengths = self.lengths.merge(other.lengths)
        return out


class ColumnProfile:
    """The mergeable summary of one column; build it with :func:`watchkeeper.profile` or ``update``.

    >>> col = ColumnProfile("latency_ms").update(pa.array([12.0, 15.5, None, float("nan"), 40.0]))
    >>> col.kind, col.count, col.missing, col.counts.nan, col.mean
    ('numeric', 5, 1, 1, 22.5)
    """

    def __init__(self, name: str, kind: str | None = None) -> None:
        if kind is not None and kind not in KINDS:
            raise ValueError(f"column {name!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.name = name
        self.declared_kind = kind
        self.counts = Counts()
        self.invalid = 0  # values that could not be read as the declared kind
        self.temporal = False  # numeric values came from dates or timestamps
        self.numeric: NumericPart | None = None
        self.strings: StringPart | None = None
        self.true_count = 0
        self.false_count = 0
        self.vectors: VectorSummary | None = None
        self.vector_mismatch = 0  # list values whose length differed from the column's dimension

    # -- updating ------------------------------------------------------------------------------------------

    def update(self, values: ColumnValues) -> ColumnProfile:
        if isinstance(values, np.ndarray) and values.dtype == object:
            self._update_objects(values)
        elif isinstance(values, np.ndarray):
            self._update_arrow(pa.array(values))
        elif isinstance(values, pa.ChunkedArray):
            for chunk in values.chunks:
                self._update_arrow(chunk)
        else:
            self._update_arrow(values)
        return self

    def _missing(self, n: int) -> None:
        self.counts.rows += n
        self.counts.missing += n

    def _update_arrow(self, arr: pa.Array) -> None:
        t = arr.type
        if pa.types.is_dictionary(t):
            arr = arr.dictionary_decode()
            t = arr.type
        if arr.null_count:
            self._missing(arr.null_count)
            arr = pc.drop_null(arr)
        if not len(arr):
            return
        declared = self.declared_kind
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            if pa.types.is_decimal(t):
                arr = arr.cast(pa.float64())
            x = arr.to_numpy(zero_copy_only=False)
            self.counts.update(x)
            if declared in ("categorical", "text"):
                self._strings(pc.cast(arr, pa.string()))
            else:
                self._numbers(x)
        elif pa.types.is_boolean(t):
            self.counts.rows += len(arr)
            self.counts.bool += len(arr)
            true = int(pc.sum(arr).as_py() or 0)
            self.true_count += true
            self.false_count += len(arr) - true
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            self.counts.rows += len(arr)
            self.counts.str += len(arr)
            if declared in ("numeric", "datetime"):
                self._parse_numbers(arr)
            else:
                self._strings(arr)
        elif pa.types.is_temporal(t):
            self.counts.rows += len(arr)
            self.counts.other += len(arr)
            self.temporal = True
            self._numbers(_epoch_seconds(arr))
        elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            self.counts.rows += len(arr)
            self.counts.other += len(arr)
            self._vectors_arrow(arr)
        else:  # structs, maps, binary: counted, not summarised
            self.counts.rows += len(arr)
            self.counts.other += len(arr)

    def _numbers(self, x: np.ndarray) -> None:
        if self.numeric is None:
            self.numeric = NumericPart()
        self.numeric.update(x)

    def _strings(self, arr: pa.Array) -> None:
        if self.strings is None:
            self.strings = StringPart()
        self.strings.update(arr)

    def _parse_numbers(self, arr: pa.Array) -> None:
        try:
            self._numbers(pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False))
            return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        parsed = np.full(len(arr), np.nan)
        ok = np.zeros(len(arr), dtype=bool)
        for i, s in enumerate(arr.to_pylist()):
            try:
                parsed[i] = float(s)
                ok[i] = True
            except ValueError:
                pass
        self.invalid += int((~ok).sum())
        self._numbers(parsed[ok])

    def _vectors_arrow(self, arr: pa.Array) -> None:
        if pa.types.is_fixed_size_list(arr.type):
            dim = arr.type.list_size
            flat = arr.flatten()
            lengths = None
        else:
            lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
            dim = self.vectors.dim if self.vectors is not None else int(np.bincount(lengths).argmax())
            flat = None
        value_type = arr.type.value_type
        if not (pa.types.is_integer(value_type) or pa.types.is_floating(value_type)) or dim == 0:
            return  # lists of strings and the like: counted as "other", not summarised
        if lengths is not None:
            keep = lengths == dim
            if not keep.all():
                self.vector_mismatch += int((~keep).sum())
                arr = arr.filter(pa.array(keep))
            flat = arr.flatten()
        if self.vectors is not None and self.vectors.dim != dim:
            self.vector_mismatch += len(arr)
            return
        x = flat.to_numpy(zero_copy_only=False).astype(np.float64, copy=False).reshape(-1, dim)
        if self.vectors is None:
            self.vectors = VectorSummary(dim)
        self.vectors.update(x)

    def _update_objects(self, values: np.ndarray) -> None:
        """A column whose values have no single type: split them by type and summarise each family."""
        self.counts.update(values)
        types = np.fromiter(map(type, values.tolist()), dtype=object, count=len(values))
        families: dict[str, list[int]] = {}
        for i, typ in enumerate(types):
            if typ is type(None):
                continue
            if issubclass(typ, bool | np.bool_):
                fam = "bool"
            elif issubclass(typ, int | float | np.integer | np.floating):
                fam = "num"
            elif issubclass(typ, str):
                fam = "str"
            elif issubclass(typ, list | tuple | np.ndarray):
                fam = "vec"
            else:
                fam = "other"
            families.setdefault(fam, []).append(i)
        for fam, idx in families.items():
            part = values[np.asarray(idx)]
            if fam == "num":
                x = np.array(part.tolist(), dtype=np.float64)
                if self.declared_kind in ("categorical", "text"):
                    self._strings(pa.array([str(v) for v in part.tolist()], type=pa.string()))
                else:
                    self._numbers(x)
            elif fam == "str":
                strings = pa.array(part.tolist(), type=pa.string())
                if self.declared_kind in ("numeric", "datetime"):
                    self._parse_numbers(strings)
                else:
                    self._strings(strings)
            elif fam == "bool":
                true = int(sum(bool(v) for v in part))
                self.true_count += true
                self.false_count += len(part) - true
            elif fam == "vec":
                try:
                    arrow = pa.array([list(v) for v in part], type=pa.list_(pa.float64()))
                except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                    continue  # lists of non-numbers stay counted as "other"
                self._vectors_arrow(arrow)

    # -- merging ------------------------------------------------------------------------------------------

    def merge(self, other: ColumnProfile) -> ColumnProfile:
        if other.name != self.name:
            raise ValueError(f"cannot merge the profile of column {self.name!r} with that of {other.name!r}")
        if self.declared_kind != other.declared_kind and None not in (
            self.declared_kind,
            other.declared_kind,
        ):
            raise ValueError(
                f"column {self.name!r} was declared {self.declared_kind!r} in one profile and "
                f"{other.declared_kind!r} in the other"
            )
        out = ColumnProfile(self.name, self.declared_kind or other.declared_kind)
        out.counts = self.counts.merge(other.counts)
        out.invalid = self.invalid + other.invalid
        out.temporal = self.temporal or other.temporal
        out.numeric = _merge_parts(self.numeric, other.numeric)
        out.strings = _merge_parts(self.strings, other.strings)
        out.true_count = self.true_count + other.true_count
        out.false_count = self.false_count + other.false_count
        out.vector_mismatch = self.vector_mismatch + other.vector_mismatch
        if self.vectors is not None and other.vectors is not None and self.vectors.dim != other.vectors.dim:
            keep, drop = (
                (self.vectors, other.vectors)
                if self.vectors.n >= other.vectors.n
                else (
                    other.vectors,
                    self.vectors,
                )
            )
            out.vectors = keep
            out.vector_mismatch += drop.n + drop.nonfinite
        else:
            out.vectors = _merge_parts(self.vectors, other.vectors)
        return out

    # -- what it says --------------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Rows, missing included."""
        return self.counts.rows

    @property
    def missing(self) -> int:
        return self.counts.missing

    @property
    def kind(self) -> str:
        if self.declared_kind is not None:
            return self.declared_kind
        sizes = {
            "numeric": self.numeric.seen if self.numeric else 0,
            "string": self.strings.seen if self.strings else 0,
            "boolean": self.true_count + self.false_count,
            "vector": (self.vectors.n + self.vectors.nonfinite) if self.vectors else 0,
        }
        family = max(sizes, key=lambda k: sizes[k])
        if sizes[family] == 0:
            return "empty"
        if family == "numeric":
            return "datetime" if self.temporal else "numeric"
        if family == "string":
            s = self.strings
            assert s is not None
            long = s.lengths.n and s.lengths.mean >= TEXT_MIN_MEAN_LENGTH
            distinct = s.distinct.estimate / max(s.seen, 1) >= TEXT_MIN_DISTINCT_RATIO
            return "text" if long and distinct else "categorical"
        return family

    @property
    def mean(self) -> float:
        return self.numeric.moments.mean if self.numeric else math.nan

    @property
    def std(self) -> float:
        return self.numeric.moments.std(ddof=1) if self.numeric and self.numeric.moments.n > 1 else math.nan

    @property
    def min(self) -> float:
        return self.numeric.moments.min if self.numeric else math.nan

    @property
    def max(self) -> float:
        return self.numeric.moments.max if self.numeric else math.nan

    @property
    def distinct(self) -> float:
        """Estimated number of distinct string values (exact up to 1024), NaN for a column without strings."""
        return self.strings.distinct.estimate if self.strings else math.nan

    def quantile(self, q: float | Any) -> float | np.ndarray:
        """Quantiles of the column's finite numeric values (KLL, rank error <= 0.77%)."""
        if self.numeric is None:
            raise ValueError(f"column {self.name!r} ({self.kind}) holds no numbers to take quantiles of")
        return self.numeric.quantiles.quantile(q)

    def top(self, k: int = 10) -> list[FrequentItem]:
        """The ``k`` most frequent values with their counts (and error bounds beyond 1024 distinct values)."""
        if self.strings is not None:
            return self.strings.frequent.top(k)
        if self.true_count + self.false_count:
            items = [(True, self.true_count), (False, self.false_count)]
            items.sort(key=lambda it: -it[1])
            return [FrequentItem(v, c, c, c) for v, c in items[:k] if c]
        raise ValueError(f"column {self.name!r} ({self.kind}) holds no categorical values")

    def to_dict(self) -> dict[str, Any]:
        """One row of ``Profile.summary()``."""
        c = self.counts
        row: dict[str, Any] = {
            "column": self.name,
            "kind": self.kind,
            "count": c.rows,
            "missing": c.missing,
            "missing_frac": c.missing / c.rows if c.rows else math.nan,
            "nan": c.nan,
            "inf": c.posinf + c.neginf,
            "types": ",".join(
                f"{t}:{getattr(c, t)}" for t in ("int", "float", "bool", "str", "other") if getattr(c, t)
            ),
            "invalid": self.invalid,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
        }
        qs = (
            self.numeric.quantiles.quantile([0.25, 0.5, 0.75])
            if self.numeric and self.numeric.moments.n
            else None
        )
        row.update(
            {
                "p25": float(qs[0]) if qs is not None else math.nan,
                "p50": float(qs[1]) if qs is not None else math.nan,
                "p75": float(qs[2]) if qs is not None else math.nan,
                "max": self.max,
                "distinct": self.distinct,
            }
        )
        top = self.top(1) if (self.strings is not None or self.true_count + self.false_count) else []
        row["top"] = top[0].value if top else None
        row["top_count"] = top[0].count if top else None
        row["mean_length"] = self.strings.lengths.mean if self.strings else math.nan
        row["vector_dim"] = self.vectors.dim if self.vectors else None
        return row

    # -- serialisation -----------------------------------------------------------------------------------

    def encode(self, out: BlobWriter) -> None:
        parts = (
            (_NUMERIC if self.numeric else 0)
            | (_STRINGS if self.strings else 0)
            | (_BOOLEANS if self.true_count + self.false_count else 0)
            | (_VECTORS if self.vectors else 0)
        )
        out.pack(
            "BBBQQ",
            _KIND_CODES[self.declared_kind],
            parts,
            int(self.temporal),
            self.invalid,
            self.vector_mismatch,
        )
        _sketch_out(out, self.counts)
        if self.numeric:
            out.pack("Q", self.numeric.seen)
            _sketch_out(out, self.numeric.moments)
            _sketch_out(out, self.numeric.quantiles)
        if self.strings:
            out.pack("Q", self.strings.seen)
            for sketch in (self.strings.frequent, self.strings.distinct, self.strings.lengths):
                _sketch_out(out, sketch)
        if parts & _BOOLEANS:
            out.pack("QQ", self.true_count, self.false_count)
        if self.vectors:
            blob = self.vectors.encode()
            out.pack("I", len(blob))
            out.raw(blob)

    @classmethod
    def decode(cls, name: str, blob: BlobReader) -> ColumnProfile:
        kind_code, parts, temporal, invalid, mismatch = blob.unpack("BBBQQ")
        if kind_code not in _CODE_KINDS:
            raise ValueError(f"column {name!r}: unknown kind code {kind_code}")
        col = cls(name, _CODE_KINDS[kind_code])
        col.temporal, col.invalid, col.vector_mismatch = bool(temporal), invalid, mismatch
        col.counts = Counts.from_bytes(blob.take(blob.one("I")))
        if parts & _NUMERIC:
            col.numeric = NumericPart()
            col.numeric.seen = blob.one("Q")
            col.numeric.moments = Moments.from_bytes(blob.take(blob.one("I")))
            col.numeric.quantiles = Quantiles.from_bytes(blob.take(blob.one("I")))
        if parts & _STRINGS:
            col.strings = StringPart()
            col.strings.seen = blob.one("Q")
            col.strings.frequent = FrequentItems.from_bytes(blob.take(blob.one("I")))
            col.strings.distinct = DistinctCount.from_bytes(blob.take(blob.one("I")))
            col.strings.lengths = Moments.from_bytes(blob.take(blob.one("I")))
        if parts & _BOOLEANS:
            col.true_count, col.false_count = blob.unpack("QQ")
        if parts & _VECTORS:
            col.vectors = VectorSummary.decode(BlobReader(blob.take(blob.one("I")), 0, f"column {name!r}"))
        return col

    def __repr__(self) -> str:
        return f"ColumnProfile({self.name!r}, kind={self.kind}, count={self.count}, missing={self.missing})"


def _merge_parts(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    return a.merge(b)


_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _epoch_seconds(arr: pa.Array) -> np.ndarray:
    t = arr.type
    if pa.types.is_timestamp(t):
        return arr.cast(pa.int64()).to_numpy(zero_copy_only=False) * _UNIT_SECONDS[t.unit]
    if pa.types.is_date32(t):
        return arr.cast(pa.int32()).to_numpy(zero_copy_only=False).astype(np.float64) * 86400.0
    if pa.types.is_date64(t):
        return arr.cast(pa.int64()).to_numpy(zero_copy_only=False) * 1e-3
    if pa.types.is_duration(t):
        return arr.cast(pa.int64()).to_numpy(zero_copy_only=False) * _UNIT_SECONDS[t.unit]
    # time of day
    return pc.cast(arr, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64) * _UNIT_SECONDS.get(
        getattr(t, "unit", "s"), 1.0
    )
