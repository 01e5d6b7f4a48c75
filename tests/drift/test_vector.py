"""Drift of vector (embedding) columns: the statistic and effect against numpy, the profile form against the
exact one, the p-values' behaviour without drift, the default decision at N = 1k, 10k and 100k, the statuses
of columns that cannot be compared, and ``wk.drift`` / ``to_html`` with vector columns.

The decision suite here is the small version (trial counts in the parametrisation); the full one runs with
``WATCHKEEPER_FULL_DRIFT_SUITE=1`` and its measured rates are in :mod:`watchkeeper.drift.vector`.
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

import watchkeeper as wk
from watchkeeper.drift import adjust_p_values
from watchkeeper.drift.vector import MIN_ROWS, MeanShift, quadratic_form_sf
from watchkeeper.profile import ColumnProfile


class Embeddings:
    """Gaussian embeddings with a random low-rank-plus-diagonal covariance ``B B' + diag(D)``: ``d / 8``
    factors holding 60% of the variance (effective dimension about 9 at d = 32 and 36 at d = 128)."""

    def __init__(self, d: int, rng: np.random.Generator) -> None:
        k = max(2, d // 8)
        self.b = rng.normal(size=(d, k)) / math.sqrt(k)
        diag = rng.uniform(0.5, 1.5, d)
        diag *= (0.4 / 0.6) * np.einsum("ij,ij->", self.b, self.b) / diag.sum()
        self.sd_diag = np.sqrt(diag)
        self.mu = rng.normal(size=d)
        self.avg_sd = math.sqrt(float(np.mean(np.einsum("ij,ij->i", self.b, self.b) + diag)))
        self.d, self.k = d, k

    def draw(self, n: int, rng: np.random.Generator) -> np.ndarray:
        x = rng.standard_normal((n, self.k)) @ self.b.T
        x += self.sd_diag * rng.standard_normal((n, self.d))
        return x + self.mu

    def shift(self, effect: float, rng: np.random.Generator) -> np.ndarray:
        """A move of the mean by ``effect`` average standard deviations, in a random direction."""
        u = rng.normal(size=self.d)
        return effect * self.avg_sd * u / np.linalg.norm(u)


def vectors(x: np.ndarray) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(x).reshape(-1)), x.shape[1])


def col(x: np.ndarray) -> ColumnProfile:
    return ColumnProfile("emb").update(vectors(x))


def by_hand(ref: np.ndarray, cur: np.ndarray) -> tuple[float, float, float]:
    """(T, effect, norm change) written out with numpy."""
    n, m = len(ref), len(cur)
    a, b = ref.mean(axis=0), cur.mean(axis=0)
    r, c = ref.var(axis=0, ddof=1), cur.var(axis=0, ddof=1)
    w = r / n + c / m
    t = float(np.sum((b - a) ** 2 / w))
    effect = math.sqrt(max(0.0, float(np.sum((b - a) ** 2) - np.sum(w)))) / math.sqrt(float(np.mean(r)))
    norm_change = np.linalg.norm(cur, axis=1).mean() / np.linalg.norm(ref, axis=1).mean() - 1
    return t, effect, float(norm_change)


def test_statistic_effect_and_norm_change_against_numpy():
    rng = np.random.default_rng(1)
    ref = rng.normal(0, [1.0, 2.0, 0.5, 3.0], (400, 4))
    cur = rng.normal(0, [1.0, 2.0, 0.5, 3.0], (300, 4)) + np.array([0.3, 0.0, -0.1, 0.5])
    s = MeanShift().exact(ref, cur)
    t, effect, norm_change = by_hand(ref, cur)
    assert s.method == "mean_shift" and s.bound is None
    assert s.statistic == pytest.approx(t, rel=1e-12)
    assert s.details["effect"] == pytest.approx(effect, rel=1e-12)
    assert s.details["norm_change"] == pytest.approx(norm_change, rel=1e-12)
    assert s.details["distance"] == pytest.approx(np.linalg.norm(cur.mean(0) - ref.mean(0)), rel=1e-12)
    assert (s.details["dim"], s.details["n_ref"], s.details["n_cur"]) == (4, 400, 300)
    # hand-sized case: two rows per dimension pattern, T by arithmetic
    ref2 = np.array([[0.0, 0.0], [2.0, 2.0]] * 10)  # means (1, 1), variances 20/19
    cur2 = ref2 + np.array([1.0, 0.0])
    s2 = MeanShift().exact(ref2, cur2)
    w = 2 * (20 / 19) / 20
    assert s2.statistic == pytest.approx(1.0 / w, rel=1e-12)
    assert s2.details["effect"] == pytest.approx(math.sqrt(1.0 - 2 * w) / math.sqrt(20 / 19), rel=1e-12)


def test_effect_is_unbiased_where_the_plain_distance_is_not():
    # E||b - a||^2 = ||shift||^2 + sum_j w_j: at d = 32 and 1,000 rows a side the plain squared distance
    # overstates a true 0.3^2 = 0.09 by 2 d / N = 0.064; the effect subtracts it
    rng = np.random.default_rng(2)
    d, n, true = 32, 1000, 0.3
    shift = np.zeros(d)
    shift[0] = true
    effects, plain = [], []
    for _ in range(60):
        s = MeanShift().exact(rng.normal(size=(n, d)), rng.normal(size=(n, d)) + shift)
        effects.append(s.details["effect"] ** 2)
        plain.append((s.details["distance"] / s.details["ref_scale"]) ** 2)
    assert np.mean(effects) == pytest.approx(true**2, abs=0.01)
    assert np.mean(plain) == pytest.approx(true**2 + 2 * d / n, abs=0.01)


def test_profile_form_equals_the_exact_form():
    rng = np.random.default_rng(3)
    g = Embeddings(24, rng)
    ref = g.draw(5000, rng)
    cur = g.draw(4000, rng) + g.shift(0.2, rng)
    exact = MeanShift().exact(ref, cur)
    # the current profile merged from three parts: Chan's formula, as production windows merge
    parts = [col(cur[:1000]), col(cur[1000:2500]), col(cur[2500:])]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    est = MeanShift().on_profiles(col(ref), merged)
    assert est.bound == 0.0
    assert est.statistic == pytest.approx(exact.statistic, rel=1e-9)
    for key in ("effect", "distance", "ref_scale", "norm_ref", "norm_cur", "norm_change"):
        assert est.details[key] == pytest.approx(exact.details[key], rel=1e-9), key
    # the p-value from profiles is a bound for any correlation, so never below the exact form's here
    assert est.p_value >= exact.p_value


def test_saddlepoint_tail_against_chi_square_and_monte_carlo():
    for d, p in [(1, 1e-2), (1, 1e-12), (5, 1e-6), (20, 0.3), (20, 1e-10), (200, 1e-4)]:
        x = stats.chi2.isf(p, d)
        assert quadratic_form_sf(x, np.ones(d)) == pytest.approx(p, rel=0.1 if d == 1 else 0.02)
    rng = np.random.default_rng(4)
    lam = np.r_[10.0, 3.0, np.full(30, 0.5)]
    sims = (rng.standard_normal((400_000, lam.size)) ** 2) @ lam
    for q in (0.5, 0.9, 0.99, 0.999):
        x = float(np.quantile(sims, q))
        assert quadratic_form_sf(x, lam) == pytest.approx(1 - q, rel=0.08)
    assert quadratic_form_sf(0.0, lam) == 1.0 and quadratic_form_sf(math.inf, lam) == 0.0


def test_p_value_is_uniform_without_drift_and_chi_square_d_is_not():
    # 200 seeded no-drift trials at n = 2,000 a side, d = 32 with correlated dimensions
    rng = np.random.default_rng(5)
    p, p_chi2 = [], []
    for _ in range(200):
        g = Embeddings(32, rng)
        s = MeanShift().exact(g.draw(2000, rng), g.draw(2000, rng))
        p.append(s.p_value)
        p_chi2.append(stats.chi2.sf(s.statistic, 32))
    p, p_chi2 = np.array(p), np.array(p_chi2)
    assert 0.01 <= np.mean(p < 0.05) <= 0.10
    assert np.mean(p < 0.01) <= 0.03
    assert 0.35 <= np.mean(p < 0.5) <= 0.65
    # reading T as chi-square(d) ignores the correlations and calls drift far too often
    assert np.mean(p_chi2 < 0.01) >= 0.05


def test_profile_p_value_holds_when_dimensions_are_one_variable():
    # the worst case of the bound: all dimensions nearly one variable (rank one); the exact form knows the
    # correlation and is right too
    rng = np.random.default_rng(6)
    scales = rng.lognormal(0, 0.5, 16)
    flagged = exact_flagged = 0
    trials = 400
    for _ in range(trials):
        z = rng.standard_normal((400, 1)) * scales + 0.01 * rng.standard_normal((400, 16)) * scales
        ref, cur = z[:200], z[200:]
        flagged += MeanShift().on_profiles(col(ref), col(cur)).p_value < 0.01
        exact_flagged += MeanShift().exact(ref, cur).p_value < 0.01
    assert flagged <= 10 and exact_flagged <= 10  # P(more than 10 of 400 | 1%) < 0.3%
    # above 0.215 the bound does not hold, and the p-value says 1
    same = rng.normal(size=(500, 8))
    assert MeanShift().on_profiles(col(same), col(same.copy())).p_value == 1.0


def _frame(x: np.ndarray) -> pa.Table:
    return pa.table({"emb": vectors(x)})


def _flags(d: int, n: int, trials: int, effect: float, seed: int) -> tuple[int, int]:
    rng = np.random.default_rng(seed)
    raw = prof = 0
    for _ in range(trials):
        g = Embeddings(d, rng)
        ref, cur = g.draw(n, rng), g.draw(n, rng)
        if effect:
            cur += g.shift(effect, rng)
        a, b = _frame(ref), _frame(cur)
        r, p = wk.drift(a, b)["emb"], wk.drift(wk.profile(a), wk.profile(b))["emb"]
        assert r.status == "ok" and p.status == "ok"
        raw += bool(r.drifted)
        prof += bool(p.drifted)
    return raw, prof


FULL = os.environ.get("WATCHKEEPER_FULL_DRIFT_SUITE") == "1"
full_only = pytest.mark.skipif(not FULL, reason="the full suite: set WATCHKEEPER_FULL_DRIFT_SUITE=1")

# (d, n, trials): the small suite runs 2-30 trials per cell; the full one 40-400 (a few minutes)
NULL_CELLS = [(32, 1_000, 30), (128, 1_000, 20), (32, 10_000, 10), (128, 10_000, 6), (32, 100_000, 2)]
NULL_FULL = [
    (32, 1_000, 400),
    (128, 1_000, 400),
    (32, 10_000, 200),
    (128, 10_000, 200),
    (32, 100_000, 40),
    (128, 100_000, 40),
]


@pytest.mark.parametrize(
    ("d", "n", "trials"),
    [*NULL_CELLS, *(pytest.param(*c, marks=full_only) for c in NULL_FULL)],
)
def test_no_drift_controls_are_rarely_flagged(d, n, trials):
    # The exact form's test is calibrated at alpha = 1% (0.97% of 3,000 trials at d = 32, N = 1k), and at 1k
    # rows the effect floor adds little, so its rate is 1%, not below: the check is that the count is not
    # above what a true 1% gives in 999 of 1,000 runs. The profile form's p-value is a bound: well below.
    raw, prof = _flags(d, n, trials, 0.0, seed=d * n + trials)
    limit = int(stats.binom.ppf(0.999, trials, 0.01))
    assert raw <= limit and prof <= limit, f"flagged raw {raw}, profiles {prof} of {trials} at d={d} N={n}"


# A shift of 0.15 average standard deviations. The exact form finds it in every trial from 10k rows at
# d = 32 and from 30k at d = 128 (at 10k, about 80%: T's noise in 128 correlated dimensions); the profile
# form, whose p-value must hold for any correlation, from 30k at d = 32 and 100k at d = 128.
SHIFT_CELLS = [(32, 10_000, 8, "raw"), (32, 100_000, 2, "both")]
SHIFT_FULL = [
    (32, 10_000, 200, "raw"),
    (32, 30_000, 50, "both"),
    (128, 30_000, 50, "raw"),
    (32, 100_000, 40, "both"),
    (128, 100_000, 40, "both"),
]


@pytest.mark.parametrize(
    ("d", "n", "trials", "forms"),
    [*SHIFT_CELLS, *(pytest.param(*c, marks=full_only) for c in SHIFT_FULL)],
)
def test_a_shift_of_0_15_sd_is_found(d, n, trials, forms):
    raw, prof = _flags(d, n, trials, 0.15, seed=d * n + trials + 1)
    need = math.ceil(0.99 * trials)
    assert raw >= need, f"raw found {raw} of {trials} at d={d} N={n}"
    if forms == "both":
        assert prof >= need, f"profiles found {prof} of {trials} at d={d} N={n}"


def test_a_real_but_negligible_shift_stays_below_the_floor():
    rng = np.random.default_rng(8)
    ref = rng.normal(size=(100_000, 16))
    cur = rng.normal(size=(100_000, 16)) + np.r_[0.04, np.zeros(15)]  # 0.04 sd: real, negligible
    res = wk.drift(_frame(ref), _frame(cur))
    c = res["emb"]
    assert c.p_value < 1e-6 and c.effect == pytest.approx(0.04, abs=0.015)
    assert c.drifted is False and res.vector_min_effect == 0.1
    assert wk.drift(_frame(ref), _frame(cur), vector_min_effect=0.02)["emb"].drifted is True
    with pytest.raises(ValueError, match="vector_min_effect must not be negative"):
        wk.drift(_frame(ref), _frame(cur), vector_min_effect=-1)


def test_pandas_frames_and_profiles_give_the_same_decisions():
    rng = np.random.default_rng(9)
    g = Embeddings(16, rng)
    n = 5000
    moved = g.draw(n, rng) + g.shift(0.5, rng)
    ref = pd.DataFrame(
        {
            "emb": list(g.draw(n, rng)),  # a column of numpy arrays
            "same": [list(v) for v in g.draw(n, rng)],  # a column of lists
            "x": rng.normal(size=n),
        }
    )
    cur = pd.DataFrame(
        {"emb": list(moved), "same": [list(v) for v in g.draw(n, rng)], "x": rng.normal(size=n)}
    )
    raw = wk.drift(ref, cur)
    prof = wk.drift(wk.profile(ref), wk.profile(cur))
    assert raw.drifted_columns == prof.drifted_columns == ["emb"]
    for res in (raw, prof):
        assert res["same"].drifted is False and res["emb"].kind == "vector"
        assert res["emb"].method == "mean_shift" and res["emb"].effect_name == "mean shift/sd"
        assert res["emb"].effect == pytest.approx(0.5, abs=0.05)
        # one multiple-testing family over all three columns
        table = res.table()
        np.testing.assert_allclose(table["p_adjusted"], adjust_p_values(table["p_value"].to_numpy(), "holm"))
    assert prof["emb"].statistic == pytest.approx(raw["emb"].statistic, rel=1e-9)
    assert "mean norm" in raw["emb"].message and "bound" in prof["emb"].message


def test_columns_that_cannot_be_compared_get_a_status():
    rng = np.random.default_rng(10)
    n = 200
    ref = {
        "dims": [list(v) for v in rng.normal(size=(n, 8))],
        "nonfinite": [[math.nan, 1.0, 2.0]] * n,
        "few": [list(v) for v in rng.normal(size=(n, 3))],
        "only_ref": [list(v) for v in rng.normal(size=(n, 3))],
        "words": [["a", "b"]] * n,
        "ragged": [list(v) for v in rng.normal(size=(n, 4))],
    }
    cur = {
        "dims": [list(v) for v in rng.normal(size=(n, 12))],
        "nonfinite": [list(v) for v in rng.normal(size=(n, 3))],
        "few": [list(v) for v in rng.normal(size=(5, 3))] + [None] * (n - 5),
        "only_cur": [list(v) for v in rng.normal(size=(n, 3))],
        "words": [["a", "c"]] * n,
        "ragged": [list(v) for v in rng.normal(size=(n - 7, 4))] + [[1.0, 2.0]] * 7,
    }
    for res in (
        wk.drift(pd.DataFrame(ref), pd.DataFrame(cur)),
        wk.drift(wk.profile(pd.DataFrame(ref)), wk.profile(pd.DataFrame(cur))),
    ):
        status = {c.column: c.status for c in res}
        assert status["dims"] == "dimension mismatch"
        assert res["dims"].message == "vectors of dimension 8 in the reference, 12 in the current data"
        assert status["nonfinite"] == "no values" and res["nonfinite"].ref_missing == n
        assert status["few"] == "not compared"
        assert res["few"].message == (
            f"too few vectors to compare: {n} in the reference and 5 in the current data "
            f"(at least {MIN_ROWS} on each side)"
        )
        assert status["only_ref"] == "only in reference" and status["only_cur"] == "only in current"
        assert (
            status["ragged"] == "ok" and res["ragged"].cur_missing == 7 and res["ragged"].cur_count == n - 7
        )
        for c in res:
            assert c.status == "ok" or (c.drifted is None and c.message)
        assert res["words"].drifted is None
    # the raw path names what it left out
    assert (
        "7 rows of another length than 4 left out"
        in wk.drift(pd.DataFrame(ref), pd.DataFrame(cur))["ragged"].message
    )


def test_constant_vectors():
    ref = np.tile([1.0, 2.0, 3.0], (50, 1))
    same = MeanShift().exact(ref, ref.copy())
    assert (same.statistic, same.p_value, same.details["effect"]) == (0.0, 1.0, 0.0)
    moved = ref + np.array([0.0, 0.0, 1.0])
    for s in (MeanShift().exact(ref, moved), MeanShift().on_profiles(col(ref), col(moved))):
        assert math.isinf(s.statistic) and s.p_value == 0.0 and math.isinf(s.details["effect"])
    # one constant dimension on both sides is left out of T, the others are tested
    rng = np.random.default_rng(11)
    x, y = rng.normal(size=(300, 3)), rng.normal(size=(300, 3))
    x[:, 1] = y[:, 1] = 7.0
    s = MeanShift().exact(x, y)
    assert s.details["dims_tested"] == 2 and math.isfinite(s.statistic)


def test_bad_inputs_are_named():
    x = np.zeros((30, 4))
    with pytest.raises(ValueError, match="current sample is empty"):
        MeanShift().exact(x, np.full((5, 4), np.nan))
    with pytest.raises(ValueError, match="reference sample must be 2-D"):
        MeanShift().exact(np.zeros(30), x)
    with pytest.raises(ValueError, match="dimension 4 in the reference and 3 in the current"):
        MeanShift().exact(x, np.zeros((30, 3)))
    with pytest.raises(ValueError, match="holds no vectors"):
        MeanShift().on_profiles(ColumnProfile("x").update(pa.array([1.0, 2.0])), col(x))


def test_html_report_with_vector_columns():
    rng = np.random.default_rng(12)
    n = 2000
    ref = pd.DataFrame(
        {"emb": list(rng.normal(size=(n, 8))), "dims": list(rng.normal(size=(n, 4))), "x": rng.normal(size=n)}
    )
    cur = pd.DataFrame(
        {
            "emb": list(rng.normal(size=(n, 8)) + 0.3),
            "dims": list(rng.normal(size=(n, 5))),
            "x": rng.normal(size=n),
        }
    )
    for res in (wk.drift(ref, cur), wk.drift(wk.profile(ref), wk.profile(cur))):
        html = res.to_html()
        assert res["emb"].drifted is True and res["dims"].status == "dimension mismatch"
        assert "mean_shift" in html and "dimension mismatch" in html
        assert res["emb"].plot["type"] == "histogram" and len(res["emb"].plot["ref"]) == 30  # the norms
        assert html.count("<svg") == 2  # the vector column's norms and x's values
