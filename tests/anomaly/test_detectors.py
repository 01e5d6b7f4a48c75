"""The Isolation Forest, robust-baseline and PCA detectors against their definitions.

Isolation Forest against scikit-learn's own scores; the EWMA baseline against its recurrence run one row and
one feature at a time in plain Python (clipping included); the MAD baseline against numpy's median over each
window; PCA against numpy's SVD. Streaming updates equal one-row updates, saved detectors score the same
after loading, and NaN rows score NaN without reaching the model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from watchkeeper.anomaly.iforest import IsolationForestDetector
from watchkeeper.anomaly.pca import PCADetector
from watchkeeper.anomaly.pickled import PICKLE_MAGIC, load_pickled
from watchkeeper.anomaly.robust import RobustBaseline

# -- reference implementations -------------------------------------------------------------------------------


def ewma_reference(
    X: np.ndarray, *, alpha: float, clip: float, warmup: int, min_scale: float = 1e-9
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """z of each value against the state before it, the final means and variances, and the rows that were
    learnt clipped: the recurrence of robust.py's docstring, one value at a time."""
    N, d = X.shape
    z = np.full((N, d), np.nan)
    means, variances, clipped = np.zeros(d), np.zeros(d), []
    for j in range(d):
        m = v = 0.0
        for n in range(N):  # n rows learnt before this one
            x = float(X[n, j])
            if n == 0:
                m, v = x, 0.0
                continue
            s = max(math.sqrt(v), min_scale)
            dev = x - m
            z[n, j] = dev / s
            if n >= warmup and abs(dev / s) > clip:
                dev = math.copysign(clip * s, dev)
                clipped.append(n)
            a = max(alpha, 1.0 / (n + 1))
            m = m + a * dev
            v = (1.0 - a) * (v + a * dev * dev)
        means[j], variances[j] = m, v
    return z, means, variances, clipped


def mad_z(window: np.ndarray, x: np.ndarray, min_scale: float = 1e-9) -> np.ndarray:
    """Modified z-score of ``x`` against ``window`` (rows) by numpy's median, and the documented fallbacks."""
    med = np.median(window, axis=0)
    mad = np.median(np.abs(window - med), axis=0)
    mean_ad = np.mean(np.abs(window - med), axis=0)
    out = np.empty(len(med))
    for j in range(len(med)):
        if mad[j] > 0 and mad[j] / 0.6745 >= min_scale:
            out[j] = 0.6745 * (x[j] - med[j]) / mad[j]  # Iglewicz & Hoaglin
        elif mad[j] == 0 and math.sqrt(math.pi / 2) * mean_ad[j] >= min_scale:
            out[j] = (x[j] - med[j]) / (math.sqrt(math.pi / 2) * mean_ad[j])  # IBM rounds this to 1.253314
        else:
            out[j] = (x[j] - med[j]) / min_scale
    return out


def combine(z: np.ndarray, how: str) -> np.ndarray:
    a = np.abs(z)
    return {"max": a.max(axis=1), "mean": a.mean(axis=1), "rms": np.sqrt((a * a).mean(axis=1))}[how]


