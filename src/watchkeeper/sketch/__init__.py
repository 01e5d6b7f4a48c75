"""Mergeable sketches: bounded-size summaries of a column, one per module, pure math.

Every sketch has ``update(values)`` (vectorised, a 1-D batch), ``merge(other)`` / ``a + b``, ``to_bytes()`` /
``from_bytes(blob)``, ``copy()`` and ``describe()``. ``from_bytes(blob)`` here reads any sketch, dispatching
on the kind byte of the blob.

==================  ==========================================  ===========================================
sketch              answers                                     error
==================  ==========================================  ===========================================
``Counts``          rows, None, NaN, ±inf, value types          exact
``Moments``         count, mean, variance, min, max             exact up to floating-point rounding
``Quantiles``       quantiles, ranks, CDF (KLL)                 rank error <= 0.39% (99%), k=700
``LatencySketch``   quantiles of durations (DDSketch)           relative error <= alpha (1%)
``FrequentItems``   most frequent values                        exact up to 1024 values, then <= n/(m+1)
``DistinctCount``   number of distinct values                   exact up to 1024, then RSE 0.57% (HLL)
==================  ==========================================  ===========================================
"""

from __future__ import annotations

from .base import Sketch
from .counts import Counts
from .distinct import DistinctCount
from .frequent import FrequentItem, FrequentItems
from .latency import LatencySketch
from .moments import Moments
from .quantiles import Quantiles

__all__ = [
    "Counts",
    "DistinctCount",
    "FrequentItem",
    "FrequentItems",
    "LatencySketch",
    "Moments",
    "Quantiles",
    "Sketch",
    "from_bytes",
]


def from_bytes(blob: bytes | bytearray | memoryview) -> Sketch:
    """Read any sketch written by ``Sketch.to_bytes()``; ValueError if corrupt, unknown or too new."""
    return Sketch.from_bytes(blob)
