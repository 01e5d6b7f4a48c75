"""Wasserstein-1 (earth mover's) distance, in units of the reference's standard deviation (numeric).

For samples with empirical CDFs ``F``, ``G`` and quantile functions ``F^-1``, ``G^-1``::

    W1 = integral |F(x) - G(x)| dx = integral_0^1 |F^-1(u) - G^-1(u)| du
    statistic = W1 / std(ref)          (population standard deviation, ddof = 0)

so a shift of the mean by ``d`` standard deviations scores ``d``, whatever the column's unit. ``W1`` equals
``scipy.stats.wasserstein_distance(ref, cur)`` (tested to 1e-9 relative); here it is computed from the
quantile form: with both samples sorted, ``F^-1`` and ``G^-1`` are step functions with steps at ``i / n`` and
``j / m``, merged exactly in integer units of ``1 / (n m)``, which avoids scipy's binary searches (about 15x
faster at 1e6 rows). Non-finite values are left out, as profiles leave them out.

A constant reference (``std = 0``) has no scale: the statistic is 0 when ``W1 = 0`` and ``inf`` otherwise
(any movement away from a constant is unbounded in its units); ``details["distance"]`` always holds the raw
``W1`` and ``details["ref_std"]`` the scale.

Reference: L. N. Vaserstein, "Markov processes over denumerable products of spaces describing large systems
of automata", Problems of Information Transmission 5(3), 1969; S. S. Vallender, "Calculation of the
Wasserstein distance between probability distributions on the line", Theory of Probability and its
Applications 18(4), 1973 (the quantile form).

On profiles: ``W1`` is split as ``P + N`` with ``P = integral (G^-1 - F^-1)_+ du`` and ``N = integral
(F^-1 - G^-1)_+ du``, while ``P - N = mean(cur) - mean(ref) = delta`` is known exactly from the profiles'
``Moments``. Both parts are integrated by the midpoint rule on ``u = (j - 1/2) / 8192`` with the KLL
sketches' quantiles, and the smaller part only is taken from the sketches: ``W1 = |delta| + 2 min(P, N)``.
This matters because a sketch's quantile at ``u`` is the exact quantile at a rank off by up to its rank
error, and ``|a + noise|`` overstates ``|a|`` wherever the two quantile functions are close; integrating the
plain ``|F^-1 - G^-1|`` gave errors up to 0.035 standard deviations on lognormal and Pareto columns of 1e6
rows, the split form is exact for stochastically ordered samples (shifts, rescalings of positive values)
up to the sign noise, and is never below the exact lower bound ``|delta|``. The result is divided by the
reference ``Moments`` standard deviation (exact).

Stated bound, for k >= 350 sketches, in reference standard deviations::

    |on_profiles - exact| <= 0.02 + 0.05 x W + 0.002 x z

where ``z = max(|max - mean_ref|, |min - mean_ref|) / std_ref`` over both columns' exact extremes. The ``z``
term is the tail's share of the error: a sketch's extreme quantiles are coarse, and how far the extremes
reach in standard deviations says how much that costs (``z`` is about 5 for a normal column of 1e6 rows, 50
for a lognormal one, 100 or more for power-law tails such as Pareto with tail index 3, and it grows without
bound when the variance is infinite, where a standard-deviation scale means little anyway). Tested on
normal, shifted, rescaled, lognormal, mixture and Pareto columns of 1e5-1e6 rows; ``bound`` reports it with
the estimate in place of the exact ``W``. Over 408 measured comparisons the error stayed below 0.06 except
on Pareto columns (``z`` about 100), where a rare comparison of 1e5 rows was off by 0.14: on power-law tails
the estimate from profiles is a rough one, and the bound says so. Near the default decision's minimum
effect (0.05) the estimate is coarse: compare raw samples when the effect is borderline.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from watchkeeper.drift.base import NUMERIC, DriftMethod, DriftStatistic
from watchkeeper.drift.binning import finite_sample, quantile_sketch, sketch_bound, sorted_copy

__all__ = ["Wasserstein", "wasserstein_1"]

GRID = 8192
BOUND_ABSOLUTE = 0.02
BOUND_RELATIVE = 0.05
BOUND_TAIL = 0.002


def wasserstein_1(ref: np.ndarray, cur: np.ndarray) -> float:
    """``W1`` of two finite 1-D samples (``scipy.stats.wasserstein_distance`` without weights)."""
    s1, s2 = sorted_copy(ref), sorted_copy(cur)
    n1, n2 = s1.size, s2.size
    if n1 == n2:
        return float(np.mean(np.abs(s1 - s2)))
    # Breakpoints of both quantile functions, in integer units of 1/(n1 n2): i*n2 and j*n1.
    u = np.sort(
        np.concatenate((np.arange(1, n1 + 1, dtype=np.int64) * n2, np.arange(1, n2 + 1, dtype=np.int64) * n1))
    )
    widths = np.diff(u, prepend=0).astype(np.float64)
    # On (u_{k-1}, u_k] the quantile of sample 1 is s1[ceil(u_k / n2) - 1] = s1[(u_k - 1) // n2].
    gaps = np.abs(s1[(u - 1) // n2] - s2[(u - 1) // n1])
    return float(np.dot(widths, gaps) / (float(n1) * float(n2)))


def _scaled(w1: float, std: float) -> float:
    if std > 0.0:
        return w1 / std
    return 0.0 if w1 == 0.0 else math.inf


class Wasserstein(DriftMethod, name="wasserstein", kinds=(NUMERIC,)):
    """Wasserstein-1 distance divided by the reference's standard deviation (ddof=0).

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(10, 2, 20_000), rng.normal(11, 2, 30_000)
    >>> round(Wasserstein().exact(ref, cur).statistic, 2)   # a shift by half a standard deviation
    0.5
    >>> Wasserstein().exact(np.array([3.0, 3.0]), np.array([3.0, 4.0])).statistic
    inf
    """

    is_test: ClassVar[bool] = False

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        r, c = finite_sample(ref, "reference"), finite_sample(cur, "current")
        w1 = wasserstein_1(r, c)
        std = float(np.std(r))
        details = {"distance": w1, "ref_std": std, "n_ref": r.size, "n_cur": c.size}
        return DriftStatistic(self.name, _scaled(w1, std), None, None, details)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        rq, cq = quantile_sketch(ref, "reference"), quantile_sketch(cur, "current")
        u = (np.arange(GRID) + 0.5) / GRID
        gaps = cq.quantile(u) - rq.quantile(u)
        above, below = float(np.mean(np.maximum(gaps, 0.0))), float(np.mean(np.maximum(-gaps, 0.0)))
        delta = cur.numeric.moments.mean - ref.numeric.moments.mean
        w1 = abs(delta) + 2.0 * min(above, below)
        std = ref.numeric.moments.std(ddof=0)
        stat = _scaled(w1, std)
        rm, cm = ref.numeric.moments, cur.numeric.moments
        reach = max(abs(m - rm.mean) for m in (rm.min, rm.max, cm.min, cm.max))
        z = reach / std if std > 0.0 else math.inf
        bound = sketch_bound(BOUND_ABSOLUTE + BOUND_RELATIVE * stat + BOUND_TAIL * z, rq, cq)
        details = {"distance": w1, "ref_std": std, "n_ref": rq.n, "n_cur": cq.n}
        return DriftStatistic(self.name, stat, None, bound, details)
