"""NAB scoring: hand-made cases and the exact sweep against trying every threshold."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.anomaly import nab

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "nab"


def _file(n: int = 1000, windows=((500, 599),)) -> nab.NabFile:
    ts = np.arange(n).astype("datetime64[m]").astype("datetime64[s]")
    return nab.NabFile("f/x.csv", ts, np.zeros(n), list(windows))


def _sig(y: float) -> float:
    return 2 / (1 + math.exp(5 * y)) - 1


def test_scaled_sigmoid_by_hand():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.9866142981514305)
    assert nab.scaled_sigmoid(0.0) == 0.0
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.9866142981514305)
    assert nab.scaled_sigmoid(3.0) == -1.0
    assert abs(nab.MAX_TP - 0.9866142981514305) < 1e-12


def test_probation_is_15_percent_at_most_750():
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(22695) == 750


def test_perfect_detector_scores_100_and_null_scores_0():
    f = _file()
    perfect = np.zeros(1000)
    perfect[500] = 1.0
    for profile in nab.PROFILES:
        s = nab.score_file(f, perfect, 0.5, profile)
        assert s.raw == pytest.approx(s.perfect)
        assert s.perfect == pytest.approx(nab.PROFILES[profile].tp)  # sigma(-1) / sigma(-1)
        sw = nab.sweep([f], {f.key: perfect}, profile)
        assert sw.normalised() == pytest.approx(100.0)
        never = nab.sweep([f], {f.key: np.zeros(1000)}, profile)
        assert never.normalised() == pytest.approx(0.0)
        assert never.files[0].raw == -nab.PROFILES[profile].fn


def test_late_detection_earns_less_than_early():
    f = _file()
    early, late = np.zeros(1000), np.zeros(1000)
    early[510], late[590] = 1.0, 1.0
    e = nab.score_file(f, early, 0.5)
    lt = nab.score_file(f, late, 0.5)
    assert e.raw > lt.raw > -1.0
    # by hand: row 510 of a window 500..599 (width 100): y = -(599 - 510 + 1) / 100 = -0.9
    assert e.raw == pytest.approx(_sig(-0.9) / _sig(-1.0))
    assert lt.raw == pytest.approx(_sig(-0.1) / _sig(-1.0))


def test_only_first_detection_in_window_counts_and_false_positives_by_distance():
    f = _file()
    s = np.zeros(1000)
    s[[520, 530, 540]] = 1.0  # three in the window: only 520 counts
    s[300] = 1.0  # before any window: costs the full FP weight
    s[601] = 1.0  # just after the window: (601 - 599) / 99 -> small cost
    s[900] = 1.0  # far after: y = 301 / 99 > 3 -> full cost
    got = nab.score_file(f, s, 0.5)
    want = _sig(-0.8) / _sig(-1.0) + 0.11 * (-1.0) + 0.11 * _sig(2 / 99) + 0.11 * (-1.0)
    assert got.raw == pytest.approx(want)
    assert (got.tp, got.fn, got.fp) == (1, 0, 3)


def test_probationary_rows_are_not_scored():
    f = _file()
    s = np.zeros(1000)
    s[:150] = 1.0  # all in the probationary period (15% of 1000)
    assert nab.score_file(f, s, 0.5).raw == pytest.approx(-1.0)
    s[150] = 1.0
    assert nab.score_file(f, s, 0.5).raw == pytest.approx(-1.0 - 0.11)


def test_sweep_finds_the_best_threshold_among_all():
    rng = np.random.default_rng(3)
    files = [
        _file(1000, ((500, 599),)),
        nab.NabFile("g/y.csv", _file(800).timestamps, np.zeros(800), [(200, 260), (600, 700)]),
        nab.NabFile("g/z.csv", _file(600).timestamps, np.zeros(600), []),
    ]
    for profile in nab.PROFILES:
        scores = {f.key: np.round(rng.random(len(f)) ** 8, 3) for f in files}  # many ties
        sw = nab.sweep(files, scores, profile)
        candidates = np.unique(np.concatenate(list(scores.values())))
        brute = max(sum(nab.score_file(f, scores[f.key], t, profile).raw for f in files) for t in candidates)
        never = sum(-nab.PROFILES[profile].fn * len(f.windows) for f in files)
        assert sum(x.raw for x in sw.files) == pytest.approx(max(brute, never))


def test_scores_must_be_one_per_row():
    f = _file()
    with pytest.raises(ValueError, match="expected 1000 scores"):
        nab.score_file(f, np.zeros(10), 0.5)


@pytest.mark.skipif(not DATA.is_dir(), reason=f"the NAB subset is not at {DATA}")
def test_corpus_loads_with_windows_after_probation():
    files = nab.load_corpus(DATA)
    assert len(files) == 30
    assert {f.folder for f in files} == {"artificialWithAnomaly", "realAWSCloudwatch", "realTraffic"}
    f = next(f for f in files if f.key == "realTraffic/speed_7578.csv")
    assert len(f) == 1127 and len(f.windows) == 4
    pub = nab.published(DATA)
    assert pub[("numenta", "standard", "realTraffic")] == 82.51
