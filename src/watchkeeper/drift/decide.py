"""The default drift decision, right at any sample size.

Plain p-values flag meaningless shifts once samples are large (every real dataset differs a little from its
reference, and at a million rows a test detects a difference of 0.01 standard deviations), while fixed
distance thresholds are noisy when samples are small (two samples of 500 rows from one distribution often
differ by a PSI of 0.1). The default therefore asks two questions and flags a column only when both say yes:

1. Is there a change at all? A test of "no change", at family-wise error ``alpha`` (default 1%) over all the
   columns compared, by Holm's step-down procedure (S. Holm, "A simple sequentially rejective multiple test
   procedure", Scandinavian Journal of Statistics 6, 1979). Numeric columns use the smaller p-value of the
   two-sample Kolmogorov-Smirnov test and Welch's t-test, doubled (Bonferroni over the two), so that a shift
   of the mean is found with the power of the t-test and a change of shape by KS; categorical columns use
   the chi-square test of homogeneity, booleans the two-proportion z-test.
2. Is the change big enough to matter? The effect size must reach a minimum: the Wasserstein distance
   divided by the reference's standard deviation at least ``numeric_min_effect`` (0.05; a shift of the mean
   by d standard deviations has this effect d), or a category's share moving by at least
   ``categorical_min_effect`` (0.025, i.e. 2.5 percentage points).

The first question controls false alarms when samples are small; the second when they are large. The
dataset drifts when at least ``drift_share`` (default half) of the compared columns drift.

In one paragraph, for a user to apply by hand: *a column has drifted when its test's p-value, multiplied
as Holm's procedure says (the smallest p-value by the number of columns, the next by one fewer, ...), is
below 0.01, and the change is at least 0.05 reference standard deviations of Wasserstein distance (numeric)
or 2.5 percentage points in some category's share (categorical, boolean). The dataset has drifted when
half of its columns have.*
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Correction = Literal["holm", "bh", "bonferroni", "none"]
CORRECTIONS = ("holm", "bh", "bonferroni", "none")


@dataclass(frozen=True, slots=True)
class DriftPolicy:
    """The decision rule's settings; the defaults are the ones the tests and benchmarks hold to."""

    alpha: float = 0.01
    correction: Correction = "holm"
    numeric_min_effect: float = 0.05
    categorical_min_effect: float = 0.025
    drift_share: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.correction not in CORRECTIONS:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {self.correction!r}")
        if self.numeric_min_effect < 0 or self.categorical_min_effect < 0:
            raise ValueError("minimum effects must not be negative")
        if not 0.0 < self.drift_share <= 1.0:
            raise ValueError(f"drift_share must be in (0, 1], got {self.drift_share}")


def adjust_p_values(p: np.ndarray, method: Correction) -> np.ndarray:
    """Multiplicity-adjusted p-values: reject hypothesis i at level alpha when ``adjusted[i] < alpha``.

    ``holm``: Holm's step-down (family-wise error); ``bh``: Benjamini-Hochberg step-up (false discovery rate;
    Y. Benjamini and Y. Hochberg, JRSS B 57, 1995); ``bonferroni``: p times the number of tests.
    NaN entries (columns without a test) are left NaN and do not count towards the number of tests.

    >>> adjust_p_values(np.array([0.01, 0.04, 0.03, 0.005]), "holm").round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    >>> adjust_p_values(np.array([0.01, 0.04, 0.03, 0.005]), "bh").round(4).tolist()
    [0.02, 0.04, 0.04, 0.02]
    """
    p = np.asarray(p, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return out
    q = p[ok]
    if method == "none":
        adj = q.copy()
    elif method == "bonferroni":
        adj = np.minimum(1.0, q * m)
    else:
        order = np.argsort(q, kind="stable")
        ranked = q[order]
        if method == "holm":
            stepped = np.maximum.accumulate(ranked * (m - np.arange(m)))
        elif method == "bh":
            stepped = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
        else:
            raise ValueError(f"correction must be one of {', '.join(CORRECTIONS)}, got {method!r}")
        adj = np.empty(m)
        adj[order] = np.minimum(1.0, stepped)
    out[ok] = adj
    return out


def combine_two(p1: float, p2: float) -> float:
    """Bonferroni over two tests of the same hypothesis: ``min(1, 2 * min(p1, p2))``."""
    return min(1.0, 2.0 * min(p1, p2))
