"""The context-distance scorer: causality, streaming == batch, hand-checked pieces of the math."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from watchkeeper.anomaly.context import ContextDistanceScorer, ContextScale, context_distance, tail_score


def _series(n: int = 900, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    x = 50 + 10 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 1, n)
    x[600:606] += 40  # a burst
    return x


def _small() -> ContextDistanceScorer:
    return ContextDistanceScorer(
        scales=(ContextScale(3, 2, None), ContextScale(8, 4, 200)),
        window=300,
        neighbours=3,
        rest=20,
        alarm=0.45,
    )


def test_prefix_gives_the_first_part_of_the_scores():
    x = _series()
    full = _small().score_series(x)
    for cut in (1, 37, 400, 610):
        np.testing.assert_array_equal(_small().score_series(x[:cut]), full[:cut])


def test_update_equals_score_series_and_scores_lie_in_unit_interval():
    x = _series()
    sc = _small()
    streamed = np.array([sc.update(v) for v in x])
    batch = sc.score_series(x)
    np.testing.assert_array_equal(streamed, batch)
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    # the burst at 600 is the highest score after the warm-up and the rest period silences what follows
    assert 600 <= int(np.argmax(batch[100:])) + 100 <= 605
    hit = int(np.argmax(batch[100:])) + 100
    assert np.all(batch[hit + 1 : hit + 21] == 0.0)


def test_scores_are_scale_and_offset_free():
    x = _series()
    a = _small().score_series(x)
    b = _small().score_series(1e7 * x - 3e6)
    np.testing.assert_allclose(a, b, atol=1e-9)


def test_constant_series_scores_z_zero_and_its_first_change_scores_one():
    x = np.full(300, 7.0)
    s = _small().score_series(x)
    # scale m=3 has its 8 (k + 5) candidate contexts ending at rows 2..9 at row 13, and after 30 distances
    # (rows 13..42) scores from row 43 on: z = 0 there
    assert np.all(s[:43] == 0.0)
    np.testing.assert_allclose(s[43:], 1 - 0.5**0.1, rtol=1e-12)
    x[250] = 8.0
    s = _small().score_series(x)
    assert s[250] == 1.0  # a distance above an all-zero past: sd = 0, z = +inf


def test_nan_scores_zero_and_leaves_the_state_untouched():
    x = _series(400)
    with_gaps = np.insert(x, [50, 200, 200], np.nan)
    s = _small().score_series(with_gaps)
    nan_rows = np.isnan(with_gaps)
    assert np.all(s[nan_rows] == 0.0)
    np.testing.assert_array_equal(s[~nan_rows], _small().score_series(x))
    sc = _small()
    assert sc.update(float("inf")) == 0.0 and sc._seen == 0


def test_context_distance_by_hand():
    history = np.array([0.0, 1.0, 2.0, 10.0])
    # contexts (0,1), (1,2), (2,10) against (1,1): distances 1, 1, sqrt(82)
    assert context_distance(history, np.array([1.0, 1.0]), 1) == pytest.approx(1.0)
    assert context_distance(history, np.array([1.0, 1.0]), 3) == pytest.approx((2 + math.sqrt(82)) / 3)
    # neighbours beyond the number of contexts: all of them
    assert context_distance(history, np.array([1.0, 1.0]), 9) == pytest.approx((2 + math.sqrt(82)) / 3)


def test_tail_score_against_scipy():
    for z in (-2.0, 0.0, 1.5, 3.47, 12.0):
        assert tail_score(z) == pytest.approx(1 - norm.sf(z) ** 0.1, rel=1e-12)
    assert tail_score(0.0) == pytest.approx(1 - 0.5**0.1)
    assert tail_score(math.inf) == 1.0 and tail_score(-math.inf) == 0.0
    assert 0.999 < tail_score(20.0) < 1.0  # no rounding to 1 where 1 - Phi(z) already does


def test_first_score_matches_a_hand_computation():
    # one scale m=1, no smoothing, all history; z of the first scored row computed with numpy
    sc = ContextDistanceScorer(
        scales=(ContextScale(1, 1, None),), window=100, neighbours=1, min_history=5, rest=0
    )
    x = np.array([0.0, 1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, 0.0, 5.0, 0.0, 9.0, 1.5])
    s = sc.score_series(x)
    # rows 7.. have >= 6 earlier non-overlapping candidates (j <= i - 2); the distance is to the nearest value
    dist = [min(abs(x[i] - x[j]) for j in range(0, i - 1)) for i in range(7, len(x))]
    past = np.array(dist[:5])
    z = (dist[5] - past.mean()) / past.std()
    assert s[12] == pytest.approx(1 - norm.sf(z) ** 0.1)
    assert np.all(s[:12] == 0.0)


def test_params_and_bad_settings():
    p = ContextDistanceScorer().params()
    assert p["window"] == 5000 and p["scales"][1] == {"length": 20, "smoothing": 10, "memory": 2000}
    with pytest.raises(ValueError, match="window: expected an integer >= 2, got 0"):
        ContextDistanceScorer(window=0)
    with pytest.raises(ValueError, match=r"ContextScale\.length"):
        ContextScale(0)
    with pytest.raises(ValueError, match="alarm"):
        ContextDistanceScorer(alarm=1.5)
    with pytest.raises(ValueError, match="values: expected a 1-D series"):
        ContextDistanceScorer().score_series(np.zeros((3, 2)))


def test_log_tail_is_the_candidate_score_before_the_rest_period():
    x = _series()
    assert _small().log_tail(0.0) == 0.0  # a fresh scorer: no scale scores yet
    sc = _small()
    log_q = np.array([sc.log_tail(v) for v in x])
    no_rest = ContextDistanceScorer(
        scales=(ContextScale(3, 2, None), ContextScale(8, 4, 200)), window=300, neighbours=3, rest=0
    ).score_series(x)
    np.testing.assert_allclose(-np.expm1(log_q / 10), no_rest, rtol=1e-12, atol=0)
    assert sc.log_tail(float("nan")) is None and sc._seen == len(x)
