"""Isolation Forest detector.

Liu, Ting & Zhou, "Isolation Forest", ICDM 2008. Each tree splits a random subsample of ``psi`` rows on a
random feature at a value drawn uniformly between that feature's minimum and maximum in the node, until every
row stands alone (or a depth limit). Anomalies are few and different, so they are isolated in few splits. With
``h(x)`` the path length of ``x`` in one tree (plus ``c(size)`` for the rows left together in a leaf),

    s(x, psi) = 2 ** (-E[h(x)] / c(psi)),    c(psi) = 2 H(psi - 1) - 2 (psi - 1) / psi,

``H(i)`` the harmonic number (about ``ln i + 0.5772156649``) and ``c(psi)`` the average path length of an
unsuccessful search in a binary search tree of ``psi`` keys. ``s`` near 1 is anomalous; well below 0.5 is
normal. scikit-learn's ``IsolationForest.score_samples`` returns ``-s``; this detector's score is ``s``.
Thresholds come from :meth:`Detector.calibrate`, so scikit-learn's ``contamination`` is not used.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> det = IsolationForestDetector(n_estimators=50).fit(rng.normal(size=(500, 3)))
>>> s = det.score(np.array([[0.0, 0.0, 0.0], [6.0, -6.0, 6.0]]))
>>> bool(s[1] > 0.6 > s[0])
True

Saved as a pickle of its state (:mod:`watchkeeper.anomaly.pickled`; load only files you trust).
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np

from watchkeeper.anomaly.pickled import PickledDetector


class IsolationForestDetector(PickledDetector):
    """Isolation Forest (scikit-learn's ``IsolationForest``) scored as Liu et al.'s ``s(x, psi)`` in (0, 1].

    ``max_samples`` is the subsample per tree (``"auto"``: min(256, rows)), ``max_features`` the features
    each tree sees (an int, or a share in (0, 1]). ``standardize`` scales features by their training mean
    and standard deviation first; the forest itself is invariant to rescaling a feature (splits are uniform
    between the node's min and max), so this only helps with features of extreme magnitude.
    """

    name = "isolation_forest"

    def __init__(
        self,
        n_estimators: int = 200,
        *,
        max_samples: int | float | str = "auto",
        max_features: int | float = 1.0,
        standardize: bool = False,
        random_state: int | None = 0,
        n_jobs: int | None = None,
    ) -> None:
        where = "IsolationForestDetector"
        if (
            isinstance(n_estimators, bool)
            or not isinstance(n_estimators, int | np.integer)
            or n_estimators < 1
        ):
            raise ValueError(f"{where}: n_estimators must be an int >= 1, got {n_estimators!r}")
        if not (
            max_samples == "auto"
            or (_is_int(max_samples) and max_samples >= 1)
            or (_is_float(max_samples) and 0 < max_samples <= 1)
        ):
            raise ValueError(
                f"{where}: max_samples must be 'auto', an int >= 1 or a share in (0, 1], got {max_samples!r}"
            )
        if not (
            (_is_int(max_features) and max_features >= 1)
            or (_is_float(max_features) and 0 < max_features <= 1)
        ):
            raise ValueError(
                f"{where}: max_features must be an int >= 1 or a share in (0, 1], got {max_features!r}"
            )
        if random_state is not None and not _is_int(random_state):
            raise ValueError(f"{where}: random_state must be an int or None, got {random_state!r}")
        if n_jobs is not None and not _is_int(n_jobs):
            raise ValueError(f"{where}: n_jobs must be an int or None, got {n_jobs!r}")
        self.n_estimators = int(n_estimators)
        self.max_samples = max_samples
        self.max_features = max_features
        self.standardize = bool(standardize)
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.model_: Any = None
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def params(self) -> dict[str, Any]:
        return {
            "n_estimators": self.n_estimators,
            "max_samples": self.max_samples,
            "max_features": self.max_features,
            "standardize": self.standardize,
            "random_state": self.random_state,
            "n_jobs": self.n_jobs,
        }

    def _fit(self, X: np.ndarray, *, run: Any = None) -> None:
        from sklearn.ensemble import IsolationForest

        if _is_int(self.max_features) and self.max_features > X.shape[1]:
            raise ValueError(
                f"{self.name}.fit: max_features={self.max_features} is more than the {X.shape[1]} features"
            )
        if self.standardize:
            self.mean_ = X.mean(axis=0)
            std = X.std(axis=0)
            self.scale_ = np.where(std > 0, std, 1.0)
        else:
            self.mean_ = self.scale_ = None
        self.model_ = IsolationForest(
            n_estimators=self.n_estimators,
            max_samples=self.max_samples,
            max_features=self.max_features,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
        ).fit(self._scaled(X))

    def _score(self, X: np.ndarray) -> np.ndarray:
        return -self.model_.score_samples(self._scaled(X))

    def _scaled(self, X: np.ndarray) -> np.ndarray:
        if self.mean_ is None or self.scale_ is None:
            return X
        return (X - self.mean_) / self.scale_

    # -- saving ----------------------------------------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Everything :meth:`from_state` needs: settings, fitted model, columns and threshold."""
        return {
            **self.common_state(),
            "model": self.model_,
            "mean": self.mean_,
            "scale": self.scale_,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        det = cls(**state["params"])
        det.restore_common(state)
        det.model_ = state["model"]
        det.mean_ = state["mean"]
        det.scale_ = state["scale"]
        return det


def _is_int(v: Any) -> bool:
    return isinstance(v, int | np.integer) and not isinstance(v, bool)


def _is_float(v: Any) -> bool:
    return isinstance(v, float | np.floating)
