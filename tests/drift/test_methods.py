"""The drift catalogue: every method against scipy or a hand-computed case, the contract every registered
method keeps on each kind it declares, the estimates from profiles against the exact numbers within each
method's stated bound, and the edge cases (constant columns, one-sided categories, empty samples)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

import watchkeeper.drift.chi2
import watchkeeper.drift.hellinger
import watchkeeper.drift.js
import watchkeeper.drift.kl
import watchkeeper.drift.ks
import watchkeeper.drift.linf
import watchkeeper.drift.psi
import watchkeeper.drift.tv
import watchkeeper.drift.wasserstein
import watchkeeper.drift.ztest  # noqa: F401 - registers the method
from watchkeeper.drift.base import DriftMethod, DriftStatistic
from watchkeeper.drift.binning import EPSILON, bin_categorical, bin_numeric, bin_numeric_profiles, smooth
from watchkeeper.drift.chi2 import Chi2
from watchkeeper.drift.hellinger import Hellinger
from watchkeeper.drift.js import JensenShannon
from watchkeeper.drift.kl import KL
from watchkeeper.drift.ks import KS
from watchkeeper.drift.linf import LInfinity
from watchkeeper.drift.psi import PSI
from watchkeeper.drift.tv import TotalVariation
from watchkeeper.drift.wasserstein import Wasserstein
from watchkeeper.drift.ztest import ZTest
from watchkeeper.profile import ColumnProfile

BINNED = [PSI, KL, JensenShannon, Hellinger, TotalVariation, LInfinity]
NUMERIC = [KS, Wasserstein, *BINNED]


def col(values: Any) -> ColumnProfile:
    return ColumnProfile("x").update(pa.array(values))


def close(a: float, b: float, tol: float = 1e-9) -> bool:
    """Equal to ``tol`` relative to the larger, or absolutely for numbers below 1."""
    return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


# -- against scipy and hand-computed cases -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n1", "n2", "shift", "ties"),
    [
        (40, 60, 0.5, False),  # scipy's exact path
        (3000, 5000, 0.05, False),
        (2000, 2000, 0.0, True),
        (10_000, 9_000, 0.02, False),
        (30_000, 20_000, 0.02, False),  # asymptotic: computed here
        (50_000, 50_000, 0.0, True),
        (120_000, 70_001, 0.01, True),
    ],
)
def test_ks_agrees_with_scipy(n1: int, n2: int, shift: float, ties: bool) -> None:
    rng = np.random.default_rng(n1 + n2)
    ref, cur = rng.normal(0, 1, n1), rng.normal(shift, 1, n2)
    if ties:
        ref, cur = np.round(ref * 4), np.round(cur * 4)
    ours = KS().exact(ref, cur)
    res = stats.ks_2samp(ref, cur)
    assert abs(ours.statistic - res.statistic) <= 1e-12
    assert close(ours.p_value, float(res.pvalue))
    assert ours.details["location"] == res.statistic_location
    assert ours.details["sign"] == res.statistic_sign


def test_ks_large_drift_p_value_agrees_with_scipy() -> None:
    rng = np.random.default_rng(1)
    ref, cur = rng.normal(0, 1, 20_000), rng.normal(0.1, 1, 30_000)
    ours, res = KS().exact(ref, cur), stats.ks_2samp(ref, cur)
    assert ours.statistic == res.statistic
    assert 0 < ours.p_value < 1e-9 and abs(ours.p_value - res.pvalue) <= 1e-9 * res.pvalue


@pytest.mark.parametrize("en", [1e4, 3e4, 1e5, 1e6])
def test_ks_profile_p_value_is_stephens_approximation_close_to_kstwo(en: float) -> None:
    """On profiles, above an effective size of 1e4 the p-value is Stephens' approximation (fast) instead of
    kstwo.sf (slow in the tail at large n): relatively within 0.6% of it for sqrt(en) * D up to 2 (p down to
    about 7e-4) and within 4% up to 4 (p about 2e-14)."""
    from watchkeeper.drift.ks import _profile_p

    n1 = n2 = int(2 * en)  # en = n1 n2 / (n1 + n2)
    for lam in (0.3, 0.8, 1.0, 1.36, 1.63, 2.0, 2.5, 3.0, 4.0):
        d = lam / math.sqrt(en)
        want = float(stats.kstwo.sf(d, round(en)))
        assert abs(_profile_p(d, n1, n2) / want - 1) <= (0.006 if lam <= 2 else 0.04), (en, lam)
    # below 1e4, exactly the data path's kstwo
    assert _profile_p(0.02, 9000, 9000) == float(stats.kstwo.sf(0.02, 4500))


@pytest.mark.parametrize(("n1", "n2"), [(5, 5), (7, 13), (1000, 1000), (20_000, 13_337), (100_000, 99_999)])
def test_wasserstein_agrees_with_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1 * 7 + n2)
    ref, cur = rng.lognormal(0, 1, n1), np.round(rng.lognormal(0.3, 1.2, n2), 1)
    s = Wasserstein().exact(ref, cur)
    expected = stats.wasserstein_distance(ref, cur)
    assert close(s.details["distance"], expected)
    assert close(s.statistic, expected / np.std(ref))


def test_wasserstein_hand_case() -> None:
    # Quantile functions: ref {0, 1}, cur {0, 0, 3}: |0-0| on (0, 1/2], |0-0| then |1-0| on (1/2, 2/3],
    # |1-3| on (2/3, 1]: W1 = 1/6 + 2/3 = 5/6, std(ref) = 1/2.
    s = Wasserstein().exact(np.array([0.0, 1.0]), np.array([0.0, 0.0, 3.0]))
    assert s.details["distance"] == pytest.approx(5 / 6, abs=1e-15)
    assert s.statistic == pytest.approx(5 / 3, abs=1e-15)


def _numeric_pair(seed: int = 3, n: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, n), rng.normal(0.3, 1.2, n)


def test_binned_shares_are_reference_deciles() -> None:
    ref, cur = _numeric_pair()
    b = bin_numeric(ref, cur)
    edges = np.quantile(ref, np.arange(1, 10) / 10, method="inverted_cdf")
    np.testing.assert_array_equal(b.edges, edges)
    bins = np.searchsorted(edges, ref, side="left")  # right-closed: e_{i-1} < x <= e_i
    np.testing.assert_array_equal(b.ref_counts, np.bincount(bins, minlength=10))
    np.testing.assert_array_equal(
        b.cur_counts, np.bincount(np.searchsorted(edges, cur, side="left"), minlength=10)
    )
    assert np.all(b.p == 0.1)


def test_binned_hand_case() -> None:
    b = bin_numeric(np.arange(1.0, 11.0), np.array([-5.0, 1.0, 2.5, 10.0, 99.0]), n_bins=2)
    # The inverted_cdf median of 1..10 is 5, not the minimum: one edge, bins (-inf, 5] and (5, inf).
    assert b.edges.tolist() == [5.0]
    assert b.ref_counts.tolist() == [5.0, 5.0] and b.cur_counts.tolist() == [3.0, 2.0]


@pytest.mark.parametrize("cls", BINNED)
def test_binned_distances_match_their_formulas(cls: type) -> None:
    ref, cur = _numeric_pair()
    method = cls()
    s = method.exact(ref, cur)
    b = bin_numeric(ref, cur)
    p, q = smooth(b.p, method.epsilon), smooth(b.q, method.epsilon)
    np.testing.assert_allclose(s.details["p"], p, rtol=0, atol=0)
    expected = {
        PSI: stats.entropy(p, q) + stats.entropy(q, p),
        KL: stats.entropy(p, q),
        JensenShannon: jensenshannon(p, q),
        Hellinger: np.linalg.norm(np.sqrt(p) - np.sqrt(q)) / math.sqrt(2),
        TotalVariation: 0.5 * np.abs(p - q).sum(),
        LInfinity: np.abs(p - q).max(),
    }[cls]
    assert close(s.statistic, float(expected))


def test_categorical_hand_cases() -> None:
    ref = np.array(["a"] * 6 + ["b"] * 3 + ["c"] * 1)
    cur = np.array(["a"] * 3 + ["b"] * 3 + ["d"] * 4)
    p = np.array([0.6, 0.3, 0.1, 0.0])  # order: by reference share, then current share: a, b, c, d
    q = np.array([0.3, 0.3, 0.0, 0.4])
    assert bin_categorical(ref, cur).categories == ["a", "b", "c", "d"]
    assert TotalVariation().exact(ref, cur).statistic == pytest.approx(0.5 * (0.3 + 0 + 0.1 + 0.4), abs=1e-15)
    linf = LInfinity().exact(ref, cur)
    assert linf.statistic == pytest.approx(0.4, abs=1e-15) and linf.details["argmax"] == 3
    assert Hellinger().exact(ref, cur).statistic == pytest.approx(
        math.sqrt(1 - math.sqrt(0.18) - math.sqrt(0.09)), abs=1e-15
    )
    assert JensenShannon().exact(ref, cur).statistic == pytest.approx(jensenshannon(p, q), abs=1e-12)
    ps, qs = smooth(p, EPSILON), smooth(q, EPSILON)
    assert ps[3] == pytest.approx(EPSILON / (1 + EPSILON), rel=1e-12)
    assert PSI().exact(ref, cur).statistic == pytest.approx(
        float(np.sum((qs - ps) * np.log(qs / ps))), abs=1e-12
    )
    assert KL().exact(ref, cur).statistic == pytest.approx(stats.entropy(ps, qs), abs=1e-12)


@pytest.mark.parametrize("k", [2, 3, 12])
@pytest.mark.parametrize("correction", [False, True])
def test_chi2_agrees_with_scipy(k: int, correction: bool) -> None:
    rng = np.random.default_rng(k)
    labels = np.array([f"v{i}" for i in range(k)])
    ref = rng.choice(labels, 500, p=np.full(k, 1 / k))
    cur = rng.choice(labels, 700, p=np.arange(1, k + 1) / (k * (k + 1) / 2))
    s = Chi2(correction=correction).exact(ref, cur)
    table = [s.details["ref_counts"], s.details["cur_counts"]]
    res = stats.chi2_contingency(table, correction=correction)
    assert close(s.statistic, float(res.statistic)) and close(s.p_value, float(res.pvalue))
    assert s.details["dof"] == k - 1
    # and the table is the one counted by hand
    assert dict(zip(s.details["categories"], s.details["ref_counts"], strict=True)) == {
        v: float((ref == v).sum()) for v in labels if (ref == v).any() or (cur == v).any()
    }


def test_chi2_integer_codes_and_missing_labels() -> None:
    codes = Chi2().exact(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 1, 2]))
    labels = Chi2().exact(
        np.array(["a", "a", "b", None, "c", "c", "c"], dtype=object),
        np.array(["a", "b", "b", "b", "c", np.nan], dtype=object),
    )
    res = stats.chi2_contingency([[2, 1, 3], [1, 3, 1]], correction=False)
    for s in (codes, labels):
        assert close(s.statistic, float(res.statistic)) and close(s.p_value, float(res.pvalue))


def test_ztest_hand_case() -> None:
    # 40/100 vs 60/100: pooled 0.5, se = sqrt(0.25 * 0.02), z = 0.2 / se = 2 sqrt 2, p = erfc(z / sqrt 2).
    s = ZTest().exact(np.array([True] * 40 + [False] * 60), np.array([True] * 60 + [False] * 40))
    assert s.statistic == pytest.approx(2 * math.sqrt(2), rel=1e-12)
    assert s.p_value == pytest.approx(math.erfc(2.0), rel=1e-12)
    # unequal sizes, by hand: 30/200 vs 45/150
    z = (45 / 150 - 30 / 200) / math.sqrt(75 / 350 * (275 / 350) * (1 / 200 + 1 / 150))
    s = ZTest().exact(np.r_[np.ones(30), np.zeros(170)], np.r_[np.ones(45), np.zeros(105)])
    assert s.statistic == pytest.approx(z, rel=1e-12)
    assert s.p_value == pytest.approx(math.erfc(abs(z) / math.sqrt(2)), rel=1e-12)
    # z^2 is the chi-square statistic of the 2 x 2 table without correction
    res = stats.chi2_contingency([[30, 170], [45, 105]], correction=False)
    assert s.statistic**2 == pytest.approx(res.statistic, rel=1e-12)


def test_ztest_profiles_are_exact() -> None:
    rng = np.random.default_rng(0)
    ref, cur = rng.random(5000) < 0.3, rng.random(7000) < 0.33
    exact, est = ZTest().exact(ref, cur), ZTest().on_profiles(col(ref), col(cur))
    assert est.statistic == exact.statistic and est.p_value == exact.p_value and est.bound == 0.0


# -- symmetric and identical cases ---------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [JensenShannon, Hellinger, TotalVariation, LInfinity, PSI])
def test_symmetric_distances_on_categories(cls: type) -> None:
    rng = np.random.default_rng(4)
    a, b = rng.choice(list("abcde"), 3000), rng.choice(list("abcdf"), 2000)
    assert close(cls().exact(a, b).statistic, cls().exact(b, a).statistic, 1e-12)


def test_ks_and_chi2_are_symmetric() -> None:
    rng = np.random.default_rng(5)
    a, b = rng.normal(0, 1, 30_000), rng.normal(0.02, 1, 20_000)
    assert KS().exact(a, b).statistic == KS().exact(b, a).statistic
    assert KS().exact(a, b).p_value == KS().exact(b, a).p_value
    x, y = rng.choice(list("abc"), 500), rng.choice(list("abc"), 400)
    assert close(Chi2().exact(x, y).statistic, Chi2().exact(y, x).statistic, 1e-12)


@pytest.mark.parametrize("cls", [KS, Wasserstein, *BINNED])
def test_identical_samples_show_no_drift(cls: type) -> None:
    x = np.random.default_rng(6).lognormal(0, 1, 30_000)
    s = cls().exact(x, x.copy())
    assert s.statistic == 0.0
    if s.p_value is not None:
        assert s.p_value == 1.0
    # KLL compaction is randomised: two sketches of the same data differ a little, within the bound.
    est = cls().on_profiles(col(x), col(x))
    assert est.statistic <= est.bound


def test_identical_categories_show_no_drift() -> None:
    x = np.random.default_rng(7).choice(list("abcd"), 1000)
    for cls in BINNED:
        assert cls().exact(x, x).statistic == 0.0
    s = Chi2().exact(x, x)
    assert s.statistic == 0.0 and s.p_value == 1.0


# -- the catalogue-wide contract -----------------------------------------------------------------------------


def _sample(kind: str, rng: np.random.Generator, n: int, drift: bool) -> np.ndarray:
    if kind == "numeric":
        return rng.normal(0.1 if drift else 0.0, 1.0, n)
    if kind == "categorical":
        p = np.array([0.5, 0.3, 0.15, 0.05])
        return rng.choice(
            np.array(["red", "green", "blue", "grey"]), n, p=p[::-1] * 0.2 + p * 0.8 if drift else p
        )
    if kind == "boolean":
        return rng.random(n) < (0.33 if drift else 0.3)
    raise AssertionError(kind)


CATALOGUE = [(name, kind) for name, cls in DriftMethod.registry().items() for kind in cls.kinds]


@pytest.mark.parametrize(("name", "kind"), CATALOGUE, ids=[f"{n}-{k}" for n, k in CATALOGUE])
def test_catalogue_contract(name: str, kind: str) -> None:
    cls = DriftMethod.registry()[name]
    rng = np.random.default_rng(11)
    ref, cur = _sample(kind, rng, 200_000, False), _sample(kind, rng, 200_000, True)
    method = cls()
    exact, est = method.exact(ref, cur), method.on_profiles(col(ref), col(cur))
    for s in (exact, est):
        assert isinstance(s, DriftStatistic) and s.method == name
        assert math.isfinite(s.statistic)
        if cls.is_test:
            assert s.p_value is not None and 0.0 <= s.p_value <= 1.0
        else:
            assert s.p_value is None and s.statistic >= 0.0
    assert est.bound is not None and est.bound >= 0.0
    assert abs(est.statistic - exact.statistic) <= est.bound + 1e-9 * max(1.0, abs(exact.statistic))
    with pytest.raises(ValueError, match="current"):
        method.exact(ref, ref[:0])
    with pytest.raises(ValueError, match="reference"):
        method.exact(ref[:0], cur)


# -- profiles against the exact numbers ----------------------------------------------------------------------


def _shapes(rng: np.random.Generator, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    def mixture(w: float) -> np.ndarray:
        return np.where(rng.random(n) < w, rng.normal(-2, 0.5, n), rng.normal(3, 1, n))

    return {
        "normal": (rng.normal(0, 1, n), rng.normal(0, 1, n)),
        "shift 0.1": (rng.normal(0, 1, n), rng.normal(0.1, 1, n)),
        "shift 0.5": (rng.normal(0, 1, n), rng.normal(0.5, 1, n)),
        "shift 1": (rng.normal(0, 1, n), rng.normal(1, 1, n)),
        "scale 1.5": (rng.normal(0, 1, n), rng.normal(0, 1.5, n)),
        "lognormal": (rng.lognormal(0, 1, n), rng.lognormal(0.2, 1.1, n)),
        "mixture": (mixture(0.3), mixture(0.45)),
        "pareto 3": (rng.pareto(3, n), rng.pareto(3, n) * 1.1),
        "pareto 1.2": (rng.pareto(1.2, n), rng.pareto(1.2, n)),
        "poisson": (rng.poisson(3, n).astype(float), rng.poisson(3.3, n).astype(float)),
        "zero-inflated": (
            np.where(rng.random(n) < 0.5, 0.0, rng.exponential(1, n)),
            np.where(rng.random(n) < 0.4, 0.0, rng.exponential(1, n)),
        ),
        "shift 3": (rng.normal(0, 1, n), rng.normal(3, 1, n)),
    }


def _profile_errors(n: int, seed: int) -> list[tuple[str, str, float, float, float]]:
    rows = []
    for shape, (ref, cur) in _shapes(np.random.default_rng(seed), n).items():
        pr, pc = col(ref), col(cur)
        for cls in NUMERIC:
            exact, est = cls().exact(ref, cur), cls().on_profiles(pr, pc)
            rows.append((shape, cls.name, exact.statistic, est.statistic, est.bound))
    return rows


@pytest.mark.parametrize(("n", "seed"), [(100_000, 0), (200_000, 1), (1_000_000, 2)])
def test_profiles_within_stated_bounds(n: int, seed: int) -> None:
    failures = [
        f"{shape} {name}: exact {e:.4f}, profiles {p:.4f}, bound {b:.4f}"
        for shape, name, e, p, b in _profile_errors(n, seed)
        if not abs(p - e) <= b
    ]
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("n", "seed"), [(100_000, 3), (1_000_000, 4)])
def test_required_bounds_ks_and_psi(n: int, seed: int) -> None:
    """The required 0.01: KS within it (KLL is randomised and unseedable, so a rare comparison may reach the
    stated 0.015; at most one here), PSI within it for continuous columns wherever PSI < 0.1, the "no
    significant change" range (above it, and for mass points, the bound in psi.py grows with PSI)."""
    rows = _profile_errors(n, seed)
    ks = np.array([abs(p - e) for _, name, e, p, _ in rows if name == "ks"])
    assert ks.max() <= 0.015 and (ks > 0.01).sum() <= 1
    psi = [
        abs(p - e) for shape, name, e, p, _ in rows if name == "psi" and e < 0.1 and shape != "zero-inflated"
    ]
    assert len(psi) >= 5 and max(psi) <= 0.01


