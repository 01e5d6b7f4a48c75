"""A relative-error quantile sketch for latencies and other non-negative durations (DDSketch).

DDSketch (C. Masson, J. E. Rim, H. K. Lee, "DDSketch: A Fast and Fully-Mergeable Quantile Sketch with
Relative-Error Guarantees", PVLDB 12(12), 2019) maps a value ``x > 0`` to the bucket::

    gamma = (1 + alpha) / (1 - alpha)
    i(x)  = ceil(log(x) / log(gamma))            bucket i holds (gamma^(i-1), gamma^i]

and answers a quantile with the bucket's representative ``2 * gamma^i / (gamma + 1)``, which is within
relative error ``alpha`` of every value in the bucket. The quantile ``q`` is the value of rank
``floor(q * (count - 1))`` among the sorted values (``np.quantile(x, q, method="lower")``), so the answer is
within ``alpha`` relative error of that exact order statistic. Merging adds bucket counts, which is exact,
associative and commutative.

Update is vectorised: one ``np.log``, one ``np.ceil`` and one ``np.bincount`` per batch.

Bounded size: buckets are kept as one dense count array covering at most ``max_buckets`` consecutive
indices (2048 by default, which at ``alpha = 0.01`` spans a ratio of ``gamma^2048 ≈ 6e17`` between the
largest and the smallest value, e.g. 1 ns to 19 years). When the range is wider, the lowest buckets are
collapsed into the lowest kept one, as in the paper: the upper quantiles (the ones latency alerts read) keep
the ``alpha`` guarantee, the quantiles that fall in the collapsed bucket are over-estimated. Which buckets
collapse depends only on the largest index ever seen, so collapsing preserves exact mergeability.

Values and edge cases:

- values ``<= min_value`` (default 1e-9) are counted in a zero bucket and read back as 0 (clamped to ``min``);
- NaN is ignored; negative values and ±inf are not part of the distribution: they are counted in
  ``invalid`` and excluded from ``count``, ``sum``, ``min``, ``max`` and quantiles;
- an empty sketch has ``count == 0``, ``sum == 0.0`` and NaN for ``min``, ``max`` and any quantile.

``prometheus_buckets()`` gives cumulative ``(le, count)`` pairs for a Prometheus histogram. With the sketch's
own bucket edges the counts are exact (every value in bucket ``i`` is ``<= gamma^i``, also after
collapsing). With explicit ``bounds`` the count at a bound ``b`` is estimated by interpolating the bucket
that straddles ``b`` linearly in ``log(x)``; its error is at most the number of values in that one bucket,
i.e. values within a factor ``gamma`` of ``b``.
"""

from __future__ import annotations

import math
from typing import Self, overload

import numpy as np
import numpy.typing as npt

from .base import BlobReader, BlobWriter, Sketch

__all__ = ["LatencySketch"]


