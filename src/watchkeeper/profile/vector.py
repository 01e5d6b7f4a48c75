"""Summary of a column of fixed-length vectors (embeddings): per-dimension moments and the distribution of
norms.

Per dimension ``j``: count, mean, M2 (sum of squared deviations), min and max, updated and merged with the
pairwise formula of Chan, Golub and LeVeque ("Updating formulae and a pairwise algorithm for computing sample
variances", 1979), applied to all dimensions at once::

    n = n_a + n_b,  d = mean_b - mean_a,  mean = mean_a + d * n_b / n,  M2 = M2_a + M2_b + d^2 n_a n_b / n

Rows containing a non-finite component are left out of the moments (and counted in ``nonfinite``); the L2
norms of the kept rows go to a Moments and a Quantiles sketch, the usual first signal of embedding drift.
"""

from __future__ import annotations

import numpy as np

from watchkeeper.sketch import Moments, Quantiles
from watchkeeper.sketch.base import BlobReader, BlobWriter


class VectorSummary:
    """
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(1000, 4))
    >>> v = VectorSummary(4).update(x[:300]).merge(VectorSummary(4).update(x[300:]))
    >>> bool(np.allclose(v.mean, x.mean(axis=0)) and np.allclose(v.variance(), x.var(axis=0)))
    True
    """

    def __init__(self, dim: int) -> None:
        if dim < 1:
            raise ValueError(f"vector dimension must be at least 1, got {dim}")
        self.dim = dim
        self.n = 0
        self.nonfinite = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.min = np.full(dim, np.inf)
        self.max = np.full(dim, -np.inf)
        self.norms = Moments()
        self.norm_quantiles = Quantiles()

    def update(self, x: np.ndarray) -> VectorSummary:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of dimension {self.dim}, got an array of shape {x.shape}")
        ok = np.isfinite(x).all(axis=1)
        if not ok.all():
            self.nonfinite += int((~ok).sum())
            x = x[ok]
        if not len(x):
            return self
        mean = x.mean(axis=0)
        dev = x - mean
        self._combine(len(x), mean, np.einsum("ij,ij->j", dev, dev), x.min(axis=0), x.max(axis=0))
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        self.norms.update(norms)
        self.norm_quantiles.update(norms)
        return self

    def _combine(
        self, n_b: int, mean_b: np.ndarray, m2_b: np.ndarray, lo: np.ndarray, hi: np.ndarray
    ) -> None:
        n_a = self.n
        n = n_a + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta * delta * (n_a * n_b / n)
        self.n = n
        self.min = np.minimum(self.min, lo)
        self.max = np.maximum(self.max, hi)

    def merge(self, other: VectorSummary) -> VectorSummary:
        if other.dim != self.dim:
            raise ValueError(f"vectors of dimension {self.dim} and {other.dim} cannot be merged")
        out = VectorSummary.decode(BlobReader(self.encode(), 0, "VectorSummary"))
        out.nonfinite += other.nonfinite
        if other.n:
            out._combine(other.n, other.mean, other.m2, other.min, other.max)
        out.norms = self.norms.merge(other.norms)
        out.norm_quantiles = self.norm_quantiles.merge(other.norm_quantiles)
        return out

    def variance(self, ddof: int = 0) -> np.ndarray:
        return self.m2 / (self.n - ddof) if self.n > ddof else np.full(self.dim, np.nan)

    def encode(self) -> bytes:
        out = BlobWriter()
        out.pack("IQQ", self.dim, self.n, self.nonfinite)
        for arr in (self.mean, self.m2, self.min, self.max):
            out.array(arr, "f8")
        for sketch in (self.norms, self.norm_quantiles):
            blob = sketch.to_bytes()
            out.pack("I", len(blob))
            out.raw(blob)
        return out.getvalue()

    @classmethod
    def decode(cls, blob: BlobReader) -> VectorSummary:
        dim, n, nonfinite = blob.unpack("IQQ")
        v = cls(dim)
        v.n, v.nonfinite = n, nonfinite
        v.mean, v.m2, v.min, v.max = (blob.array("f8") for _ in range(4))
        if any(a.shape != (dim,) for a in (v.mean, v.m2, v.min, v.max)):
            raise ValueError("VectorSummary blob is corrupt: array lengths differ from the dimension")
        v.norms = Moments.from_bytes(blob.take(blob.one("I")))
        v.norm_quantiles = Quantiles.from_bytes(blob.take(blob.one("I")))
        return v