def test_numeric_profile_bins_match_exact_bins_on_integers() -> None:
    # Few distinct values: the sketch's quantiles and CDF hit the same values, so the bins are identical.
    rng = np.random.default_rng(8)
    ref, cur = rng.integers(0, 6, 100_000).astype(float), rng.integers(1, 7, 80_000).astype(float)
    exact, est = bin_numeric(ref, cur), bin_numeric_profiles(col(ref), col(cur))
    np.testing.assert_array_equal(exact.edges, est.edges)
    np.testing.assert_allclose(est.ref_counts, exact.ref_counts, atol=0.01 * ref.size)


def test_categorical_profiles_are_exact_below_the_sketch_limit() -> None:
    rng = np.random.default_rng(9)
    labels = np.array([f"k{i}" for i in range(300)])
    ref, cur = rng.choice(labels[:250], 50_000), rng.choice(labels[50:], 40_000)
    for cls in [*BINNED, Chi2]:
        exact, est = cls().exact(ref, cur), cls().on_profiles(col(ref), col(cur))
        assert est.bound == 0.0 and close(est.statistic, exact.statistic, 1e-12), cls.name
        if exact.p_value is not None:
            assert close(est.p_value, exact.p_value, 1e-12)


def test_categorical_profiles_beyond_the_sketch_limit_use_an_other_cell() -> None:
    rng = np.random.default_rng(10)
    heavy = np.array([f"h{i}" for i in range(5)])
    ref = np.concatenate([rng.choice(heavy, 60_000), np.array([f"r{i}" for i in range(5000)])])
    cur = np.concatenate([rng.choice(heavy, 60_000), np.array([f"c{i}" for i in range(5000)])])
    s = TotalVariation().on_profiles(col(ref), col(cur))
    assert s.bound is None and s.details["exact"] is False and s.details["categories"][-1] is None
    assert set(s.details["categories"][:-1]) == set(heavy.tolist())
    # The coarser table cannot show more divergence than the full one (data-processing inequality).
    assert s.statistic <= TotalVariation().exact(ref, cur).statistic + 1e-12
    assert sum(s.details["ref_counts"]) == ref.size and sum(s.details["cur_counts"]) == cur.size


