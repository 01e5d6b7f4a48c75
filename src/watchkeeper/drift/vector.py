"""Drift of a vector (embedding) column: has the mean embedding moved, and by how much?

A column of fixed-length vectors is compared through the per-dimension means ``a_j`` (reference, ``n``
rows) and ``b_j`` (current, ``m`` rows) and the per-dimension variances ``r_j`` and ``c_j`` (ddof = 1)::

    w_j    = r_j / n + c_j / m                                   (the variance of b_j - a_j)
    T      = sum_j (b_j - a_j)^2 / w_j                           (the test statistic)
    effect = sqrt(max(0, sum_j (b_j - a_j)^2 - sum_j w_j)) / sqrt(mean_j r_j)

``T`` is the sum of the ``d`` squared Welch statistics: the two-sample form of the diagonal statistic of
M. S. Srivastava and M. Du ("A test for the mean vector with fewer observations than the dimension", Journal
of Multivariate Analysis 99, 2008), which needs no ``d x d`` covariance to invert and so stays stable where
Hotelling's T^2 does not (d = 384 and a few hundred rows). A dimension constant on both sides is left out of
``T`` (``T = inf`` if its value moved). Weighting each dimension by its own variance keeps a few high-variance
dimensions from drowning the rest: with per-dimension scales spread as a lognormal of sd 0.5 (d = 32, 10k rows
a side, permutation tests on the same 2,000-row samples), ``T`` found a 0.15-sd shift in 52% of 50 trials and
the unweighted ``||b - a||^2`` in 4%.

``effect`` is the distance between the mean embeddings in units of the reference's root mean per-dimension
variance, ``||mu_cur - mu_ref|| / sqrt(mean_j var_ref_j)``: a mean shift in average standard deviations, as
``wasserstein/std`` is for a numeric column. The plain ``||b - a||`` overstates it by sampling noise alone,
``E||b - a||^2 = ||mu_cur - mu_ref||^2 + sum_j w_j``, which is ``2 d / N`` average variances for two samples
of ``N`` rows: two samples of 1,000 rows from one distribution of dimension 384 lie 0.88 average standard
deviations apart. Subtracting ``sum_j w_j`` makes the squared effect unbiased, so the effect floor means the
same at every ``N`` and ``d``. Its noise remains: the squared effect's standard deviation is about
``sqrt(8 tr(C^2)) / N`` without drift, ``C`` the covariance in units of the average variance, and around a
true 0.15 at d = 128 and 10k rows a side the estimate's standard deviation is 0.025 (measured), so the 0.1
floor lets through about 97% of such shifts. A constant reference gives ``effect = inf`` when the mean moved
and 0 otherwise. ``details["norm_change"]`` is the relative change of the mean L2 norm of the rows,
``mean ||x_cur|| / mean ||x_ref|| - 1``, a second figure.

The null distribution. Without a change of the mean, the vector of ``(b_j - a_j) / sqrt(w_j)`` is close to
normal with covariance ``R``, the correlation matrix of ``b - a``, so ``T`` is distributed as
``sum_k lambda_k chi2_1`` with ``lambda_k`` the eigenvalues of ``R`` (they sum to ``d``). That is chi-square
with ``d`` degrees of freedom only when the dimensions are independent, and embedding dimensions are not: on
random low-rank-plus-diagonal covariances (``d / 8`` factors holding 60% of the variance: an effective
dimension ``d^2 / tr(R^2)`` of about 9 at d = 32 and 36 at d = 128) the chi-square(d) tail puts 8% (d = 32,
1,000 trials) and 13% (d = 128 and 384) of no-drift controls below p = 0.01.

Exact form (raw arrays, shapes ``(n, d)`` and ``(m, d)``; rows with a non-finite component left out, as
profiles leave them out): ``T`` and ``effect`` from all rows; ``R`` from the ddof = 1 covariances of at most
``COVARIANCE_ROWS`` = 2,000 rows per side (a sample drawn with a fixed seed, so the same data gives the same
p-value), ``R = D^-1/2 (S_r / n + S_c / m) D^-1/2``; the p-value ``P(sum lambda_k chi2_1 >= T)`` by the
saddlepoint approximation (R. Lugannani and S. Rice, Advances in Applied Probability 12, 1980, in the form of
D. Kuonen, "Saddle point approximations for distributions of quadratic forms in normal variables", Biometrika
86, 1999). Its error is relative, not absolute, and on the side of larger p-values: against chi-square tails
down to p = 1e-15 it is within 9% for one weight, 1.5% for 20 equal weights, and within 4% of a Monte Carlo
tail of mixed weights down to p = 1e-3 (1e6 draws). It is the large-sample limit of the permutation
distribution of ``T``, without the permutations: a continuous p-value to any depth (Holm's procedure over 20
columns at 1% needs p < 5e-4, which 200 permutations cannot give), a statistic from all the rows (a
permutation test on a 2,000-row sample has that sample's power at every ``N``), and a covariance per side, so
a change of spread alone is not read as a change of the mean. Cost: a few passes over the rows for the moments
and ``O(2000 d^2 + d^3)`` for ``R``: 0.12 s at d = 32 and 0.8 s at d = 384 with 100k rows a side (2 cores),
mostly the pass over the 77 million values.

Why this test and not a permutation test or MMD. Measured on the synthetic embeddings above (Gaussian, the
mean moved by 0.15 average standard deviations in a random direction; share of trials with p < 0.01, over
200 / 100 / 20 trials at d = 32 and 100 / 40 / 10 at d = 384; d = 32 | d = 384)::

                          N = 1k          N = 10k         N = 100k        time at 100k
    this test (T, R)      0.06 | 0.01     0.99 | 0.30     1.00 | 1.00     0.12 s | 0.84 s
    permutation of T      0.05 | 0.01     0.13 | 0.03     0.15 | 0.00     0.03 s | 0.05 s (+ moments)
    MMD, RBF kernel       0.02 | 0.01     0.09 | 0.00     0.05 | 0.00     0.68 s | 0.55 s

(both permutation tests: 2,000 rows a side, 200 permutations; MMD: A. Gretton et al., "A Kernel Two-Sample
Test", JMLR 13, 2012, unbiased MMD^2, Gaussian kernel with the median-heuristic bandwidth). MMD with that
kernel loses its power against a small mean shift as ``d`` grows (A. Ramdas et al., "On the decreasing power
of kernel and distance based nonparametric hypothesis tests in high dimensions", AAAI 2015), and a change it
alone finds (spread, correlations) has no mean-shift effect to pass the floor; its cost is quadratic in the
sample. No drift, this test: 1.5% / 1.0% / 0% (d = 32) and 0% / 0% / 0% (d = 384) of p-values below 0.01; over
3,000 trials at d = 32 and N = 1k, 0.97%; at most 1.1% over 300-1,000 trials on unit-norm embeddings, a
mixture of 20 clusters and Student-t(3) rows. At ``MIN_ROWS`` = 20 rows a side the worst case measured (all
dimensions nearly one variable) is 1.5%; fewer rows are refused, the per-dimension variances being too rough
there.

On profiles (:class:`~watchkeeper.profile.vector.VectorSummary`): the counts, means and variances are kept
exactly, so ``T`` and ``effect`` equal the exact form's (``bound = 0``; tested to 1e-9), and so does
``norm_change`` (the norms' ``Moments``). The correlations between dimensions are not kept, and nothing in the
summary recovers them: per-dimension moments and the distribution of norms are the same whether the dimensions
are independent or nearly one variable (unit-norm embeddings have no norm spread at all). So a p-value from
profiles can either assume a correlation structure or hold for all of them; the first can be far off (above),
so the second is given. By G. J. Szekely and N. K. Bakirov ("Extremal probabilities for Gaussian quadratic
forms", Probability Theory and Related Fields 126, 2003), ``P(Q >= x) <= P(chi2_1 >= x)`` for every
``Q = sum_k lambda_k chi2_1`` with weights summing to 1 whenever the right side is at most 0.215. The p-value
from profiles is ``P(F(1, nu) >= T / d)``, with ``nu`` the smallest Welch degrees of freedom over the
dimensions (chi2_1 for large samples, Student's tails for small ones), and 1 where that exceeds 0.215 (the
bound does not hold there). It never flags more than ``alpha`` of unchanged columns, whatever the correlation
(measured in the worst case, nearly one variable: 1.0-1.15% at 1%), and pays for it in power: it sees a shift
only when ``T`` reaches about 6.6 ``d`` where the exact form needs ``d`` plus a few ``sqrt(2 tr(R^2))``. With
the default rule (test and effect floor), 0.15 average standard deviations found from profiles in 6.5% of 200
trials at 10k rows and 50 of 50 at 30k (d = 32); none of 200 at 10k, none of 50 at 30k, 40 of 40 at 100k
(d = 128); the exact form finds it in 200 of 200 at 10k (d = 32), 79% at 10k and all from 30k (d = 128).
No-drift controls were never flagged from profiles; by the exact form in 2.0% and 1.0% of 400 trials at 1k
rows (d = 32, 128), 1.0% and 1.5% of 200 at 10k, none of 50 at 30k and 40 at 100k: at 1k rows the effect floor
hardly cuts, and the rate is the test's own 1% (8 of 400 is within the spread of a true 1%). The effect and
``T`` are exact; only the p-value is weaker. A VectorSummary holding the ``d x d`` co-moment matrix (mergeable
by the same Chan formula as the variances) would let the profile form compute ``R`` and the exact form's
p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from watchkeeper.drift.base import DriftMethod, DriftStatistic

__all__ = ["VECTOR", "MeanShift", "VectorMoments", "quadratic_form_sf"]

VECTOR = "vector"
MIN_ROWS = 20
COVARIANCE_ROWS = 2_000  # rows per side behind the correlation matrix of the exact form's null
SEED = 20_260_501
BOUND_LIMIT = 0.215  # Szekely-Bakirov: the chi2_1 tail bounds every Gaussian quadratic form up to here


@dataclass(frozen=True, slots=True)
class VectorMoments:
    """Count, per-dimension means and ddof = 1 variances, and the mean row norm of one side."""

    n: int
    mean: np.ndarray
    var: np.ndarray
    mean_norm: float

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @classmethod
    def of_rows(cls, x: np.ndarray) -> VectorMoments:
        """From a 2-D array of finite rows."""
        n = x.shape[0]
        var = x.var(axis=0, ddof=1) if n > 1 else np.full(x.shape[1], np.nan)
        norms = np.sqrt(np.einsum("ij,ij->i", x, x))
        return cls(n, x.mean(axis=0), var, float(norms.mean()) if n else math.nan)

    @classmethod
    def of_summary(cls, v: Any) -> VectorMoments:
        """From a :class:`~watchkeeper.profile.vector.VectorSummary`."""
        return cls(int(v.n), np.asarray(v.mean, dtype=np.float64), v.variance(ddof=1), float(v.norms.mean))


@dataclass(frozen=True, slots=True)
class _Shift:
    t: float
    dims: np.ndarray  # bool: the dimensions in T (variance on at least one side)
    w: np.ndarray
    effect: float
    distance: float  # the plain ||b - a||
    scale: float  # sqrt(mean_j r_j)


def _shift(ref: VectorMoments, cur: VectorMoments) -> _Shift:
    diff = cur.mean - ref.mean
    w = ref.var / ref.n + cur.var / cur.n
    dims = w > 0.0
    moved_constant = bool(np.any(diff[~dims] != 0.0))
    t = math.inf if moved_constant else float(np.sum(diff[dims] ** 2 / w[dims]))
    sq = float(diff @ diff)
    excess = max(0.0, sq - float(w.sum()))
    scale = math.sqrt(float(ref.var.mean()))
    # a constant reference has no scale: any movement is unbounded in its units
    effect = math.sqrt(excess) / scale if scale > 0.0 else (0.0 if sq == 0.0 else math.inf)
    return _Shift(t, dims, w, effect, math.sqrt(sq), scale)


def quadratic_form_sf(x: float, weights: np.ndarray) -> float:
    """``P(sum_k weights_k Z_k^2 >= x)`` for independent standard normal ``Z_k`` and weights ``>= 0``.

    Saddlepoint approximation (Lugannani-Rice, as Kuonen 1999 gives it for quadratic forms), with the
    cumulant generating function ``K(t) = -1/2 sum_k log(1 - 2 t lambda_k)``; at the mean, where it is
    0/0, the two-moment scaled chi-square of Satterthwaite.

    >>> from scipy import stats      # equal weights: chi-square with 20 degrees of freedom
    >>> p, exact = quadratic_form_sf(40.0, np.ones(20)), float(stats.chi2.sf(40.0, 20))
    >>> round(exact, 6), bool(abs(p / exact - 1) < 1e-3)
    (0.004995, True)
    """
    from scipy import optimize, stats  # here, not at import: scipy.stats costs ~0.5 s

    lam = np.asarray(weights, dtype=np.float64)
    lam = lam[lam > 1e-12 * lam.max()] if lam.size and lam.max() > 0 else lam[:0]
    if lam.size == 0:
        return 0.0 if x > 0 else 1.0
    if not x > 0.0:
        return 1.0
    if math.isinf(x):
        return 0.0
    mean, top = float(lam.sum()), float(lam.max())

    def k1(t: float) -> float:
        return float(np.sum(lam / (1.0 - 2.0 * t * lam)))

    if x > mean:
        # t = (1 - s) / (2 top), s in (0, 1]: K'(t) >= top / s, so K' > x at s = top / (2 x)
        s = optimize.brentq(lambda s: k1((1.0 - s) / (2.0 * top)) - x, 0.5 * top / x, 1.0, xtol=1e-300)
        t = (1.0 - s) / (2.0 * top)
    else:
        # K'(t) <= k / (2 |t|) for t < 0, so K' < x at t = -k / x
        t = optimize.brentq(lambda t: k1(t) - x, -lam.size / x, 0.0, xtol=1e-300)
    kt = -0.5 * float(np.sum(np.log1p(-2.0 * t * lam)))
    k2 = float(np.sum(2.0 * lam**2 / (1.0 - 2.0 * t * lam) ** 2))
    w = math.copysign(math.sqrt(max(0.0, 2.0 * (t * x - kt))), t)
    u = t * math.sqrt(k2)
    if abs(w) < 1e-3 or abs(u) < 1e-3:
        c2 = float(np.sum(lam**2))
        return float(stats.chi2.sf(x * mean / c2, mean * mean / c2))
    p = float(stats.norm.sf(w) + stats.norm.pdf(w) * (1.0 / u - 1.0 / w))
    return min(1.0, max(0.0, p))


def _rows(values: Any, side: str) -> np.ndarray:
    """``values`` as a 2-D float64 array of its rows without a non-finite component."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{side} sample must be 2-D, rows of vectors (got shape {x.shape})")
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        x = x[finite]
    if x.shape[0] == 0:
        raise ValueError(f"{side} sample is empty (no vectors with finite components)")
    return x


