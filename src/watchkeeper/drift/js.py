"""Jensen-Shannon distance between the binned or per-category distributions (natural log).

With reference shares ``p_i``, current shares ``q_i`` and their average ``m = (p + q) / 2``::

    JS(p, q) = sqrt( KL(p || m) / 2 + KL(q || m) / 2 )

the square root of the Jensen-Shannon divergence, a metric, in ``[0, sqrt(ln 2)]`` (about 0.8326). Terms
with ``p_i = 0`` (or ``q_i = 0``) are 0, so no smoothing is needed; by default none is applied
(``epsilon = 0``) and the result equals ``scipy.spatial.distance.jensenshannon(p, q)`` (base e) on the shares
of :mod:`watchkeeper.drift.binning`.

Reference: J. Lin, "Divergence measures based on the Shannon entropy", IEEE Transactions on Information
Theory 37(1), 1991; D. M. Endres, J. E. Schindelin, "A new metric for probability distributions", IEEE
Transactions on Information Theory 49(7), 2003 (the square root is a metric).

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

__all__ = ["JensenShannon"]


class JensenShannon(BinnedDistance, name="js", kinds=(NUMERIC, CATEGORICAL)):
    """Jensen-Shannon distance (base e), in [0, sqrt(ln 2)].

    >>> rng = np.random.default_rng(0)
    >>> ref, cur = rng.normal(0, 1, 50_000), rng.normal(0.5, 1, 50_000)
    >>> round(JensenShannon().exact(ref, cur).statistic, 3)
    0.17
    >>> bool(JensenShannon().exact(np.array(["a"]), np.array(["b"])).statistic == np.sqrt(np.log(2)))
    True
    """

    numeric_bound: ClassVar[float] = 0.02

    @staticmethod
    def distance(p: np.ndarray, q: np.ndarray) -> float:
        from scipy.special import rel_entr  # here, not at import: keeps `import watchkeeper` light

        m = (p + q) / 2.0
        js = (np.sum(rel_entr(p, m)) + np.sum(rel_entr(q, m))) / 2.0
        return float(np.sqrt(max(js, 0.0)))