class LatencySketch(Sketch, kind=4):
    """DDSketch with relative accuracy ``alpha`` for non-negative values.

    >>> import numpy as np
    >>> x = np.random.default_rng(11).lognormal(3.0, 1.0, 100_000)  # latencies in ms
    >>> s = LatencySketch(alpha=0.01).update(x[:70_000]) + LatencySketch(alpha=0.01).update(x[70_000:])
    >>> s.count
    100000
    >>> exact = np.quantile(x, 0.99, method="lower")
    >>> bool(abs(s.quantile(0.99) - exact) <= 0.01 * exact)
    True
    >>> s.prometheus_buckets([10.0, 100.0])[-1]
    (inf, 100000)
    """

    def __init__(self, alpha: float = 0.01, max_buckets: int = 2048, min_value: float = 1e-9) -> None:
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1) (got {alpha})")
        if not 16 <= max_buckets <= 1 << 20:
            raise ValueError(f"max_buckets must be in 16..1048576 (got {max_buckets})")
        if not (min_value > 0.0 and math.isfinite(min_value)):
            raise ValueError(f"min_value must be a positive finite number (got {min_value})")
        self.alpha = float(alpha)
        self.max_buckets = int(max_buckets)
        self.min_value = float(min_value)
        self.gamma = (1.0 + self.alpha) / (1.0 - self.alpha)
        self._log_gamma = math.log(self.gamma)
        self.count = 0
        self.zero_count = 0
        self.invalid = 0
        self.sum = 0.0
        self.min = math.nan
        self.max = math.nan
        self._offset = 0  # bucket index of _counts[0]
        self._counts = np.zeros(0, dtype=np.int64)

    # -- update and merge --------------------------------------------------------------------------------

    def _update(self, values: np.ndarray) -> None:
        x = np.asarray(values, dtype=np.float64)
        nan = np.isnan(x)
        if nan.any():
            x = x[~nan]
        valid = np.isfinite(x) & (x >= 0.0)
        n_valid = int(np.count_nonzero(valid))
        if n_valid < x.size:
            self.invalid += x.size - n_valid
            x = x[valid]
        if not n_valid:
            return
        positive = x > self.min_value
        n_pos = int(np.count_nonzero(positive))
        self.zero_count += n_valid - n_pos
        self.count += n_valid
        self.sum += float(np.sum(x))
        lo, hi = float(x.min()), float(x.max())
        self.min = lo if math.isnan(self.min) else min(self.min, lo)
        self.max = hi if math.isnan(self.max) else max(self.max, hi)
        if n_pos:
            pos = x[positive] if n_pos < n_valid else x
            idx = np.ceil(np.log(pos) / self._log_gamma).astype(np.int64)
            self._add_buckets(idx, None)

    def _add_buckets(self, idx: np.ndarray | None, other: tuple[int, np.ndarray] | None) -> None:
        """Add raw indices or another dense store, collapsing below ``top - max_buckets + 1``."""
        tops, bottoms = [], []
        if self._counts.size:
            bottoms.append(self._offset)
            tops.append(self._offset + self._counts.size - 1)
        if idx is not None:
            bottoms.append(int(idx.min()))
            tops.append(int(idx.max()))
        if other is not None and other[1].size:
            bottoms.append(other[0])
            tops.append(other[0] + other[1].size - 1)
        top = max(tops)
        floor = max(min(bottoms), top - self.max_buckets + 1)
        size = top - floor + 1
        counts = np.zeros(size, dtype=np.int64)
        for offset, arr in ((self._offset, self._counts), other or (0, self._counts[:0])):
            if arr.size:
                _add_clipped(counts, offset - floor, arr)
        if idx is not None:
            counts += np.bincount(np.maximum(idx - floor, 0), minlength=size)
        self._offset, self._counts = floor, counts

    def _check_compatible(self, other: Self) -> None:
        mine = (self.alpha, self.max_buckets, self.min_value)
        theirs = (other.alpha, other.max_buckets, other.min_value)
        if mine != theirs:
            raise ValueError(
                "cannot merge LatencySketch(alpha, max_buckets, min_value) "
                f"{mine} with LatencySketch {theirs}: parameters differ"
            )

    def _merge_into(self, other: Self) -> None:
        if not other.count and not other.invalid:
            return
        self.count += other.count
        self.zero_count += other.zero_count
        self.invalid += other.invalid
        self.sum += other.sum
        if other.count:
            self.min = other.min if math.isnan(self.min) else min(self.min, other.min)
            self.max = other.max if math.isnan(self.max) else max(self.max, other.max)
        if other._counts.size:
            self._add_buckets(None, (other._offset, other._counts))

    # -- queries -------------------------------------------------------------------------------------------

    @property
    def relative_accuracy(self) -> float:
        return self.alpha

    @property
    def num_buckets(self) -> int:
        """Number of non-empty buckets (the zero bucket included)."""
        return int(np.count_nonzero(self._counts)) + (1 if self.zero_count else 0)

    def bucket_value(self, index: npt.ArrayLike) -> np.ndarray:
        """The representative value ``2 gamma^i / (gamma + 1)`` of bucket ``i``."""
        return 2.0 * np.exp(np.asarray(index, dtype=np.float64) * self._log_gamma) / (self.gamma + 1.0)

    @overload
    def quantile(self, q: float) -> float: ...
    @overload
    def quantile(self, q: npt.ArrayLike) -> np.ndarray: ...

    def quantile(self, q: float | npt.ArrayLike) -> float | np.ndarray:
        """Value of rank ``floor(q * (count - 1))``, within relative error ``alpha``; NaN when empty."""
        qs = np.asarray(q, dtype=np.float64)
        if np.any((qs < 0) | (qs > 1) | np.isnan(qs)):
            raise ValueError(f"quantile q must be within [0, 1] (got {q!r})")
        if not self.count:
            out = np.full(qs.shape, np.nan)
        else:
            rank = np.floor(qs * (self.count - 1))
            cum = self.zero_count + np.cumsum(self._counts)
            pos = np.searchsorted(cum, rank, side="right")
            pos = np.minimum(pos, max(self._counts.size - 1, 0))
            est = self.bucket_value(self._offset + pos) if self._counts.size else np.zeros(qs.shape)
            est = np.where(rank < self.zero_count, 0.0, est)
            out = np.clip(est, self.min, self.max)
        return float(out) if out.ndim == 0 else out

    def prometheus_buckets(self, bounds: npt.ArrayLike | None = None) -> list[tuple[float, int]]:
        """Cumulative ``(le, count)`` pairs ending with ``(inf, count)``, for Prometheus exposition.

        ``bounds=None`` uses the sketch's own edges: ``min_value`` for the zero bucket, then ``gamma^i`` for
        each non-empty bucket; these counts are exact and merge exactly. Explicit ``bounds`` (any order)
        give the estimated number of values ``<= b`` for each ``b``, rounded to an integer and
        non-decreasing; the error at each bound is at most the count of the one bucket straddling it.
        """
        if bounds is None:
            cum = self.zero_count + np.cumsum(self._counts)
            nonempty = np.flatnonzero(self._counts)
            edges = np.exp((self._offset + nonempty) * self._log_gamma)
            pairs = [(self.min_value, self.zero_count)] if self.zero_count else []
            pairs += list(zip(edges.tolist(), cum[nonempty].tolist(), strict=True))
            return [*pairs, (math.inf, self.count)]
        b = np.unique(np.asarray(bounds, dtype=np.float64).ravel())
        if np.isnan(b).any():
            raise ValueError("prometheus bucket bounds must not be NaN")
        b = b[b < math.inf]
        counts = np.rint(self._count_le(b)).astype(np.int64)
        counts = np.maximum.accumulate(counts) if counts.size else counts
        return [*zip(b.tolist(), counts.tolist(), strict=True), (math.inf, self.count)]

    def _count_le(self, b: np.ndarray) -> np.ndarray:
        """Estimated number of values ``<= b`` (float, log-linear interpolation inside a bucket)."""
        if not self.count:
            return np.zeros(b.shape)
        out = np.zeros(b.shape)
        out[b >= self.min_value] = self.zero_count
        # Inside the zero bucket, with only min >= 0 known, interpolate linearly on [min, min_value].
        inside = (b >= 0) & (b < self.min_value)
        if inside.any() and self.zero_count:
            span = max(self.min_value - self.min, 0.0)
            frac = np.clip((b[inside] - self.min) / span, 0.0, 1.0) if span else np.ones(inside.sum())
            out[inside] = self.zero_count * frac
        if self._counts.size:
            cum = np.concatenate(([0], np.cumsum(self._counts)))
            with np.errstate(divide="ignore"):
                pos = np.log(np.maximum(b, self.min_value)) / self._log_gamma - (self._offset - 1)
            pos = np.clip(pos, 0.0, float(self._counts.size))
            whole = np.floor(pos).astype(np.int64)
            frac = pos - whole
            last = self._counts.size - 1
            partial = np.where(whole <= last, self._counts[np.minimum(whole, last)], 0)
            out[b > self.min_value] += (cum[whole] + frac * partial)[b > self.min_value]
        out[b >= self.max] = self.count
        out[b < self.min] = 0
        return out

    def describe(self) -> dict[str, float]:
        p50, p90, p99, p999 = (self.quantile(np.array([0.5, 0.9, 0.99, 0.999]))).tolist()
        return {
            "count": self.count,
            "sum": self.sum,
            "min": self.min,
            "max": self.max,
            "p50": p50,
            "p90": p90,
            "p99": p99,
            "p999": p999,
            "invalid": self.invalid,
        }

    # -- serialisation -------------------------------------------------------------------------------------

    def _encode(self, out: BlobWriter) -> None:
        out.pack("ddI", self.alpha, self.min_value, self.max_buckets)
        out.pack("QQQ", self.count, self.zero_count, self.invalid)
        out.pack("ddd", self.sum, self.min, self.max)
        out.pack("q", self._offset)
        out.uint_array(self._counts)

    @classmethod
    def _decode(cls, blob: BlobReader, version: int) -> Self:
        alpha, min_value, max_buckets = blob.unpack("ddI")
        sketch = cls(alpha=alpha, max_buckets=max_buckets, min_value=min_value)
        sketch.count, sketch.zero_count, sketch.invalid = blob.unpack("QQQ")
        sketch.sum, sketch.min, sketch.max = blob.unpack("ddd")
        sketch._offset = blob.one("q")
        counts = blob.uint_array()
        if counts.size > max_buckets or int(counts.sum()) + sketch.zero_count != sketch.count:
            raise ValueError("LatencySketch blob is corrupt: bucket counts do not add up to count")
        sketch._counts = counts.astype(np.int64)
        return sketch


def _add_clipped(target: np.ndarray, start: int, arr: np.ndarray) -> None:
    """``target[start:start+len(arr)] += arr``, folding the part below index 0 into ``target[0]``."""
    if start < 0:
        target[0] += int(arr[:-start].sum())
        arr = arr[-start:]
        start = 0
    target[start : start + arr.size] += arr
