from __future__ import annotations

import math

import numpy as np
import pytest

from watchkeeper.sketch import LatencySketch

QS = np.array([0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0])


def max_relative_error(s: LatencySketch, x: np.ndarray) -> float:
    exact = np.quantile(x, QS, method="lower")
    return float(np.max(np.abs(s.quantile(QS) - exact) / exact))


@pytest.mark.parametrize(
    "name",
    ["lognormal", "log-uniform 1e-3..1e4 ms"],
)
def test_quantiles_within_alpha_relative_error(name: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.lognormal(3.0, 1.2, 200_000) if name == "lognormal" else 10 ** rng.uniform(-3, 4, 200_000)
    s = LatencySketch(alpha=0.01)
    for chunk in np.array_split(x, 7):
        s = s + LatencySketch(alpha=0.01).update(chunk)
    assert s.count == x.size
    assert max_relative_error(s, x) <= 0.01 * (1 + 1e-9)
    assert math.isclose(s.sum, float(x.sum()), rel_tol=1e-12)
    assert (s.min, s.max) == (float(x.min()), float(x.max()))
    assert s.num_buckets <= s.max_buckets


def test_merge_is_exact_in_bucket_counts() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.lognormal(1, 1, 10_000), rng.lognormal(4, 0.5, 3_000)
    merged = LatencySketch().update(a) + LatencySketch().update(b)
    both = LatencySketch().update(np.concatenate([a, b]))
    np.testing.assert_array_equal(merged.quantile(QS), both.quantile(QS))
    assert merged.prometheus_buckets() == both.prometheus_buckets()


def test_prometheus_buckets_with_own_edges_are_exact() -> None:
    x = np.random.default_rng(3).lognormal(2, 1, 50_000)
    x[:100] = 0.0
    pairs = LatencySketch().update(x).prometheus_buckets()
    les = np.array([le for le, _ in pairs[:-1]])
    counts = np.array([c for _, c in pairs[:-1]])
    exact = np.searchsorted(np.sort(x), les, side="right")
    np.testing.assert_array_equal(counts, exact)
    assert pairs[0] == (1e-9, 100)
    assert pairs[-1] == (math.inf, x.size)
    assert np.all(np.diff(les) > 0) and np.all(np.diff(counts) > 0)


def test_prometheus_buckets_with_explicit_bounds_within_one_bucket() -> None:
    x = np.random.default_rng(4).lognormal(3, 1.5, 100_000)
    s = LatencySketch().update(x)
    bounds = [0.005, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 1e6]
    pairs = s.prometheus_buckets(bounds)
    sorted_x = np.sort(x)
    for le, count in pairs[:-1]:
        exact = int(np.searchsorted(sorted_x, le, side="right"))
        # The error is at most the number of values in the one bucket straddling the bound.
        straddling = int(np.searchsorted(sorted_x, le * s.gamma) - np.searchsorted(sorted_x, le / s.gamma))
        assert abs(count - exact) <= straddling
    assert [le for le, _ in pairs] == [*bounds, math.inf]
    assert pairs[-1] == (math.inf, x.size) and pairs[-2][1] == x.size


def test_collapsing_keeps_upper_quantiles_and_count() -> None:
    x = 10 ** np.random.default_rng(5).uniform(-6, 6, 100_000)
    s = LatencySketch(max_buckets=300)
    for chunk in np.array_split(x, 5):
        s.update(chunk)
    assert len(s.prometheus_buckets()) <= 300 + 1
    assert s.count == x.size
    # gamma^300 ≈ 4e2: the top ~2.6 decades keep the guarantee, i.e. q >= ~0.79 here.
    for q in (0.8, 0.9, 0.99, 0.999):
        exact = np.quantile(x, q, method="lower")
        assert abs(s.quantile(q) - exact) <= 0.01 * exact * (1 + 1e-9)
    assert s.quantile(0.1) > np.quantile(x, 0.1)  # collapsed: over-estimated, as documented
    # Collapsing is still exactly mergeable.
    halves = LatencySketch(max_buckets=300).update(x[:50_000]) + LatencySketch(max_buckets=300).update(
        x[50_000:]
    )
    assert halves.prometheus_buckets() == s.prometheus_buckets()


def test_invalid_values_are_counted_apart() -> None:
    s = LatencySketch().update(np.array([1.0, -2.0, np.inf, -np.inf, np.nan, 0.0, 3.0]))
    assert (s.count, s.invalid, s.zero_count, s.sum, s.min, s.max) == (3, 3, 1, 4.0, 0.0, 3.0)
    assert s.quantile(0.0) == 0.0


def test_empty_and_all_nan() -> None:
    for s in (LatencySketch(), LatencySketch().update(np.full(5, np.nan))):
        assert (s.count, s.sum, s.invalid) == (0, 0.0, 0)
        assert math.isnan(s.quantile(0.5)) and math.isnan(s.min)
        assert s.prometheus_buckets() == [(math.inf, 0)]
        assert s.prometheus_buckets([1.0]) == [(1.0, 0), (math.inf, 0)]


def test_constant_latency() -> None:
    s = LatencySketch().update(np.full(1000, 12.5))
    assert np.all(s.quantile(QS) == 12.5)  # clamped to [min, max]


def test_incompatible_parameters_raise_naming_both() -> None:
    with pytest.raises(ValueError, match=r"\(0.01, 2048, 1e-09\).*\(0.02, 2048, 1e-09\)"):
        LatencySketch(alpha=0.01).merge(LatencySketch(alpha=0.02))