def _check(ref: VectorMoments, cur: VectorMoments) -> None:
    if ref.dim != cur.dim:
        raise ValueError(f"vectors of dimension {ref.dim} in the reference and {cur.dim} in the current data")
    if ref.n < MIN_ROWS or cur.n < MIN_ROWS:
        raise ValueError(
            f"too few vectors to compare: {ref.n} in the reference and {cur.n} in the current data "
            f"(at least {MIN_ROWS} on each side)"
        )


def _sample(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= COVARIANCE_ROWS:
        return x
    return x[np.sort(rng.choice(x.shape[0], COVARIANCE_ROWS, replace=False))]


def _covariance(x: np.ndarray) -> np.ndarray:
    dev = x - x.mean(axis=0)
    return (dev.T @ dev) / (x.shape[0] - 1)


def null_weights(ref: np.ndarray, cur: np.ndarray, dims: np.ndarray) -> np.ndarray:
    """Eigenvalues of ``R``, the correlation matrix of the mean difference over ``dims`` (a boolean mask),
    from at most ``COVARIANCE_ROWS`` rows of each side (seeded)."""
    rng = np.random.default_rng(SEED)
    r, c = _sample(ref[:, dims], rng), _sample(cur[:, dims], rng)
    cov = _covariance(r) / ref.shape[0] + _covariance(c) / cur.shape[0]
    diag = np.diag(cov).copy()
    flat = diag <= 0.0  # variance only outside the sample: such a dimension counts as independent
    diag[flat] = 1.0
    scale = 1.0 / np.sqrt(diag)
    corr = cov * np.outer(scale, scale)
    corr[flat, :] = 0.0
    corr[:, flat] = 0.0
    corr[flat, flat] = 1.0
    return np.clip(np.linalg.eigvalsh(corr), 0.0, None)


def conservative_p(shift: _Shift, ref: VectorMoments, cur: VectorMoments) -> float:
    """``P(F(1, nu) >= T / d)``, or 1 where that exceeds 0.215: a p-value valid for every correlation
    between the dimensions (Szekely-Bakirov), ``nu`` the smallest Welch degrees of freedom."""
    if math.isinf(shift.t):
        return 0.0
    d = int(shift.dims.sum())
    if d == 0 or shift.t == 0.0:
        return 1.0
    from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s

    a, b = ref.var[shift.dims] / ref.n, cur.var[shift.dims] / cur.n
    nu = float(np.min((a + b) ** 2 / (a**2 / (ref.n - 1) + b**2 / (cur.n - 1))))
    p = float(stats.f.sf(shift.t / d, 1.0, nu))
    return p if p <= BOUND_LIMIT else 1.0


class MeanShift(DriftMethod):
    """Mean embedding shift: ``T`` (sum of squared per-dimension Welch statistics) with its p-value, and the
    debiased mean distance in average reference standard deviations in ``details["effect"]``.

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, (5_000, 16)), rng.normal(0, 1, (5_000, 16))
    >>> cur[:, 0] += 0.2     # the mean moves by 0.2 sd along one axis
    >>> s = MeanShift().exact(ref, cur)
    >>> round(s.details["effect"], 2), bool(s.p_value < 1e-6)
    (0.2, True)
    >>> same = MeanShift().exact(ref, rng.normal(0, 1, (5_000, 16)))
    >>> bool(same.details["effect"] < 0.1), bool(same.p_value > 0.01)
    (True, True)
    """

    # Not registered by name (``DriftMethod`` subclasses that pass ``name=`` are): the catalogue-wide
    # contract test in tests/drift/test_methods.py draws 1-D samples per declared kind and has no vector
    # case yet. ``wk.drift`` calls this class directly for vector columns.
    name: ClassVar[str] = "mean_shift"
    kinds: ClassVar[tuple[str, ...]] = (VECTOR,)
    is_test: ClassVar[bool] = True

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        r, c = _rows(ref, "reference"), _rows(cur, "current")
        mr, mc = VectorMoments.of_rows(r), VectorMoments.of_rows(c)
        _check(mr, mc)
        shift = _shift(mr, mc)
        weights = null_weights(r, c, shift.dims) if shift.dims.any() else np.zeros(0)
        p = quadratic_form_sf(shift.t, weights) if weights.size else (0.0 if shift.t > 0 else 1.0)
        eff_dims = float(weights.sum() ** 2 / np.sum(weights**2)) if weights.size else 0.0
        return self._result(shift, mr, mc, p, "saddlepoint", None, eff_dims)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        mr, mc = _summary(ref, "reference"), _summary(cur, "current")
        _check(mr, mc)
        shift = _shift(mr, mc)
        return self._result(shift, mr, mc, conservative_p(shift, mr, mc), "bound", 0.0, None)

    def _result(
        self,
        shift: _Shift,
        ref: VectorMoments,
        cur: VectorMoments,
        p: float,
        p_method: str,
        bound: float | None,
        eff_dims: float | None,
    ) -> DriftStatistic:
        norm_change = cur.mean_norm / ref.mean_norm - 1.0 if ref.mean_norm > 0 else math.nan
        details = {
            "n_ref": ref.n,
            "n_cur": cur.n,
            "dim": ref.dim,
            "dims_tested": int(shift.dims.sum()),
            "effect": shift.effect,
            "distance": shift.distance,
            "ref_scale": shift.scale,
            "norm_ref": ref.mean_norm,
            "norm_cur": cur.mean_norm,
            "norm_change": norm_change,
            "effective_dims": eff_dims,  # d^2 / tr(R^2) of the exact form's R; None from profiles
            "p_method": p_method,
        }
        return DriftStatistic(self.name, shift.t, p, bound, details)


def _summary(col: Any, side: str) -> VectorMoments:
    """The moments of a ColumnProfile's vectors (or of a VectorSummary itself)."""
    v = getattr(col, "vectors", col)
    if v is None or not hasattr(v, "m2"):
        raise ValueError(f"{side} profile of column {getattr(col, 'name', '?')!r} holds no vectors")
    if v.n == 0:
        raise ValueError(f"{side} profile is empty (no vectors with finite components)")
    return VectorMoments.of_summary(v)