def spiky_series(n: int, d: int, seed: int) -> np.ndarray:
    """Noise with a spike every ~60 rows and a level shift halfway: clipping happens, alone and in runs."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3.0, d) + rng.uniform(-50, 50, d)
    spikes = rng.random((n, d)) < 1 / 60
    X[spikes] += rng.choice([-1.0, 1.0], spikes.sum()) * rng.uniform(10, 40, spikes.sum())
    X[n // 2 :, 0] += 25.0
    return X


def mad_series(n: int, seed: int) -> np.ndarray:
    """Three awkward columns: continuous, mostly-zero counts (MAD 0, MeanAD > 0) and nearly constant."""
    rng = np.random.default_rng(seed)
    cont = rng.normal(10, 2, n)
    counts = np.where(rng.random(n) < 0.75, 0.0, rng.integers(1, 4, n).astype(float))
    flat = np.where(rng.random(n) < 0.02, 6.0, 5.0)
    return np.column_stack([cont, counts, flat])


# -- Isolation Forest ----------------------------------------------------------------------------------------


def test_iforest_score_is_sklearn_score_samples_negated():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 4))
    T = np.vstack([rng.normal(size=(50, 4)), rng.normal(5, 1, size=(5, 4))])
    det = IsolationForestDetector().fit(X)  # the defaults: 200 trees, "auto" subsample, seed 0
    ref = IsolationForest(n_estimators=200, max_samples="auto", max_features=1.0, random_state=0).fit(X)
    np.testing.assert_array_equal(det.score(T), -ref.score_samples(T))
    s = det.score(T)
    assert ((s > 0) & (s <= 1)).all()  # Liu et al.'s s(x, psi) is in (0, 1]

    det = IsolationForestDetector(n_estimators=30, max_samples=64, max_features=2, random_state=5).fit(X)
    ref = IsolationForest(n_estimators=30, max_samples=64, max_features=2, random_state=5).fit(X)
    np.testing.assert_array_equal(det.score(T), -ref.score_samples(T))


def test_iforest_standardize_fits_the_forest_on_standardised_features():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(300, 3)) * [1.0, 100.0, 0.01] + [0.0, 1e4, -3.0]
    X[:, 2] = 7.0  # a constant feature keeps scale 1
    T = rng.normal(size=(20, 3)) * [1.0, 100.0, 0.01] + [0.0, 1e4, -3.0]
    det = IsolationForestDetector(n_estimators=40, standardize=True, random_state=3).fit(X)
    mean, std = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    ref = IsolationForest(n_estimators=40, random_state=3).fit((X - mean) / std)
    np.testing.assert_array_equal(det.score(T), -ref.score_samples((T - mean) / std))


def test_iforest_finds_clear_anomalies():
    rng = np.random.default_rng(3)
    cov = np.array([[1.0, 0.6, 0.0, 0.0], [0.6, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.3], [0.0, 0.0, 0.3, 1.0]])
    normal = rng.multivariate_normal(np.zeros(4), cov, size=2000)
    anomalies = rng.multivariate_normal(np.zeros(4), cov, size=40)
    anomalies[np.arange(40), rng.integers(0, 4, 40)] += rng.choice([-1.0, 1.0], 40) * 6.0
    det = IsolationForestDetector(n_estimators=100).fit(normal[:1000])
    val = np.vstack([normal[1000:], anomalies])
    y = np.r_[np.zeros(1000), np.ones(40)]
    assert roc_auc_score(y, det.score(val)) > 0.9
    cal = det.calibrate(val, labels=y)
    assert cal.auc == pytest.approx(roc_auc_score(y, det.score(val)))
    assert det.predict(anomalies).mean() > 0.5


# -- RobustBaseline: EWMA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("how", "alpha"), [("max", 0.05), ("mean", 0.05), ("rms", 0.05), ("max", 0.004)])
def test_ewma_scores_follow_the_recurrence_with_clipping(how, alpha):
    X = spiky_series(6000, 3, seed=4)
    ref_z, ref_m, ref_v, clipped = ewma_reference(X, alpha=alpha, clip=4.0, warmup=30)
    assert len(clipped) > 100  # lone spikes and the run after the level shift were both learnt clipped
    if alpha < 0.01:  # and some while the weights were still 1/(n+1), before alpha took over
        assert sum(n + 1 < 1 / alpha for n in clipped) > 5
    det = RobustBaseline(alpha=alpha, clip=4.0, warmup=30, combine=how).fit(X[:10])
    got = det.update(X[10:])
    expect = combine(ref_z[10:], how)
    expect[np.arange(10, 6000) < 30] = np.nan  # rows before warmup
    np.testing.assert_allclose(got, expect, rtol=1e-9, atol=1e-9)
    # score() judges rows against the final state, without learning them
    q = X[-5:] + 3.0
    np.testing.assert_allclose(det.score(q), combine((q - ref_m) / np.sqrt(ref_v), how), rtol=1e-9, atol=1e-9)
    assert det.n_learnt == 6000


def test_ewma_halflife_and_no_clipping():
    X = spiky_series(3000, 2, seed=5)
    det = RobustBaseline(halflife=30, clip=None, warmup=0).fit(X[:2])
    alpha = 1 - 0.5 ** (1 / 30)
    assert det.effective_alpha == pytest.approx(alpha, rel=1e-12)
    ref_z, *_, clipped = ewma_reference(X, alpha=alpha, clip=math.inf, warmup=0)
    assert clipped == []
    np.testing.assert_allclose(det.update(X[2:]), combine(ref_z[2:], "max"), rtol=1e-9, atol=1e-9)


def test_ewma_plain_running_stats_before_alpha_takes_over():
    # with alpha = 0.01 the first 99 rows learn with weight 1/(n+1): the plain mean and population variance
    X = np.random.default_rng(6).normal(3.0, 2.0, size=(60, 2))
    det = RobustBaseline(alpha=0.01, clip=None, warmup=0).fit(X)
    q = np.array([[1.0, 2.0]])
    expect = np.abs((q - X.mean(axis=0)) / X.std(axis=0)).max()
    assert det.score(q)[0] == pytest.approx(expect, rel=1e-12)


# -- RobustBaseline: MAD -------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 2, 7, 20, 25])
def test_mad_scores_equal_numpy_median_per_window(window):
    X = mad_series(400, seed=7)
    for j in range(3):  # one feature at a time, so the near-constant column's 1e9 scores hide nothing
        det = RobustBaseline(method="mad", window=window, warmup=0).fit(X[:2, [j]])
        got = det.update(X[2:, [j]])  # the first windows are still growing
        expect = np.array([abs(mad_z(X[max(0, t - window) : t, [j]], X[t, [j]])[0]) for t in range(2, 400)])
        np.testing.assert_allclose(got, expect, rtol=1e-9, atol=0)
        q = np.array([[X[:, j].mean() + 1.0]])
        assert det.score(q)[0] == pytest.approx(abs(mad_z(X[-window:, [j]], q[0])[0]), rel=1e-9)
    # and all features at once, combined
    det = RobustBaseline(method="mad", window=window, warmup=0, combine="rms").fit(X[:50])
    ref = np.array([mad_z(X[max(0, t - window) : t], X[t]) for t in range(50, 400)])
    np.testing.assert_allclose(det.update(X[50:]), combine(ref, "rms"), rtol=1e-9, atol=0)


def test_mad_fallbacks_are_exercised():
    # the data above reach all three scales: MAD, 1.2533 MeanAD, and min_scale
    X = mad_series(400, seed=7)
    reached = set()
    for t in range(25, 400):
        w = X[t - 25 : t]
        mad = np.median(np.abs(w - np.median(w, axis=0)), axis=0)
        mean_ad = np.mean(np.abs(w - np.median(w, axis=0)), axis=0)
        reached |= {
            "mad" if m > 0 else "meanad" if a > 0 else "floor" for m, a in zip(mad, mean_ad, strict=True)
        }
    assert reached == {"mad", "meanad", "floor"}


# -- RobustBaseline: both ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{"alpha": 0.05, "clip": 4.0}, {"method": "mad", "window": 30}])
def test_batch_update_equals_row_by_row_updates(kwargs):
    X = spiky_series(1500, 3, seed=8)
    batch = RobustBaseline(warmup=10, **kwargs).fit(X[:5])
    single = RobustBaseline(warmup=10, **kwargs).fit(X[:5])
    got = batch.update(X[5:])
    one_by_one = np.concatenate([single.update(X[t : t + 1]) for t in range(5, 1500)])
    np.testing.assert_allclose(got, one_by_one, rtol=1e-12, atol=1e-12)
    assert np.isnan(got[:5]).all() and np.isfinite(got[5:]).all()
    # the same state as learning everything in one fit
    whole = RobustBaseline(warmup=10, **kwargs).fit(X)
    q = X[:7] * 1.1
    np.testing.assert_allclose(batch.score(q), single.score(q), rtol=1e-12)
    np.testing.assert_allclose(batch.score(q), whole.score(q), rtol=1e-12)
    assert batch.n_learnt == single.n_learnt == whole.n_learnt == 1500


@pytest.mark.parametrize("method", ["ewma", "mad"])
def test_warmup_scores_nan_until_enough_rows_are_learnt(method):
    X = np.random.default_rng(9).normal(size=(40, 2))
    det = RobustBaseline(method=method, warmup=10, window=8).fit(X[:4])
    assert np.isnan(det.score(X[4:8])).all()
    s = det.update(X[4:20])
    assert np.isnan(s[:6]).all()  # rows learnt after 4..9 others
    assert np.isfinite(s[6:]).all()
    assert np.isfinite(det.score(X[20:])).all()


@pytest.mark.parametrize("method", ["ewma", "mad"])
def test_constant_series_scores_zero_and_a_change_scores_large_but_finite(method):
    X = np.tile([3.7, 1.23456789e8], (300, 1))  # exactly 0, even at a level where rounding is 1e-8
    det = RobustBaseline(method=method, window=50).fit(X[:100])
    s = det.update(X[100:])
    assert (s == 0).all()
    assert (det.score(X[:3]) == 0).all()
    bumped = det.score(np.array([[3.8, 1.23456789e8]]))[0]
    assert bumped == pytest.approx((3.8 - 3.7) / 1e-9, rel=1e-6)  # the min_scale floor


# -- PCA -----------------------------------------------------------------------------------------------------


def _pca_data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(3, 8))
    X = rng.normal(size=(600, 3)) @ mix + 0.2 * rng.normal(size=(600, 8))
    X[:, 2] = X[:, 2] * 100 + 1e3
    X[:, 7] = 5.0  # constant: scale 1
    T = rng.normal(size=(40, 3)) @ mix + 0.2 * rng.normal(size=(40, 8))
    T[:, 2] = T[:, 2] * 100 + 1e3
    T[:, 7] = 5.0
    T[:5, 0] += 4.0  # break the correlations
    return X, T


def _numpy_pca_error(X: np.ndarray, T: np.ndarray, k: int) -> np.ndarray:
    mean, std = X.mean(axis=0), X.std(axis=0)
    std[std == 0] = 1.0
    Z = (X - mean) / std
    center = Z.mean(axis=0)
    _, _, vt = np.linalg.svd(Z - center, full_matrices=False)
    V = vt[:k]
    zt = (T - mean) / std - center
    resid = zt - zt @ V.T @ V
    return (resid**2).sum(axis=1)


def test_pca_score_equals_numpy_svd_reconstruction_error():
    X, T = _pca_data(10)
    det = PCADetector(n_components=3).fit(X)
    assert det.n_components_ == 3
    np.testing.assert_allclose(det.score(T), _numpy_pca_error(X, T, 3), rtol=1e-8, atol=1e-8)
    assert det.score(T)[:5].min() > det.score(T)[5:].max()  # the broken rows stand out


def test_pca_share_of_variance_picks_components_like_sklearn():
    X, T = _pca_data(11)
    Z = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    sv = np.linalg.svd(Z - Z.mean(axis=0), compute_uv=False)
    share = np.cumsum(sv**2) / np.sum(sv**2)
    for target in (0.5, 0.9):
        k = int(np.searchsorted(share, target, side="right")) + 1  # fewest components exceeding the share
        det = PCADetector(n_components=target).fit(X)
        assert det.n_components_ == k < 8
        np.testing.assert_allclose(det.score(T), _numpy_pca_error(X, T, k), rtol=1e-8, atol=1e-8)


def test_pca_refuses_to_keep_every_component():
    X, _ = _pca_data(12)
    with pytest.raises(ValueError, match="n_components=8"):
        PCADetector(n_components=8).fit(X)
    with pytest.raises(ValueError, match="keeps all 2 components"):
        PCADetector(n_components=0.999).fit(np.random.default_rng(0).normal(size=(100, 2)))


# -- shared behaviour ----------------------------------------------------------------------------------------


def _detectors():
    return [
        IsolationForestDetector(n_estimators=25, standardize=True),
        RobustBaseline(alpha=0.1, warmup=5),
        RobustBaseline(method="mad", window=12, warmup=5, combine="mean"),
        PCADetector(n_components=2),
    ]


@pytest.mark.parametrize("det", _detectors(), ids=repr)
def test_save_and_load_round_trip(det, tmp_path):
    rng = np.random.default_rng(13)
    cols = ["cpu", "latency", "errors", "queue"]
    train = pd.DataFrame(rng.normal(size=(200, 4)), columns=cols)
    val = pd.DataFrame(rng.normal(size=(60, 4)), columns=cols)
    det.fit(train)
    det.calibrate(val, labels=np.r_[np.zeros(55), np.ones(5)])
    path = tmp_path / "detector.wkdet"
    det.save(path)
    assert path.read_bytes().startswith(PICKLE_MAGIC)
    loaded = load_pickled(path)
    again = type(det).load(path)
    assert type(loaded) is type(det) and repr(loaded) == repr(det)
    assert (
        loaded.columns == cols and loaded.threshold == det.threshold and loaded.calibration == det.calibration
    )
    reordered = val[cols[::-1]]  # columns are matched by name after loading too
    np.testing.assert_array_equal(loaded.score(reordered), det.score(val))
    np.testing.assert_array_equal(again.predict(val), det.predict(val))
    if isinstance(det, RobustBaseline):  # the learnt baseline came along: streaming carries on identically
        np.testing.assert_array_equal(loaded.update(val), det.update(val))


def test_load_refuses_other_files_and_other_classes(tmp_path):
    bad = tmp_path / "not-a-detector.pkl"
    bad.write_bytes(b"\x80\x05junk")
    with pytest.raises(ValueError, match="WKDET1"):
        load_pickled(bad)
    path = tmp_path / "baseline.wkdet"
    RobustBaseline().fit(np.random.default_rng(0).normal(size=(30, 2))).save(path)
    with pytest.raises(ValueError, match="holds a RobustBaseline, not a PCADetector"):
        PCADetector.load(path)


@pytest.mark.parametrize("det", _detectors(), ids=repr)
def test_nan_rows_score_nan_and_do_not_reach_the_model(det):
    rng = np.random.default_rng(14)
    det.fit(rng.normal(size=(200, 4)))
    T = rng.normal(size=(30, 4))
    holey = T.copy()
    holey[[3, 17], 1] = np.nan
    s = det.score(holey)
    keep = np.ones(30, dtype=bool)
    keep[[3, 17]] = False
    assert np.isnan(s[[3, 17]]).all()
    np.testing.assert_array_equal(s[keep], det.score(T[keep]))
    if isinstance(det, RobustBaseline):  # streaming: NaN rows are not learnt either
        rows = rng.normal(size=(200, 4))
        with_holes = RobustBaseline(**det.params()).fit(rows)
        without = RobustBaseline(**det.params()).fit(rows)
        u = with_holes.update(holey)
        assert np.isnan(u[[3, 17]]).all()
        np.testing.assert_array_equal(u[keep], without.update(T[keep]))
        assert with_holes.n_learnt == without.n_learnt == 228


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: RobustBaseline(method="median"), "method must be 'ewma' or 'mad'"),
        (lambda: RobustBaseline(alpha=0.0), "alpha must be in"),
        (lambda: RobustBaseline(alpha=0.1, halflife=5), "not both"),
        (lambda: RobustBaseline(halflife=-1), "halflife"),
        (lambda: RobustBaseline(method="mad", window=0), "window must be an int >= 1, got 0"),
        (lambda: RobustBaseline(clip=0), "clip"),
        (lambda: RobustBaseline(warmup=-1), "warmup"),
        (lambda: RobustBaseline(combine="sum"), "combine must be one of"),
        (lambda: RobustBaseline(min_scale=0.0), "min_scale"),
        (lambda: IsolationForestDetector(n_estimators=0), "n_estimators"),
        (lambda: IsolationForestDetector(max_samples=1.5), "max_samples"),
        (lambda: IsolationForestDetector(max_features=0), "max_features"),
        (lambda: PCADetector(n_components=1.0), "n_components"),
        (lambda: PCADetector(n_components=0), "n_components"),
        (lambda: PCADetector(svd_solver="lapack"), "svd_solver"),
    ],
)
def test_bad_settings_are_refused_with_the_argument_named(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_iforest_max_features_above_width_is_refused_at_fit():
    with pytest.raises(ValueError, match="max_features=5 is more than the 3 features"):
        IsolationForestDetector(max_features=5).fit(np.zeros((10, 3)))


def test_load_reads_every_saved_format(tmp_path):
    from watchkeeper.anomaly import IsolationForestDetector, PCADetector, RobustBaseline, load

    rng = np.random.default_rng(5)
    X = rng.standard_normal((300, 4))
    for det in (IsolationForestDetector(n_estimators=20), PCADetector(n_components=2), RobustBaseline()):
        det.fit(X)
        det.calibrate(X, percentile=99)
        path = tmp_path / f"{det.name}.wk"
        det.save(path)
        back = load(path)
        assert type(back) is type(det)
        np.testing.assert_array_equal(back.score(X), det.score(X))
        assert back.threshold == det.threshold
    (tmp_path / "junk").write_bytes(b"not a detector")
    with pytest.raises(ValueError, match="not a saved detector in a known format"):
        load(tmp_path / "junk")
