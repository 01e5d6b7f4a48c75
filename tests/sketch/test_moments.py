from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.sketch import Moments


def rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_mean_and_variance_match_numpy_on_well_conditioned_data() -> None:
    x = np.random.default_rng(0).normal(3.0, 2.0, 200_000)
    m = Moments()
    for chunk in np.array_split(x, 37):
        m = m + Moments().update(chunk)
    assert m.n == x.size
    assert rel(m.mean, float(x.mean())) < 1e-12
    assert rel(m.variance(), float(x.var())) < 1e-12
    assert rel(m.variance(ddof=1), float(x.var(ddof=1))) < 1e-12
    assert (m.min, m.max) == (float(x.min()), float(x.max()))


def test_large_offset_where_naive_sum_of_squares_fails() -> None:
    rng = np.random.default_rng(1)
    x = 1e9 + rng.normal(0.0, 1e-3, 100_000)
    exact_var = float(np.var(x - 1e9))  # the offset removed exactly first
    naive = float(np.mean(x * x) - np.mean(x) ** 2)
    assert rel(naive, exact_var) > 0.5  # the textbook formula loses every digit here
    m = Moments()
    for chunk in np.array_split(x, 10):
        m = m + Moments().update(chunk)
    assert rel(m.variance(), exact_var) < 1e-6
    assert rel(m.mean, float(np.mean(x))) < 1e-15


def test_skewed_data_and_uneven_merges() -> None:
    x = np.random.default_rng(2).lognormal(0.0, 2.0, 100_000)
    a = Moments().update(x[:3])
    b = Moments().update(x[3:])
    m = a + b
    assert rel(m.mean, float(x.mean())) < 1e-12
    assert rel(m.std(ddof=1), float(x.std(ddof=1))) < 1e-12
    assert rel(m.sum, float(x.sum())) < 1e-12


def test_commutative_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    a, b = Moments().update(rng.normal(5, 1, 1000)), Moments().update(rng.normal(-2, 3, 77))
    assert (a + b).to_bytes() == (b + a).to_bytes()


def test_non_finite_values_are_ignored() -> None:
    m = Moments().update(np.array([1.0, np.nan, np.inf, 3.0, -np.inf]))
    assert (m.n, m.mean, m.variance(), m.min, m.max) == (2, 2.0, 1.0, 1.0, 3.0)


@pytest.mark.parametrize("values", [[], [np.nan, np.nan]], ids=["empty", "all-nan"])
def test_empty_and_all_nan(values: list[float]) -> None:
    m = Moments().update(np.array(values, dtype=np.float64))
    assert m.n == 0
    assert all(math.isnan(v) for v in (m.mean, m.variance(), m.std(), m.min, m.max))
    assert m.sum == 0.0


def test_constant_column_has_zero_variance() -> None:
    m = Moments().update(np.full(1000, 7.25)) + Moments().update(np.full(10, 7.25))
    assert (m.mean, m.variance(), m.min, m.max) == (7.25, 0.0, 7.25, 7.25)
    assert math.isnan(Moments().update([1.0]).variance(ddof=1))
