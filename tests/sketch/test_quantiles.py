from __future__ import annotations

import math

import numpy as np
import pytest
from datasketches import kll_doubles_sketch

from watchkeeper.sketch import Quantiles
from watchkeeper.sketch.quantiles import DEFAULT_K

N = 1_000_000
QS = np.linspace(0.001, 0.999, 999)


def distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    return {
        "uniform": rng.uniform(0, 1, N),
        "lognormal": rng.lognormal(0, 2.5, N),
        "pareto": rng.pareto(0.8, N),
        "constant": np.full(N, 3.5),
        "two-point": np.where(rng.random(N) < 0.3, -1.0, 1.0),
    }


def rank_error_of_quantiles(sorted_x: np.ndarray, estimates: np.ndarray, qs: np.ndarray) -> float:
    """Distance of each q from the exact rank interval [#(x < v), #(x <= v)] / n of its estimate v."""
    lo = np.searchsorted(sorted_x, estimates, side="left") / sorted_x.size
    hi = np.searchsorted(sorted_x, estimates, side="right") / sorted_x.size
    return float(np.max(np.maximum(lo - qs, 0) + np.maximum(qs - hi, 0)))


def test_default_k_meets_one_percent_per_the_library() -> None:
    assert kll_doubles_sketch.get_normalized_rank_error(DEFAULT_K, False) <= 0.0078
    assert kll_doubles_sketch.get_normalized_rank_error(DEFAULT_K, True) <= 0.01
    assert Quantiles().rank_error == kll_doubles_sketch.get_normalized_rank_error(DEFAULT_K, False)


@pytest.mark.parametrize("name", ["uniform", "lognormal", "pareto", "constant", "two-point"])
def test_rank_error_against_exact_ranks_on_1e6_values(name: str) -> None:
    x = distributions()[name]
    # Fed in 10 batches on 4 "replicas", then merged: the way profiles are built.
    parts = [Quantiles() for _ in range(4)]
    for i, chunk in enumerate(np.array_split(x, 10)):
        parts[i % 4].update(chunk)
    q = parts[0] + parts[1] + parts[2] + parts[3]
    assert q.n == N
    sorted_x = np.sort(x)
    assert rank_error_of_quantiles(sorted_x, q.quantile(QS), QS) <= 0.01
    probes = sorted_x[(QS * (N - 1)).astype(int)]
    exact_cdf = np.searchsorted(sorted_x, probes, side="right") / N
    assert np.max(np.abs(q.cdf(probes) - exact_cdf)) <= 0.01
    assert np.max(np.abs(q.rank(probes) - exact_cdf)) <= 0.01
    assert (q.min, q.max) == (sorted_x[0], sorted_x[-1])
    assert q.quantile(0.0) == sorted_x[0] and q.quantile(1.0) == sorted_x[-1]


def test_constant_and_two_point_answers_are_exact_values() -> None:
    q = Quantiles().update(np.full(10_000, 3.5))
    assert np.all(q.quantile(QS) == 3.5)
    x = np.repeat([-1.0, 1.0], [3000, 7000])
    q = Quantiles().update(x)
    assert q.quantile(0.2) == -1.0 and q.quantile(0.5) == 1.0
    assert abs(q.rank(-1.0) - 0.3) <= q.rank_error and q.rank(1.0) == 1.0


def test_small_stream_is_exact_like_inverted_cdf() -> None:
    x = np.random.default_rng(0).normal(size=200)
    q = Quantiles().update(x)
    np.testing.assert_array_equal(q.quantile(QS), np.quantile(x, QS, method="inverted_cdf"))


def test_empty_and_all_nan_sketch() -> None:
    for q in (Quantiles(), Quantiles().update(np.full(100, np.nan))):
        assert q.n == 0
        assert math.isnan(q.quantile(0.5)) and math.isnan(q.rank(1.0)) and math.isnan(q.min)
        assert np.all(np.isnan(q.quantile([0.1, 0.9])))
        assert np.all(np.isnan(q.cdf([0.0, 1.0])))


def test_infinities_are_ranked_values() -> None:
    q = Quantiles().update(np.array([1.0, 2.0, np.inf, -np.inf, np.nan]))
    assert q.n == 4 and q.min == -np.inf and q.max == np.inf
    assert q.quantile(0.5) == 1.0


def test_cdf_accepts_unsorted_duplicate_points() -> None:
    q = Quantiles().update(np.arange(10.0))
    np.testing.assert_allclose(q.cdf([5.0, 0.0, 5.0, 100.0]), [0.6, 0.1, 0.6, 1.0])


def test_bad_quantile_raises() -> None:
    with pytest.raises(ValueError, match="within"):
        Quantiles().update([1.0]).quantile(1.5)


def test_update_accepts_a_read_only_array():
    x = np.arange(1000, dtype=np.float64)
    x.flags.writeable = False
    assert Quantiles().update(x).quantile(0.5) == pytest.approx(500, abs=10)
