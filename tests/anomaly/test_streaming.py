"""The streaming likelihood detector: causality, update == score_series, the math by hand and by scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from watchkeeper.anomaly import streaming
from watchkeeper.anomaly.streaming import DetectorSettings, LikelihoodDetector


def _series(n: int = 1500, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 300
    v = 10 + 5 * np.sin(2 * np.pi * t / 86400) + rng.normal(0, 0.5, n)
    v[900:930] += 15  # a level shift
    if n > 1200:
        v[1200] = -20  # a spike
    ts = (np.datetime64("2024-01-01T00:00:00") + t.astype("timedelta64[s]")).astype("datetime64[s]")
    return v, ts


def test_normal_tail_and_log_scale_agree_with_scipy():
    for z in (-2.0, 0.0, 1.0, 3.0, 6.0):
        assert streaming.normal_tail(z) == pytest.approx(stats.norm.sf(z), rel=1e-12)
    q = stats.norm.sf(4.0)
    assert streaming.log_likelihood_score(q) == pytest.approx(math.log(q) / math.log(1e-10))
    assert streaming.log_likelihood_score(1e-5) == pytest.approx(0.5)
    assert streaming.log_likelihood_score(1e-12) == 1.0
    assert streaming.log_likelihood_score(1.0) == 0.0


def test_rank_surprise_by_hand():
    w = streaming._RankWindow(4)
    for x in (1.0, 2.0, 3.0, 4.0, 5.0):  # 1.0 falls out of the window
        w.push(x)
    # held 2, 3, 4, 5: 6 is beyond all -> p = 1/5; 3 two-sided: min(#>=3 = 3, #<=3 = 2) = 2 -> p = 3/5
    assert w.surprise(6.0, two_sided=False) == pytest.approx(math.log(5) / math.log(5))
    assert w.surprise(3.0, two_sided=True) == pytest.approx(-math.log(3 / 5) / math.log(5))
    assert w.surprise(0.0, two_sided=False) == pytest.approx(0.0)


def test_likelihood_matches_hand_computation():
    lik = streaming._Likelihood(short=2, long=100, learn=0, sd_floor=1e-3)
    raws = [0.0, 0.2, 0.0, 0.2, 0.0, 0.3]
    scores = [lik.update(r) for r in raws]
    means = [0.0, 0.1, 0.1, 0.1, 0.1, 0.15]  # short-term means (first one over a single row)
    past = np.array(means[:5])
    z = (means[5] - past.mean()) / past.std()
    assert z == pytest.approx(1.75)
    assert scores[5] == pytest.approx(math.log(stats.norm.sf(z)) / math.log(1e-10))
    assert scores[0] == 0.0  # no earlier mean to compare with


def test_scores_lie_in_unit_interval_and_flag_the_injected_anomalies():
    v, ts = _series()
    s = LikelihoodDetector().score_series(v, ts)
    assert s.shape == v.shape
    assert s.min() >= 0.0 and s.max() <= 1.0
    flagged = np.nonzero(s)[0]
    assert np.any((flagged >= 900) & (flagged < 910))
    assert np.any((flagged >= 1200) & (flagged < 1205))
    others = flagged[((flagged < 900) | (flagged >= 910)) & ((flagged < 1200) | (flagged >= 1205))]
    assert len(others) <= 5  # the edges only: a handful of alarms in 1500 noisy rows


def test_prefix_causality():
    v, ts = _series()
    full = LikelihoodDetector().score_series(v, ts)
    for n in (200, 905, 1201):
        part = LikelihoodDetector().score_series(v[:n], ts[:n])
        np.testing.assert_array_equal(part, full[:n])


def test_update_equals_score_series():
    v, ts = _series()
    for kw in ({}, {"quiet": 0, "hold": 20}):
        expected = LikelihoodDetector(**kw).score_series(v, ts)
        online = LikelihoodDetector(**kw)
        got = np.array([online.update(x, t) for x, t in zip(v, ts, strict=True)])
        np.testing.assert_array_equal(got, expected)
        assert np.count_nonzero(expected) >= 2  # not vacuous


def test_nan_scores_zero_and_leaves_state_untouched():
    v, ts = _series(1000)
    with_nan, ts_nan = np.insert(v, 500, np.nan), np.insert(ts, 500, ts[500])
    a = LikelihoodDetector().score_series(v, ts)
    b = LikelihoodDetector().score_series(with_nan, ts_nan)
    assert b[500] == 0.0
    np.testing.assert_array_equal(np.delete(b, 500), a)


def test_constant_series_scores_zero_then_a_jump_is_flagged():
    v = np.r_[np.full(400, 7.0), np.full(5, 9.0)]
    s = LikelihoodDetector().score_series(v)
    assert np.all(s[:400] == 0.0)
    # level and change are beyond everything seen (likelihood 1); no timestamps, so no daily channel: 2 / 3
    assert s[400] == pytest.approx(2.0 / 3.0)
    assert np.all(s[401:] == 0.0)  # the alarm goes on, but it is the same edge


def test_scale_free():
    v, ts = _series()
    a = LikelihoodDetector().score_series(v, ts)
    b = LikelihoodDetector().score_series(v * 1e7 + 3e8, ts)
    np.testing.assert_array_equal(a, b)


def test_quiet_and_hold_decide_which_alarms_are_new_edges():
    v = np.r_[np.full(300, 1.0), [50.0] * 3, np.full(20, 1.0), [80.0] * 3, np.full(20, 1.0)]

    def flagged(**kw: int) -> list[int]:
        return [int(i) for i in np.nonzero(LikelihoodDetector(**kw).score_series(v))[0]]

    # with neither rule every alarm row is reported: the first burst keeps the likelihood up for 10 rows
    # (the short-term mean), so rows 300-309 and the second burst from row 325 on raise alarms
    every = flagged(quiet=0, hold=0)
    assert every[:10] == list(range(300, 310)) and every[10] == 325
    # quiet: 325 is a new edge only if no alarm in the `quiet` rows before it; the last one was row 309
    assert flagged(quiet=15) == [300, 325]
    assert flagged(quiet=16) == [300]
    # hold: counted from the last edge (300), whatever happened in between
    assert flagged(quiet=0, hold=24) == [300, 325]
    assert flagged(quiet=0, hold=25) == [300, 326]  # 325 is held; 326 still raises an alarm


def test_edge_grade_is_the_channel_mean_and_can_be_swept():
    v, ts = _series()
    s = LikelihoodDetector().score_series(v, ts)
    edges = s[s > 0]
    assert len(np.unique(edges)) == len(edges) >= 2  # graded, not one flat alarm value
    assert edges.max() <= 1.0 and edges.min() > 0.0


def test_prefix_causality_on_graded_edges_with_timestamps_in_seconds():
    v, ts = _series(1300, seed=5)
    secs = ts.astype("datetime64[s]").astype(np.int64).astype(float)
    full = LikelihoodDetector(quiet=5).score_series(v, secs)
    np.testing.assert_array_equal(full, LikelihoodDetector(quiet=5).score_series(v, ts))
    for n in (350, 910, 1250):
        np.testing.assert_array_equal(LikelihoodDetector(quiet=5).score_series(v[:n], secs[:n]), full[:n])


def test_params_and_bad_input():
    det = LikelihoodDetector(alarm=0.6)
    assert det.params()["alarm"] == 0.6 and det.params()["history"] == DetectorSettings().history
    with pytest.raises(ValueError, match="alarm must be in"):
        LikelihoodDetector(alarm=1.5)
    with pytest.raises(ValueError, match="quiet must be >= 0"):
        LikelihoodDetector(quiet=-1)
    with pytest.raises(TypeError, match="unknown setting"):
        LikelihoodDetector(thresh=0.5)
    with pytest.raises(ValueError, match="one timestamp per value"):
        LikelihoodDetector().score_series([1.0, 2.0], np.arange(3))
    det.update(1.0, 1000.0)
    with pytest.raises(ValueError, match="must not go backwards"):
        det.update(1.0, 500.0)


def test_channels_are_what_the_alarm_rule_sees():
    v, ts = _series(1300, seed=5)
    ranks = LikelihoodDetector()
    liks = np.array([ranks.channels(x, t) for x, t in zip(v, ts, strict=True)])
    assert liks.shape == (1300, 3) and liks.min() >= 0.0 and liks.max() <= 1.0
    s = LikelihoodDetector(quiet=0).score_series(v, ts)
    # quiet 0: every row whose largest channel reaches `alarm` is an edge reporting the channel mean
    alarm = liks.max(axis=1) >= DetectorSettings().alarm
    np.testing.assert_array_equal(s > 0, alarm)
    np.testing.assert_allclose(s[alarm], np.maximum(liks[alarm].mean(axis=1), 1e-6), rtol=1e-12)
    assert LikelihoodDetector().channels(math.nan) is None
