"""Frequent values of a column: exact counts while they fit, then a Misra-Gries heavy-hitters summary.

The sketch keeps at most ``max_items`` (``m``) counters. While a column has at most ``m`` distinct values
every count is exact. Beyond that it is the Misra-Gries summary (J. Misra, D. Gries, "Finding repeated
elements", Science of Computer Programming 2(2), 1982) in the batched, mergeable form of Agarwal,
Cormode, Huang, Phillips, Wei and Yi ("Mergeable summaries", PODS 2012): counters of a batch (or of another
sketch) are added, and if more than ``m`` remain, the ``(m+1)``-th largest count ``c`` is subtracted from
every counter and non-positive ones are dropped; ``c`` is added to ``error``. Then for every value ``v``
with true count ``f(v)`` and stored count ``f̂(v)`` (0 if not stored)::

    f̂(v) <= f(v) <= f̂(v) + error,        error <= (n - sum of stored counts) / (m + 1) <= n / (m + 1)

so every value with ``f(v) > n / (m + 1)`` is guaranteed to be stored. ``top(k)`` reports the stored count as
``count`` (= ``lower_bound``) and ``count + error`` as ``upper_bound``.

Why not Apache DataSketches' ``frequent_strings_sketch``: its Python ``update`` takes one string per call,
so a batch costs a Python loop per element (measured 0.15-0.36 s per 1M strings, 3-7M/s, before any
``str()`` conversion; see bench/bench_sketch.py), and it only holds strings. Here a batch is first reduced
to ``(value, count)`` pairs in C (``np.unique(return_counts=True)`` for numeric arrays,
``collections.Counter`` over the list of Python objects for strings), so the Python-level work is per
*distinct* value of the batch, not per row, and a numeric batch with more than ``m`` distinct values is
reduced on arrays before any Python object is made.

Values: ``str``, ``int``, ``float``, ``bool`` and ``bytes`` (numpy scalars count as their Python kind);
``top()`` returns them with their type. ``None`` and NaN are skipped (``Counts`` counts them). Values that
are equal in Python share one counter, as in a ``dict``: ``1``, ``1.0`` and ``True`` are the same key, shown
with one of the types it came with. Any other type raises ``TypeError`` naming it.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from .base import BlobReader, BlobWriter, Sketch, _as_1d

__all__ = ["FrequentItem", "FrequentItems"]

Value = str | int | float | bool | bytes

# Serialised groups, in this order: tag -> Python type.
_BOOL, _INT, _FLOAT, _STR, _BYTES, _BIGINT = range(6)
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


@dataclass(frozen=True, slots=True)
class FrequentItem:
    """One frequent value: ``lower_bound <= true count <= upper_bound``; ``count`` is the lower bound."""

    value: Value
    count: int
    lower_bound: int
    upper_bound: int


class FrequentItems(Sketch, kind=5):
    """Exact value counts up to ``max_items`` distinct values, Misra-Gries beyond (error <= n/(m+1)).

    >>> import numpy as np
    >>> rng = np.random.default_rng(5)
    >>> colours = rng.choice(["red", "green", "blue"], size=1000, p=[0.6, 0.3, 0.1])
    >>> f = FrequentItems().update(colours[:400]) + FrequentItems().update(colours[400:])
    >>> [(item.value, item.count) for item in f.top(2)] == [("red", int((colours == "red").sum())),
    ...                                                      ("green", int((colours == "green").sum()))]
    True
    >>> f.is_exact, f.error
    (True, 0)
    """

    INPUT_KIND = "categorical"

    def __init__(self, max_items: int = 1024) -> None:
        if not 1 <= max_items <= 1 << 24:
            raise ValueError(f"max_items must be in 1..16777216 (got {max_items})")
        self.max_items = int(max_items)
        self.n = 0
        self.error = 0
        self._counts: dict[Value, int] = {}

    @property
    def is_exact(self) -> bool:
        """True while no counter was ever decremented (every stored count is the true count)."""
        return self.error == 0

    @property
    def max_error(self) -> float:
        """The a-priori bound ``n / (m + 1)`` on ``error``."""
        return self.n / (self.max_items + 1)

    def __len__(self) -> int:
        return len(self._counts)

    # -- update and merge ---------------------------------------------------------------------------------

    def _update(self, values: np.ndarray) -> None:
        kind = values.dtype.kind
        if kind in "biuf":
            x = values[~np.isnan(values)] if kind == "f" else values
            uniq, counts = np.unique(x, return_counts=True)
            self.n += int(counts.sum())
            if uniq.size > self.max_items:
                self._add_sorted(uniq, counts.astype(np.int64))
            else:
                self._add(dict(zip(uniq.tolist(), counts.tolist(), strict=True)))
        elif kind in "USO":
            batch: dict[Value, int] = Counter(values.tolist())
            if kind == "O":
                batch = _clean_keys(batch)
            self.n += sum(batch.values())
            self._add(batch)
        else:
            raise TypeError(
                f"FrequentItems cannot count values of dtype {values.dtype} (expected str, int, "
                "float, bool or bytes)"
            )

    def update_counts(self, values: npt.ArrayLike, counts: npt.ArrayLike) -> Self:
        """Add values with their multiplicities, e.g. the output of a group-by or of pyarrow's
        ``value_counts``: the same as ``update`` on each value repeated ``counts`` times, at the cost of the
        number of distinct values rather than of rows.

        >>> f = FrequentItems().update_counts(["a", "b", "a"], [5, 2, 1])
        >>> [(item.value, item.count) for item in f.top()], f.n
        ([('a', 6), ('b', 2)], 8)
        """
        vals = _as_1d(self._coerce(values))
        cnts = np.asarray(counts, dtype=np.int64).reshape(-1)
        if vals.shape != cnts.shape:
            raise ValueError(f"update_counts: {vals.size} values but {cnts.size} counts")
        if cnts.size and int(cnts.min()) < 0:
            raise ValueError("update_counts: counts must not be negative")
        batch: Counter[Any] = Counter()
        for key, c in zip(vals.tolist(), cnts.tolist(), strict=True):
            batch[key] += c
        clean = _clean_keys(batch)
        self.n += sum(clean.values())
        self._add(clean)
        return self

    def _add(self, batch: dict[Value, int]) -> None:
        """Add exact counts (``batch`` is consumed), then reduce to ``max_items`` counters."""
        if not batch:
            return
        # Fold the smaller dict into the larger, so the Python loop is bounded by max_items, not the batch.
        small, large = (batch, self._counts) if len(batch) <= len(self._counts) else (self._counts, batch)
        get = large.get
        for key, c in small.items():
            large[key] = get(key, 0) + c
        self._counts = large
        if len(large) > self.max_items:
            self._reduce()

    def _reduce(self) -> None:
        keys = list(self._counts)
        counts = np.fromiter(self._counts.values(), dtype=np.int64, count=len(keys))
        threshold = _threshold(counts, self.max_items)
        keep = np.flatnonzero(counts > threshold)
        survivors = (counts[keep] - threshold).tolist()
        self._counts = {keys[i]: c for i, c in zip(keep.tolist(), survivors, strict=True)}
        self.error += threshold

    def _add_sorted(self, uniq: np.ndarray, counts: np.ndarray) -> None:
        """Add a numeric batch of more than ``max_items`` distinct values without a dict of the batch.

        The state's counters (at most ``max_items``) are located in ``uniq`` by binary search; the threshold
        and the survivors are computed on arrays, and only survivors become Python objects.
        """
        extra_keys: list[Value] = []
        extra_counts: list[int] = []
        matched: dict[int, Value] = {}
        for key, c in self._counts.items():
            pos = _find_sorted(uniq, key)
            if pos is None:
                extra_keys.append(key)
                extra_counts.append(c)
            else:
                counts[pos] += c
                matched[pos] = key
        everything = np.concatenate((counts, np.array(extra_counts, dtype=np.int64)))
        threshold = _threshold(everything, self.max_items)
        keep = np.flatnonzero(counts > threshold)
        new: dict[Value, int] = {}
        for i, key, c in zip(
            keep.tolist(), uniq[keep].tolist(), (counts[keep] - threshold).tolist(), strict=True
        ):
            new[matched.get(i, key)] = c
        for key, c in zip(extra_keys, extra_counts, strict=True):
            if c > threshold:
                new[key] = new.get(key, 0) + c - threshold
        self._counts = new
        self.error += threshold

    def _check_compatible(self, other: Self) -> None:
        if self.max_items != other.max_items:
            raise ValueError(
                f"cannot merge FrequentItems(max_items={self.max_items}) with "
                f"FrequentItems(max_items={other.max_items}): parameters differ"
            )

    def _merge_into(self, other: Self) -> None:
        self.n += other.n
        self.error += other.error
        self._add(dict(other._counts))

    # -- queries ------------------------------------------------------------------------------------------

    def count(self, value: Value) -> FrequentItem:
        """Bounds on the count of one value (stored or not)."""
        c = self._counts.get(value, 0)
        return FrequentItem(value, c, c, c + self.error)

    def top(self, k: int = 10) -> list[FrequentItem]:
        """The ``k`` values with the largest counts, largest first (ties in a stable value order)."""
        items = sorted(self._counts.items(), key=_rank_key)[: max(k, 0)]
        return [FrequentItem(v, c, c, c + self.error) for v, c in items]

    def describe(self) -> dict[str, float]:
        out: dict[str, float] = {"n": self.n, "error": self.error, "tracked": len(self._counts)}
        for item in self.top(5):
            out[f"count[{item.value!r}]"] = item.count
        return out

    # -- serialisation --------------------------------------------------------------------------------------

    def _encode(self, out: BlobWriter) -> None:
        out.pack("IQQ", self.max_items, self.n, self.error)
        groups: list[list[tuple[Any, int]]] = [[] for _ in range(6)]
        for value, c in self._counts.items():
            groups[_tag(value)].append((value, c))
        for tag, group in enumerate(groups):
            group.sort(key=lambda vc: vc[0])
            values = [v for v, _ in group]
            out.uint_array(np.array([c for _, c in group], dtype=np.uint64))
            if tag == _BOOL:
                out.array(np.array(values, dtype=np.uint8), "u1")
            elif tag == _INT:
                out.array(np.array(values, dtype=np.int64), "i8")
            elif tag == _FLOAT:
                out.array(np.array(values, dtype=np.float64), "f8")
            else:
                raw = [v if tag == _BYTES else str(v).encode("utf-8") for v in values]
                out.uint_array(np.array([len(r) for r in raw], dtype=np.uint64))
                out.raw(b"".join(raw))

    @classmethod
    def _decode(cls, blob: BlobReader, version: int) -> Self:
        max_items, n, error = blob.unpack("IQQ")
        sketch = cls(max_items=max_items)
        sketch.n, sketch.error = n, error
        counts: dict[Value, int] = {}
        for tag in range(6):
            cs = blob.uint_array().tolist()
            values: list[Any]
            if tag == _BOOL:
                values = [bool(v) for v in blob.array("u1").tolist()]
            elif tag == _INT:
                values = blob.array("i8").tolist()
            elif tag == _FLOAT:
                values = blob.array("f8").tolist()
            else:
                lengths = blob.uint_array().tolist()
                data = blob.take(sum(lengths))
                offsets = np.concatenate(([0], np.cumsum(lengths, dtype=np.int64))).tolist()
                raw = [data[a:b] for a, b in itertools.pairwise(offsets)]
                values = raw if tag == _BYTES else [r.decode("utf-8") for r in raw]
                if tag == _BIGINT:
                    values = [int(v) for v in values]
            if len(values) != len(cs):
                raise ValueError(f"FrequentItems blob is corrupt: {len(values)} values for {len(cs)} counts")
            counts.update(zip(values, cs, strict=True))
        if len(counts) > max_items or sum(counts.values()) > n:
            raise ValueError("FrequentItems blob is corrupt: counters exceed max_items or n")
        sketch._counts = counts
        return sketch


def _threshold(counts: np.ndarray, m: int) -> int:
    """The (m+1)-th largest count (0 when there are at most m): the Misra-Gries decrement."""
    if counts.size <= m:
        return 0
    cut = counts.size - m - 1
    return int(np.partition(counts, cut)[cut])


def _find_sorted(uniq: np.ndarray, key: Value) -> int | None:
    """Index of ``key`` in the sorted numeric array ``uniq``, compared with Python equality, or None."""
    if not isinstance(key, (int, float)):
        return None
    try:
        pos = int(np.searchsorted(uniq, key))
        if pos < uniq.size and uniq[pos].item() == key:
            return pos
    except (OverflowError, TypeError, ValueError):
        pass
    return None


def _tag(value: Value) -> int:
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int):
        return _INT if _INT64_MIN <= value <= _INT64_MAX else _BIGINT
    if isinstance(value, float):
        return _FLOAT
    if isinstance(value, str):
        return _STR
    return _BYTES


def _rank_key(item: tuple[Value, int]) -> tuple[int, int, Any]:
    value, c = item
    return (-c, _tag(value), value)


def _clean_keys(batch: Counter[Any]) -> dict[Value, int]:
    """Drop None and NaN, turn numpy scalars into Python values, refuse other types."""
    out: dict[Value, int] = {}
    for key, c in batch.items():
        if key is None:
            continue
        if isinstance(key, np.generic):
            key = key.item()
        if not isinstance(key, (str, int, float, bytes)):  # bool is an int
            raise TypeError(
                f"FrequentItems cannot count a value of type {type(key).__name__} ({key!r}); expected str, "
                "int, float, bool or bytes"
            )
        if isinstance(key, float) and math.isnan(key):
            continue
        out[key] = out.get(key, 0) + c
    return out