# -- edge cases ----------------------------------------------------------------------------------------------


def test_constant_reference_gets_a_bin_below_it() -> None:
    ref = np.full(1000, 5.0)
    below, same, above = np.full(500, 4.0), np.full(500, 5.0), np.full(500, 6.0)
    b = bin_numeric(ref, below)
    assert b.edges.tolist() == [np.nextafter(5.0, -np.inf), 5.0]
    assert b.ref_counts.tolist() == [0, 1000, 0] and b.cur_counts.tolist() == [500, 0, 0]
    for cur in (below, above):
        assert TotalVariation().exact(ref, cur).statistic == 1.0
        assert PSI().exact(ref, cur).statistic > 10
        assert TotalVariation().on_profiles(col(ref), col(cur)).statistic == 1.0
    assert PSI().exact(ref, same).statistic == 0.0
    assert PSI().on_profiles(col(ref), col(same)).statistic == 0.0


def test_zero_inflated_reference_separates_negatives() -> None:
    rng = np.random.default_rng(12)
    ref = np.where(rng.random(10_000) < 0.5, 0.0, rng.exponential(1, 10_000))
    b = bin_numeric(ref, -ref)
    assert b.edges[0] < 0.0 == b.edges[1] and b.ref_counts[0] == 0
    assert b.cur_counts[0] == (ref > 0).sum()


