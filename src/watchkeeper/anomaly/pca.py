"""PCA reconstruction error: how far a row lies from the linear subspace where normal rows live.

Features are standardised with the training mean and standard deviation (a constant feature gets 1), the
principal axes ``W`` (k x d, orthonormal rows) of the standardised training data are kept, and a row's score
is its squared prediction error (the Q statistic of J. E. Jackson & G. S. Mudholkar, "Control procedures for
residuals associated with principal component analysis", Technometrics 21(3), 1979)::

    z = (x - mean) / std - c          (c: the mean of the standardised training rows, 0 up to rounding)
    score = || z - z W^T W ||^2       (the sum over features of the squared residual)

``n_components`` is an int k, or a share of variance in (0, 1): the fewest components whose cumulative
explained variance exceeds it (scikit-learn's rule). A classic baseline on multivariate KPI benchmarks such
as SMD: cheap, and it catches rows that break the usual correlations between features even when every
feature on its own is in range.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> t = rng.normal(size=(1000, 1))
>>> det = PCADetector(n_components=1).fit(np.hstack([t, 2 * t + 0.01 * rng.normal(size=(1000, 1))]))
>>> s = det.score(np.array([[1.0, 2.0], [1.0, -2.0]]))  # the second row breaks the correlation
>>> bool(s[1] > 100 * s[0])
True
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from watchkeeper.anomaly.iforest import _is_float, _is_int
from watchkeeper.anomaly.pickled import PickledDetector


class PCADetector(PickledDetector):
    """Squared reconstruction error in standardised space from the top ``n_components`` principal axes."""

    name = "pca"

    def __init__(
        self, n_components: int | float = 0.95, *, svd_solver: str = "auto", random_state: int | None = 0
    ):
        where = "PCADetector"
        if not (
            (_is_int(n_components) and n_components >= 1)
            or (_is_float(n_components) and 0 < n_components < 1)
        ):
            raise ValueError(
                f"{where}: n_components must be an int >= 1 or a share of variance in (0, 1), "
                f"got {n_components!r}"
            )
        if svd_solver not in ("auto", "full", "covariance_eigh", "arpack", "randomized"):
            raise ValueError(
                f"{where}: svd_solver must be 'auto', 'full', 'covariance_eigh', 'arpack' or 'randomized', "
                f"got {svd_solver!r}"
            )
        if random_state is not None and not _is_int(random_state):
            raise ValueError(f"{where}: random_state must be an int or None, got {random_state!r}")
        self.n_components = n_components
        self.svd_solver = svd_solver
        self.random_state = random_state
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None
        self.center_: np.ndarray | None = None
        self.components_: np.ndarray | None = None

    @property
    def n_components_(self) -> int:
        """Components kept by the fit."""
        if self.components_ is None:
            raise ValueError(f"{self.name}: the detector is not fitted; call fit() first")
        return int(self.components_.shape[0])

    def params(self) -> dict[str, Any]:
        return {
            "n_components": self.n_components,
            "svd_solver": self.svd_solver,
            "random_state": self.random_state,
        }

    def _fit(self, X: np.ndarray, *, run: Any = None) -> None:
        from sklearn.decomposition import PCA

        n, d = X.shape
        if _is_int(self.n_components) and self.n_components >= min(n, d):
            raise ValueError(
                f"{self.name}.fit: n_components={self.n_components} must be below both the number of "
                f"features and of rows (got {d} features, {n} rows): keeping every direction leaves no "
                "residual to score"
            )
        mean = X.mean(axis=0)
        std = X.std(axis=0)
        scale = np.where(std > 0, std, 1.0)
        pca = PCA(n_components=self.n_components, svd_solver=self.svd_solver, random_state=self.random_state)
        pca.fit((X - mean) / scale)
        if pca.n_components_ >= d:
            raise ValueError(
                f"{self.name}.fit: n_components={self.n_components} keeps all {d} components, which leaves "
                f"no residual to score; ask for a smaller share of variance or an int below {d}"
            )
        self.mean_, self.scale_ = mean, scale
        self.center_ = np.asarray(pca.mean_, dtype=np.float64)
        self.components_ = np.asarray(pca.components_, dtype=np.float64)

    def _score(self, X: np.ndarray) -> np.ndarray:
        z = (X - self.mean_) / self.scale_ - self.center_
        resid = z - (z @ self.components_.T) @ self.components_
        return np.einsum("ij,ij->i", resid, resid)

    # -- saving ----------------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Settings, columns, threshold and the fitted standardisation and axes (numpy arrays)."""
        return {
            **self.common_state(),
            "mean": self.mean_,
            "scale": self.scale_,
            "center": self.center_,
            "components": self.components_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(**state["params"])
        det.restore_common(state)
        det.mean_, det.scale_ = state["mean"], state["scale"]
        det.center_, det.components_ = state["center"], state["components"]
        return det
