"""Hellinger distance between the binned or per-category distributions.

With reference shares ``p_i`` and current shares ``q_i`` (each summing to 1)::

    H(p, q) = sqrt( 1 - sum_i sqrt(p_i * q_i) ) = (1 / sqrt 2) * || sqrt(p) - sqrt(q) ||_2

normalised to ``[0, 1]``: 0 for equal distributions, 1 for disjoint ones (the ``1 / sqrt 2`` convention;
some texts omit it and get ``[0, sqrt 2]``). ``sum sqrt(p q)`` is the Bhattacharyya coefficient. No smoothing
is needed (``epsilon = 0`` by default). Rounding can make ``1 - BC`` a hair below 0; it is clipped to 0.

Reference: E. Hellinger, "Neue Begründung der Theorie quadratischer Formen von unendlichvielen
Veränderlichen", Journal für die reine und angewandte Mathematik 136, 1909; L. Le Cam, G. L. Yang,
"Asymptotics in Statistics", Springer, 2000 (ch. 3).

On profiles (numeric): stated bound ``|on_profiles - exact| <= 0.02`` (k >= 350; measured on normal, shifted,
rescaled, lognormal, mixture, Poisson, zero-inflated and Pareto columns of 2e5-1e6 rows: largest error
0.017, near zero distance the square root turns share noise of about 0.003 into errors near 0.01).
Categorical profiles are exact up to 1024 categories.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from watchkeeper.drift.base import CATEGORICAL, NUMERIC
from watchkeeper.drift.binning import BinnedDistance

__all__ = ["Hellinger"]


class Hellinger(BinnedDistance, name="hellinger", kinds=(NUMERIC, CATEGORICAL)):
    """Hellinger distance ``sqrt(1 - sum sqrt(p q))``, in [0, 1].

    >>> s = Hellinger().exact(np.array(["a", "b"]), np.array(["a", "a"]))
    >>> bool(s.statistic == np.sqrt(1 - np.sqrt(0.5)))
    True
    >>> rng = np.random.default_rng(0)
    >>> round(Hellinger().exact(rng.normal(0, 1, 50_000), rng.normal(0.5, 1, 50_000)).statistic, 3)
    0.17
    """

    numeric_bound: ClassVar[float] = 0.02

    @staticmethod
    def distance(p: np.ndarray, q: np.ndarray) -> float:
        return float(np.sqrt(max(1.0 - float(np.sum(np.sqrt(p * q))), 0.0)))