def test_constant_columns_ks_and_wasserstein() -> None:
    same = KS().exact(np.full(50, 2.0), np.full(70, 2.0))
    assert same.statistic == 0.0 and same.p_value == 1.0
    apart = KS().exact(np.full(20_000, 2.0), np.full(20_000, 3.0))
    assert apart.statistic == 1.0 and apart.p_value == 0.0
    w = Wasserstein().exact(np.full(10, 2.0), np.full(10, 2.0))
    assert w.statistic == 0.0 and w.details["ref_std"] == 0.0
    w = Wasserstein().exact(np.full(10, 2.0), np.array([2.0, 3.0]))
    assert w.statistic == math.inf and w.details["distance"] == 0.5
    assert Wasserstein().on_profiles(col(np.full(10, 2.0)), col(np.array([2.0, 3.0]))).statistic == math.inf


def test_category_on_one_side_only() -> None:
    ref, cur = np.array(["a"] * 100), np.array(["a"] * 50 + ["new"] * 50)
    for cls in BINNED:
        s = cls().exact(ref, cur)
        assert s.details["categories"] == ["a", "new"] and s.details["ref_counts"] == [100.0, 0.0]
        assert s.statistic > 0 and math.isfinite(s.statistic)
    assert TotalVariation().exact(ref, cur).statistic == 0.5
    chi = Chi2().exact(ref, cur)
    res = stats.chi2_contingency([[100, 0], [50, 50]], correction=False)
    assert close(chi.statistic, float(res.statistic)) and close(chi.p_value, float(res.pvalue))


