"""The pooled context + rank-likelihood detector: the pooling formula, its reduction to the context scorer,
causality, streaming == batch, scale and NaN handling."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

from watchkeeper.anomaly.context import ContextDistanceScorer, tail_score
from watchkeeper.anomaly.ensemble import ContextLikelihoodDetector, pooled_score
from watchkeeper.anomaly.streaming import LikelihoodDetector


def _series(n: int = 1200, seed: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 300
    v = 10 + 5 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.5, n)
    v[700:720] += 12  # a level shift
    if n > 1000:
        v[1000] = -15  # a spike
    ts = (np.datetime64("2024-01-01T00:00:00") + t.astype("timedelta64[s]")).astype("datetime64[s]")
    return v, ts


def test_pooled_score_adds_log_tail_probabilities():
    q_ctx = norm.sf(2.0)
    # weight 0: the context scorer's own map of its tail probability
    assert pooled_score(math.log(q_ctx), 0.9, 0.0) == pytest.approx(tail_score(2.0), rel=1e-12)
    # L = 0.5 on Numenta's scale is Q = 1e-5; with weight 0.2 it multiplies Q_ctx by (1e-5) ** 0.2 = 0.1
    assert pooled_score(math.log(q_ctx), 0.5, 0.2) == pytest.approx(1 - (q_ctx * 0.1) ** 0.1, rel=1e-12)
    assert pooled_score(-math.inf, 0.0, 0.1) == 1.0


def test_weight_zero_alarms_are_the_context_scorers_and_edges_grade_the_held_channels():
    v, ts = _series()
    det = ContextLikelihoodDetector(weight=0.0, hold=5, rest=50)
    s = det.score_series(v, ts)
    ctx = ContextDistanceScorer(alarm=0.45, rest=50).score_series(v)
    assert [int(i) for i in np.nonzero(s)[0]] == [int(i) for i in np.nonzero(ctx >= 0.45)[0]]
    assert np.count_nonzero(s) >= 1
    ranks = LikelihoodDetector()
    liks = np.array([ranks.channels(x, t) for x, t in zip(v, ts, strict=True)])
    for i in np.nonzero(s)[0]:
        held = liks[max(0, i - 4) : i + 1].max(axis=0)  # the last 5 rows, this one included
        assert s[i] == pytest.approx(max(held.mean(), 1e-6), rel=1e-12)


def test_rank_evidence_adds_alarms_the_context_alone_does_not_raise():
    v, ts = _series()
    alone = np.count_nonzero(ContextLikelihoodDetector(weight=0.0).score_series(v, ts))
    pooled = np.count_nonzero(ContextLikelihoodDetector(weight=0.5).score_series(v, ts))
    assert pooled > alone


def test_update_equals_score_series_and_scores_lie_in_unit_interval():
    v, ts = _series()
    expected = ContextLikelihoodDetector().score_series(v, ts)
    online = ContextLikelihoodDetector()
    got = np.array([online.update(x, t) for x, t in zip(v, ts, strict=True)])
    np.testing.assert_array_equal(got, expected)
    assert np.count_nonzero(expected) >= 2  # not vacuous
    assert expected.min() >= 0.0 and expected.max() <= 1.0
    flagged = np.nonzero(expected)[0]
    assert np.any((flagged >= 700) & (flagged < 720)) and np.any((flagged >= 1000) & (flagged < 1010))


def test_prefix_causality():
    v, ts = _series()
    full = ContextLikelihoodDetector().score_series(v, ts)
    for n in (300, 705, 1001):
        np.testing.assert_array_equal(ContextLikelihoodDetector().score_series(v[:n], ts[:n]), full[:n])


def test_scale_free():
    v, ts = _series()
    a = ContextLikelihoodDetector().score_series(v, ts)
    b = ContextLikelihoodDetector().score_series(v * 1e6 - 4e5, ts)
    np.testing.assert_array_equal(np.nonzero(a)[0], np.nonzero(b)[0])
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_nan_scores_zero_and_leaves_state_untouched():
    v, ts = _series(900)
    with_nan, ts_nan = np.insert(v, 400, np.nan), np.insert(ts, 400, ts[400])
    a = ContextLikelihoodDetector().score_series(v, ts)
    b = ContextLikelihoodDetector().score_series(with_nan, ts_nan)
    assert b[400] == 0.0
    np.testing.assert_array_equal(np.delete(b, 400), a)


def test_params_and_bad_input():
    p = ContextLikelihoodDetector(weight=0.2).params()
    assert p["weight"] == 0.2 and p["rest"] == 100 and p["context"]["rest"] == 100
    assert p["likelihood"]["alarm"] == LikelihoodDetector().params()["alarm"]
    with pytest.raises(ValueError, match="weight: expected a finite number >= 0"):
        ContextLikelihoodDetector(weight=-1.0)
    with pytest.raises(ValueError, match="hold: expected an integer >= 1, got 0"):
        ContextLikelihoodDetector(hold=0)
    with pytest.raises(ValueError, match="alarm: expected a score in"):
        ContextLikelihoodDetector(alarm=1.5)
    with pytest.raises(ValueError, match="timestamps: expected one per value"):
        ContextLikelihoodDetector().score_series([1.0, 2.0], np.arange(3))
    with pytest.raises(ValueError, match="must be finite or NaN"):
        ContextLikelihoodDetector().update(math.inf)
