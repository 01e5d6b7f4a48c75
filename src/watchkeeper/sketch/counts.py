"""Exact row, missing, NaN, infinity and value-type counts of a column.

This is the sketch that sees a column as it came, before anything is cleaned, so that a column which starts
to carry ``None``, ``NaN``, infinities, or values of another type (strings in a numeric feature, floats where
ints were) is visible in its profile. All counts are integers and merge by addition, so merging is exact,
associative and commutative.

Definitions (for a batch of ``n`` values)::

    rows     = n
    missing  = number of ``None`` values
    int + float + bool + str + other = rows - missing     (the inferred Python/numpy type of each value)
    nan, posinf, neginf                                   (subsets of ``float``)

``bool`` is checked before ``int`` (``True`` is an ``int`` in Python). numpy scalars count as their Python
kind; datetimes, bytes, complex numbers, ``pd.NA`` and anything else count as ``other``.

A numeric or string numpy array is classified from its dtype alone, so those batches cost one vectorised
``isnan``/``isinf`` pass; an ``object`` array is classified by mapping ``type`` over it in C and testing each
distinct type once.
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from .base import BlobReader, BlobWriter, Sketch

__all__ = ["Counts"]

_FIELDS = ("rows", "missing", "nan", "posinf", "neginf", "int", "float", "bool", "str", "other")


class Counts(Sketch, kind=1):
    """Exact counts of rows, ``None``, NaN, ±inf and of each inferred value type.

    >>> import numpy as np
    >>> c = Counts().update(np.array([1.5, np.nan, np.inf, 2.0]))
    >>> c.rows, c.nan, c.posinf, c.float
    (4, 1, 1, 4)
    >>> c = c + Counts().update(["a", None, 3, True])
    >>> c.rows, c.missing, c.str, c.int, c.bool
    (8, 1, 1, 1, 1)
    """

    INPUT_KIND = "any"

    def __init__(self) -> None:
        self.rows = 0
        self.missing = 0
        self.nan = 0
        self.posinf = 0
        self.neginf = 0
        self.int = 0
        self.float = 0
        self.bool = 0
        self.str = 0
        self.other = 0

    def _update(self, values: np.ndarray) -> None:
        self.rows += values.size
        kind = values.dtype.kind
        if kind == "f":
            self.float += values.size
            self._count_non_finite(values)
        elif kind in "iu":
            self.int += values.size
        elif kind == "b":
            self.bool += values.size
        elif kind in "US":
            self.str += values.size
        elif kind == "O":
            self._update_objects(values)
        else:
            self.other += values.size

    def _count_non_finite(self, values: np.ndarray) -> None:
        self.nan += int(np.count_nonzero(np.isnan(values)))
        inf = np.isinf(values)
        n_inf = int(np.count_nonzero(inf))
        if n_inf:
            n_pos = int(np.count_nonzero(values[inf] > 0))
            self.posinf += n_pos
            self.neginf += n_inf - n_pos

    def _update_objects(self, values: np.ndarray) -> None:
        types = list(map(type, values.tolist()))
        # Compare type identities as integers: comparing an object array against a numpy scalar type
        # would make numpy treat the type as an array-like.
        type_ids = np.fromiter(map(id, types), dtype=np.int64, count=len(types))
        for typ in dict.fromkeys(types):
            mask = type_ids == id(typ)
            n = int(np.count_nonzero(mask))
            if typ is type(None):
                self.missing += n
            elif issubclass(typ, (bool, np.bool_)):
                self.bool += n
            elif issubclass(typ, (int, np.integer)):
                self.int += n
            elif issubclass(typ, (float, np.floating)):
                self.float += n
                self._count_non_finite(values[mask].astype(np.float64))
            elif issubclass(typ, (str, np.str_)):
                self.str += n
            else:
                self.other += n

    def _check_compatible(self, other: Self) -> None:
        pass  # counts have no parameters

    def _merge_into(self, other: Self) -> None:
        for name in _FIELDS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def _encode(self, out: BlobWriter) -> None:
        out.pack(f"{len(_FIELDS)}Q", *(getattr(self, name) for name in _FIELDS))

    @classmethod
    def _decode(cls, blob: BlobReader, version: int) -> Self:
        sketch = cls()
        for name, value in zip(_FIELDS, blob.unpack(f"{len(_FIELDS)}Q"), strict=True):
            setattr(sketch, name, value)
        return sketch

    def describe(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in _FIELDS}

    @property
    def present(self) -> int:
        """Rows that are not ``None``."""
        return self.rows - self.missing

    @property
    def missing_fraction(self) -> float:
        """``missing / rows`` (NaN when there are no rows)."""
        return self.missing / self.rows if self.rows else math.nan