@pytest.mark.parametrize("cls", [KS, Wasserstein, *BINNED])
def test_empty_or_non_finite_samples_are_named(cls: type) -> None:
    x = np.arange(10.0)
    with pytest.raises(ValueError, match="current sample is empty"):
        cls().exact(x, np.array([]))
    with pytest.raises(ValueError, match="reference sample is empty"):
        cls().exact(np.array([np.nan, np.inf]), x)


def test_empty_categorical_and_boolean_samples_are_named() -> None:
    with pytest.raises(ValueError, match="current sample is empty"):
        Chi2().exact(np.array(["a", "b"]), np.array([None, None], dtype=object))
    with pytest.raises(ValueError, match="current sample is empty"):
        ZTest().exact(np.array([True, False]), np.array([], dtype=bool))
    with pytest.raises(ValueError, match="holds no"):
        KS().on_profiles(col(np.arange(5.0)), col(np.array(["a"])))


def test_non_finite_values_are_left_out() -> None:
    rng = np.random.default_rng(13)
    ref, cur = rng.normal(0, 1, 2000), rng.normal(0.2, 1, 3000)
    dirty = np.concatenate([cur, [np.nan, np.inf, -np.inf]])
    for cls in NUMERIC:
        assert cls().exact(ref, dirty).statistic == cls().exact(ref, cur).statistic


