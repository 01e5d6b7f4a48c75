"""Two-sample Kolmogorov-Smirnov test (numeric).

With empirical CDFs ``F_ref`` and ``F_cur`` of samples of sizes ``n`` and ``m``::

    D = sup_x | F_ref(x) - F_cur(x) |

The p-value follows ``scipy.stats.ks_2samp(ref, cur)`` (``method="auto"``, two-sided) exactly: when
``max(n, m) <= 10_000`` scipy itself is called (its exact path counts lattice paths, Hodges 1958); above
that, the statistic is computed here (a linear merge of the two sorted samples instead of scipy's binary
searches: 1.7-9x faster at 1e6 rows, depending on the data) and the p-value is scipy's asymptotic choice,
``scipy.stats.kstwo.sf(D, round(n m / (n + m)))``, the distribution of the one-sample statistic at the
effective size. Statistic and p-value agree with scipy to 1e-9 (tested). Non-finite values are left out, as
profiles leave them out.

References: N. Smirnov, "Table for estimating the goodness of fit of empirical distributions", Annals of
Mathematical Statistics 19(2), 1948; J. L. Hodges, "The significance probability of the Smirnov two-sample
test", Arkiv för Matematik 3, 1958; R. Simard, P. L'Ecuyer, "Computing the two-sided Kolmogorov-Smirnov
distribution", Journal of Statistical Software 39(11), 2011.

On profiles: both KLL sketches' CDFs are evaluated at the union of a dense grid of their quantiles (4097 per
sketch, which reaches nearly every retained value), and ``D`` is the largest difference. Its error is at most
the sum of the two sketches' CDF errors; DataSketches states 0.77% per query at k=350 (99% confidence).
Measured over 408 comparisons (normal, shifted, rescaled, lognormal, mixture, Poisson, zero-inflated and
Pareto columns of 2e5 and 1e6 rows, fresh sketches each time): 99% of errors below 0.008, 407 within 0.01,
the largest 0.0113. KLL compaction is randomised (and not seedable), so the error is a random variable: the
stated and returned bound is ``|D_profiles - D_exact| <= 0.015`` for k >= 350 sketches (scaled up for
smaller ones), and ``D`` is within 0.01 in all but a fraction of a percent of comparisons.
The p-value uses the sketches' ``n`` and ``m`` and inherits the error of ``D`` (p-values of large samples are
very sensitive to ``D``, so read it as an order of magnitude). Below an effective size of 10,000 it is the
same ``kstwo.sf``; above, Stephens' modified statistic with the limiting distribution,
``kstwobign.sf((sqrt(en) + 0.12 + 0.11 / sqrt(en)) * D)`` (M. A. Stephens, "Use of the Kolmogorov-Smirnov,
Cramér-von Mises and related statistics without extensive tables", JRSS B 32(1), 1970), because
``kstwo.sf`` in the tail costs time that grows with ``en`` (130 ms at 1e5, 1.4 s at 1e6 per call, measured:
the monitors' largest cost on windows merged from many replicas) while the approximation is within 0.6%
of it, relative, for ``sqrt(en) * D`` up to 2 (p down to about 7e-4) and within 4% up to 4 (p about 2e-14)
at ``en`` >= 1e4 (tested), far below the error ``D`` brings from the sketches.
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from watchkeeper.drift.base import NUMERIC, DriftMethod, DriftStatistic
from watchkeeper.drift.binning import finite_sample, quantile_sketch, sketch_bound, sorted_copy

__all__ = ["KS"]

EXACT_MAX_N = 10_000  # scipy's method="auto" is exact up to this size
GRID = 4097
PROFILE_BOUND = 0.015


def _asymptotic_p(d: float, n1: int, n2: int) -> float:
    # As scipy's ks_2samp(method="asymp", alternative="two-sided").
    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s

    return float(np.clip(stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))


STEPHENS_MIN_EN = 10_000.0


def _profile_p(d: float, n1: int, n2: int) -> float:
    """The p-value of profiles' ``D``: ``kstwo.sf`` up to an effective size of 1e4, Stephens' approximation
    above (see the module's docstring)."""
    en = n1 * n2 / (n1 + n2) if n1 and n2 else 0.0
    if en < STEPHENS_MIN_EN:
        return _asymptotic_p(d, n1, n2)
    from scipy import stats

    root = np.sqrt(en)
    return float(np.clip(stats.kstwobign.sf((root + 0.12 + 0.11 / root) * d), 0.0, 1.0))


def ks_statistic(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, int]:
    """``(D, location, sign)`` of two finite samples, the same floats scipy's ``ks_2samp`` computes.

    Both samples are sorted and merged with a stable argsort of their concatenation (timsort merges the two
    runs in linear time); the counts of each sample at or below every distinct value are cumulative sums.
    """
    s1, s2 = sorted_copy(ref), sorted_copy(cur)
    n1, n2 = s1.size, s2.size
    both = np.concatenate((s1, s2))
    order = np.argsort(both, kind="stable")
    values = both[order]
    c1 = np.cumsum(order < n1)
    # Evaluate the CDFs only at the last of each run of equal values (both CDFs are right-continuous).
    last = np.empty(values.size, dtype=bool)
    last[-1] = True
    np.not_equal(values[1:], values[:-1], out=last[:-1])
    if last.all():
        idx = None
        k1 = c1
        k2 = np.arange(1, values.size + 1) - c1
    else:
        idx = np.flatnonzero(last)
        k1 = c1[idx]
        k2 = idx + 1 - k1
    diffs = k1 / n1 - k2 / n2
    imax, imin = int(np.argmax(diffs)), int(np.argmin(diffs))
    max_s = float(diffs[imax])
    min_s = float(np.clip(-diffs[imin], 0, 1))
    pos = imin if min_s > max_s else imax
    where = float(values[pos if idx is None else idx[pos]])
    return (min_s, where, -1) if min_s > max_s else (max_s, where, 1)


class KS(DriftMethod, name="ks", kinds=(NUMERIC,)):
    """Two-sample Kolmogorov-Smirnov: ``D = sup |F_ref - F_cur|`` and its two-sided p-value, as scipy.

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.05, 1, 20_000)
    >>> s = KS().exact(ref, cur)
    >>> from scipy import stats
    >>> res = stats.ks_2samp(ref, cur)
    >>> bool(abs(s.statistic - res.statistic) < 1e-12 and abs(s.p_value - res.pvalue) < 1e-12)
    True
    >>> round(s.statistic, 4), bool(s.p_value < 0.01)
    (0.0249, True)
    """

    is_test: ClassVar[bool] = True

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        r, c = finite_sample(ref, "reference"), finite_sample(cur, "current")
        n1, n2 = r.size, c.size
        if max(n1, n2) <= EXACT_MAX_N:
            from scipy import stats  # here, not at import: scipy.stats costs ~0.5 s

            with warnings.catch_warnings():
                # scipy warns when its exact computation falls back to the asymptotic one; the p-value it
                # returns is still scipy's, and a warning per column would flood a user's log
                warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
                res = stats.ks_2samp(r, c)
            d, p = float(res.statistic), float(res.pvalue)
            where, sign = float(res.statistic_location), int(res.statistic_sign)
            method = "scipy"
        else:
            d, where, sign = ks_statistic(r, c)
            p, method = _asymptotic_p(d, n1, n2), "asymp"
        details = {"n_ref": n1, "n_cur": n2, "location": where, "sign": sign, "p_method": method}
        return DriftStatistic(self.name, d, p, None, details)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        rq, cq = quantile_sketch(ref, "reference"), quantile_sketch(cur, "current")
        grid = np.linspace(0.0, 1.0, GRID)
        points = np.unique(np.concatenate((rq.quantile(grid), cq.quantile(grid))))
        diffs = rq.cdf(points) - cq.cdf(points)
        pos = int(np.argmax(np.abs(diffs)))
        d = float(np.clip(abs(diffs[pos]), 0.0, 1.0))
        details = {
            "n_ref": rq.n,
            "n_cur": cq.n,
            "location": float(points[pos]),
            "sign": 1 if diffs[pos] >= 0 else -1,
            "p_method": "asymp",
        }
        bound = sketch_bound(PROFILE_BOUND, rq, cq, proportional=True)
        return DriftStatistic(self.name, d, _profile_p(d, rq.n, cq.n), bound, details)
