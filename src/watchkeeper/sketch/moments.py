"""Count, mean, variance, min and max of a numeric column, mergeable exactly.

The state is ``(n, mean, M2, min, max)`` with ``M2 = sum((x - mean)^2)``. A batch is summarised with a
two-pass computation (pairwise-summed mean, then a corrected mean and the sum of squared deviations from it),
which stays accurate when the values sit on a large offset (``1e9 + noise``), where the naive
``sum(x^2) - n*mean^2`` loses every digit. Two summaries ``A`` and ``B`` combine with the pairwise formula of
Chan, Golub & LeVeque::

    n     = n_A + n_B
    delta = mean_B - mean_A
    mean  = (n_A * mean_A + n_B * mean_B) / n
    M2    = M2_A + M2_B + delta^2 * n_A * n_B / n

(T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm for computing sample
variances", Stanford CS report STAN-CS-79-773, 1979; also in COMPSTAT 1982.) The mean is written as the
weighted average, which is symmetric in ``A`` and ``B``, so ``a + b`` and ``b + a`` are bit-for-bit equal;
associativity holds to rounding (about 1e-15 relative).

Non-finite input: NaN, +inf and -inf are ignored (they would turn mean and variance into NaN for good);
``n`` counts the finite values only. The ``Counts`` sketch records how many NaN and infinities a column had.
"""

from __future__ import annotations

import math
from typing import Self

import numpy as np

from .base import BlobReader, BlobWriter, Sketch

__all__ = ["Moments"]


class Moments(Sketch, kind=2):
    """Streaming count, mean, variance, min and max (NaN and ±inf ignored).

    >>> import numpy as np
    >>> x = np.random.default_rng(7).normal(10.0, 2.0, 1000)
    >>> m = Moments().update(x[:600]) + Moments().update(x[600:])
    >>> m.n, round(m.mean, 10) == round(float(x.mean()), 10), math.isclose(m.variance(ddof=1), x.var(ddof=1))
    (1000, True, True)
    >>> Moments().mean
    nan
    """

    def __init__(self) -> None:
        self.n = 0
        self.mean = math.nan
        self.m2 = math.nan
        self.min = math.nan
        self.max = math.nan

    def _update(self, values: np.ndarray) -> None:
        x = np.asarray(values, dtype=np.float64)
        finite = np.isfinite(x)
        if not finite.all():
            x = x[finite]
        n = x.size
        if n == 0:
            return
        mean = float(np.sum(x)) / n
        dev = x - mean
        # One refinement step (the "corrected two-pass" algorithm): removes the rounding error of the mean.
        correction = float(np.sum(dev)) / n
        mean += correction
        dev -= correction
        m2 = float(np.einsum("i,i->", dev, dev))  # not np.dot: BLAS may start threads for a dot product
        self._combine(n, mean, m2, float(x.min()), float(x.max()))

    def _combine(self, n_b: int, mean_b: float, m2_b: float, min_b: float, max_b: float) -> None:
        n_a = self.n
        if n_a == 0:
            self.n, self.mean, self.m2, self.min, self.max = n_b, mean_b, m2_b, min_b, max_b
            return
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = (n_a * self.mean + n_b * mean_b) / n
        self.m2 = self.m2 + m2_b + delta * delta * (n_a * n_b / n)
        self.n = n
        self.min = min(self.min, min_b)
        self.max = max(self.max, max_b)

    def _check_compatible(self, other: Self) -> None:
        pass  # no parameters

    def _merge_into(self, other: Self) -> None:
        if other.n:
            self._combine(other.n, other.mean, other.m2, other.min, other.max)

    def _encode(self, out: BlobWriter) -> None:
        out.pack("Q4d", self.n, self.mean, self.m2, self.min, self.max)

    @classmethod
    def _decode(cls, blob: BlobReader, version: int) -> Self:
        sketch = cls()
        sketch.n, sketch.mean, sketch.m2, sketch.min, sketch.max = blob.unpack("Q4d")
        if (sketch.n == 0) != math.isnan(sketch.mean):
            raise ValueError(f"Moments blob is corrupt: n={sketch.n} with mean={sketch.mean}")
        return sketch

    def variance(self, ddof: int = 0) -> float:
        """``M2 / (n - ddof)``, as ``np.var(x, ddof=ddof)``; NaN when ``n <= ddof``."""
        return self.m2 / (self.n - ddof) if self.n > ddof else math.nan

    def std(self, ddof: int = 0) -> float:
        """Square root of ``variance(ddof)``."""
        return math.sqrt(self.variance(ddof)) if self.n > ddof else math.nan

    @property
    def sum(self) -> float:
        """``n * mean`` (0.0 when empty)."""
        return self.n * self.mean if self.n else 0.0

    def describe(self) -> dict[str, float]:
        return {
            "n": self.n,
            "mean": self.mean,
            "std": self.std(ddof=1),
            "min": self.min,
            "max": self.max,
        }