def test_all_equal_values_on_both_sides() -> None:
    x = np.full(1000, 7.0)
    for cls in BINNED:
        assert cls().exact(x, x).statistic == 0.0
        assert cls().on_profiles(col(x), col(x)).statistic == 0.0
    z = ZTest().exact(np.ones(10, dtype=bool), np.ones(20, dtype=bool))
    assert z.statistic == 0.0 and z.p_value == 1.0


def test_heavy_tails_stay_finite() -> None:
    rng = np.random.default_rng(14)
    ref, cur = rng.pareto(0.8, 100_000), rng.pareto(0.8, 100_000) * 1.5  # infinite mean
    for cls in NUMERIC:
        exact, est = cls().exact(ref, cur), cls().on_profiles(col(ref), col(cur))
        assert math.isfinite(exact.statistic) and math.isfinite(est.statistic)
        assert abs(est.statistic - exact.statistic) <= est.bound, cls.name


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        PSI(n_bins=1)
    with pytest.raises(ValueError, match="epsilon"):
        KL(epsilon=-1e-3)
    with pytest.raises(ValueError, match="booleans"):
        ZTest().exact(np.array([0, 1, 2]), np.array([0, 1]))
    with pytest.raises(ValueError, match="compares"):
        PSI().exact(np.array([True, False]), np.array([True]), kind="vector")
