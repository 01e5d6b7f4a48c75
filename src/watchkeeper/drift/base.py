"""The interface every drift method implements, and the registry that finds them.

A method compares a reference sample with a current one, for one column, in two ways:

* ``exact(ref, cur)`` on raw values (1-D numpy arrays, missing values already removed): the number a
  textbook or scipy computes, agreeing with scipy to 1e-9 where scipy has the method;
* ``on_profiles(ref, cur)`` on two :class:`~watchkeeper.profile.ColumnProfile` objects: an estimate from the
  sketches, with the error bound stated in the method's docstring and returned in ``DriftStatistic.bound``.

Numeric methods that compare distributions over bins (PSI, KL, Jensen-Shannon, Hellinger, total variation)
use the same bins on both paths: ``n_bins`` bins between the reference's quantiles (deciles by default), so
each bin holds about the same share of the reference; on profiles the bin edges come from the reference's
KLL sketch and the shares from both sketches' CDFs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

NUMERIC = "numeric"
CATEGORICAL = "categorical"
BOOLEAN = "boolean"


@dataclass(frozen=True, slots=True)
class DriftStatistic:
    method: str
    statistic: float
    p_value: float | None = None  # None for distances that are not tests
    bound: float | None = None  # for estimates from profiles: |estimate - exact| <= bound (stated, tested)
    details: dict[str, Any] | None = None  # e.g. the bins and the two distributions, for the report


class DriftMethod(ABC):
    """Base class; subclasses register by name: ``class KS(DriftMethod, name="ks", kinds=("numeric",))``."""

    name: ClassVar[str]
    kinds: ClassVar[tuple[str, ...]]
    is_test: ClassVar[bool] = False  # True when the statistic comes with a p-value
    _registry: ClassVar[dict[str, type[DriftMethod]]] = {}

    def __init_subclass__(cls, *, name: str | None = None, kinds: tuple[str, ...] = (), **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if name is None:
            return
        cls.name = name
        cls.kinds = kinds
        DriftMethod._registry[name] = cls

    @staticmethod
    def registry() -> dict[str, type[DriftMethod]]:
        return dict(sorted(DriftMethod._registry.items()))

    @abstractmethod
    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        """``kind`` says how to read the values where their dtype cannot (integer codes of categories are
        categorical); None reads it from the dtype. A method of one kind ignores it."""

    @abstractmethod
    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        """``kind`` as for :meth:`exact`; None reads it from the profiles."""
