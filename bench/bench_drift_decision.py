"""The default drift decision of ``wk.drift`` at every sample size, over many seeded trials: how often it
flags columns that did not change, and how often it finds the stated shifts.

The bar (issue): the default decision per column, on synthetic cases at N = 1k, 10k, 100k and 1M rows:
on no-drift controls at most 1% of columns flagged at every N; shifts above a stated effect size (0.1
standard deviations in the mean, a 5-point change in a category's share) detected in at least 99% of trials
from 10k rows up. ``tests/drift/test_decision.py`` is the small version of this suite; this is the big one.

Run: ``.venv/bin/python bench/bench_drift_decision.py`` (about 7 minutes on 2 cores; ``--quick`` for a
smoke run of well under a minute, with few trials). The exit code is 0 whether or not a bar is met; it is
non-zero only when the benchmark itself fails (an exception, or a column that ``wk.drift`` did not compare).

The cases: every trial draws one reference frame and one current frame of N rows with 27 columns, each
column drawn independently, and calls ``wk.drift(ref, cur)`` once on the whole frame (so Holm's adjustment
runs over 27 columns, as it would on a real table). Each of 9 shapes appears three times:

- ``null``: the current column is drawn from the same distribution as the reference: a no-drift control.
- ``shift``: the stated effect. Numeric: the mean moves by 0.1 of the distribution's standard deviation
  (the population's, not the sample's; a Poisson column moves its rate from 4 to 4.2, which keeps it
  integer). Categorical: one level's share changes by 5 percentage points.
- ``tiny``: a real but negligible change, a tenth of the stated one (0.01 sd; half a point). The bar says
  nothing about it; it is here to show what the effect-size floor is for: at a million rows a test alone
  finds it.

Numeric shapes: normal(10, 3); lognormal(0, 0.5); Student-t with 3 degrees of freedom (heavy tails, finite
variance); Pareto with shape 3 (``1 + numpy pareto(3)``; heavy right tail, finite variance); Poisson(4)
(integers, many ties); a bimodal mixture of normal(-2, 1) and normal(2, 1). The Pareto's shift also moves
its minimum, 1, so a test finds it at small N too: below 1.087 lie 22% of the reference and none of the
current values. Categorical shapes, 10 levels each, as strings: ``uniform`` (a shift moves 5 points from
level 1 to level 0), ``zipf`` (shares proportional to 1/k; level 0, at 34%, gains 5 points taken from the
others in proportion) and ``skewed`` (50/20/10/5/5/4/3/1/1/1%; 5 points move from level 0 to level 1, the
hardest place for a test, near a 50% share).

Trials: 500 at N = 1k, 200 at 10k, 50 at 100k, 10 at 1M, with N = 200 (500 trials) in front, outside the
bar, for the contrast below. Each trial is one column per case, so a case's rate at N is over that many
columns, and the pooled rates over 9 times as many. Every rate is printed with its exact (Clopper-Pearson)
two-sided 95% confidence interval's upper end (for false alarms) or lower end (for detections), from
``scipy.stats.beta``. PASS/MISS compares the observed pooled rate with the bar; the bound says how far the
trials could be off. At 1M, 10 trials cannot show a rate below 1% with confidence (no flag in 90 control
columns still allows 4%); ``tests/`` and the smaller sizes carry that weight.

From profiles: production monitoring compares profiles, not raw frames, so on the first 20 trials at 100k
and the first 5 at 1M the same frames are also compared as ``wk.drift(wk.profile(ref), wk.profile(cur))``
(tests and effects estimated from the sketches), and its rates are printed too.

The contrast, computed on the same columns: (a) a plain test without effect floor or multiple-test
correction, two-sample Kolmogorov-Smirnov (``scipy.stats.ks_2samp``, asymptotic p-value) for numeric
columns and chi-square (``scipy.stats.chi2_contingency``) for categorical ones, flagging p < 0.05; (b) a
fixed threshold, ``PSI >= 0.1`` (watchkeeper's ``PSI().exact``: deciles of the reference, or categories).
(a) flags the negligible changes at a million rows (and 5% of controls at every N); (b) fires on controls when
samples are small (N = 200; at N = 1k a decile PSI of two samples from one distribution stays far below 0.1)
and misses the stated shift at every N except where the Pareto's minimum moves.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

import watchkeeper as wk
from watchkeeper.drift.psi import PSI

SEED = 20240918
FP_BAR = 0.01  # no-drift controls flagged, at most, at every N
DETECT_BAR = 0.99  # stated shifts found, at least ...
DETECT_FROM = 10_000  # ... from this N up
BAR_SIZES = (1_000, 10_000, 100_000, 1_000_000)
CONTRAST_SIZE = 200
NAIVE_ALPHA = 0.05
PSI_THRESHOLD = 0.1

TRIALS = {200: 500, 1_000: 500, 10_000: 200, 100_000: 50, 1_000_000: 10}
PROFILE_TRIALS = {100_000: 20, 1_000_000: 5}
QUICK_TRIALS = {200: 40, 1_000: 40, 10_000: 15, 100_000: 3, 1_000_000: 1}
QUICK_PROFILE_TRIALS = {100_000: 2, 1_000_000: 1}

VARIANTS = ("null", "tiny", "shift")
STATED_SD = 0.1  # a shift of the mean by this many standard deviations ...
STATED_POINTS = 0.05  # ... or of one category's share by this much
TINY = 0.1  # the negligible change, as a fraction of the stated one

LEVELS = np.array([f"level_{k}" for k in range(10)])
RULES = ("default", "profiles", "naive_p", "psi")


# --- the cases ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumericShape:
    name: str
    sd: float  # the population standard deviation
    draw: Callable[[np.random.Generator, int, float], np.ndarray]  # (rng, size, mean shift in sd) -> values


def _bimodal(rng: np.random.Generator, n: int, d: float) -> np.ndarray:
    centre = np.where(rng.random(n) < 0.5, -2.0, 2.0)
    return centre + rng.normal(0.0, 1.0, n) + d * math.sqrt(5.0)


LOGNORMAL_SD = math.sqrt((math.exp(0.25) - 1.0) * math.exp(0.25))
NUMERIC = (
    NumericShape("normal", 3.0, lambda rng, n, d: rng.normal(10.0 + 3.0 * d, 3.0, n)),
    NumericShape("lognormal", LOGNORMAL_SD, lambda rng, n, d: rng.lognormal(0.0, 0.5, n) + d * LOGNORMAL_SD),
    NumericShape("student_t3", math.sqrt(3.0), lambda rng, n, d: rng.standard_t(3.0, n) + d * math.sqrt(3.0)),
    NumericShape(
        "pareto3", math.sqrt(0.75), lambda rng, n, d: 1.0 + rng.pareto(3.0, n) + d * math.sqrt(0.75)
    ),
    NumericShape("poisson4", 2.0, lambda rng, n, d: rng.poisson(4.0 + 2.0 * d, n)),
    NumericShape("bimodal", math.sqrt(5.0), _bimodal),
)


def _zipf() -> np.ndarray:
    w = 1.0 / np.arange(1, 11)
    return w / w.sum()


def _move(shares: np.ndarray, to: int, frm: int | None, points: float) -> np.ndarray:
    """``points`` of share moved to level ``to``: from level ``frm``, or from all others in proportion."""
    out = shares.copy()
    out[to] += points
    if frm is None:
        others = np.arange(out.size) != to
        out[others] *= (1.0 - out[to]) / out[others].sum()
    else:
        out[frm] -= points
    return out


@dataclass(frozen=True)
class CategoricalShape:
    name: str
    shares: np.ndarray
    to: int
    frm: int | None

    def current(self, points: float) -> np.ndarray:
        return _move(self.shares, self.to, self.frm, points)


SKEWED = np.array([0.5, 0.2, 0.1, 0.05, 0.05, 0.04, 0.03, 0.01, 0.01, 0.01])
CATEGORICAL = (
    CategoricalShape("uniform", np.full(10, 0.1), 0, 1),
    CategoricalShape("zipf", _zipf(), 0, None),
    CategoricalShape("skewed", SKEWED, 1, 0),
)
SHAPES = [s.name for s in NUMERIC] + [s.name for s in CATEGORICAL]
KIND = {**{s.name: "numeric" for s in NUMERIC}, **{s.name: "categorical" for s in CATEGORICAL}}


def _size(variant: str) -> float:
    return {"null": 0.0, "tiny": TINY, "shift": 1.0}[variant]


def make_trial(n: int, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """One trial's reference and current columns, ``shape.variant`` -> values (categorical: level codes)."""
    ref, cur = {}, {}
    for shape in NUMERIC:
        for variant in VARIANTS:
            name = f"{shape.name}.{variant}"
            ref[name] = shape.draw(rng, n, 0.0)
            cur[name] = shape.draw(rng, n, STATED_SD * _size(variant))
    for shape in CATEGORICAL:
        for variant in VARIANTS:
            name = f"{shape.name}.{variant}"
            ref[name] = rng.choice(10, size=n, p=shape.shares)
            cur[name] = rng.choice(10, size=n, p=shape.current(STATED_POINTS * _size(variant)))
    return ref, cur


def as_frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(
        {name: LEVELS[v] if KIND[name.split(".")[0]] == "categorical" else v for name, v in columns.items()}
    )


# --- the rules ---------------------------------------------------------------------------------------------


def naive_p(kind: str, a: np.ndarray, b: np.ndarray) -> bool:
    """(a) a plain test, p < 0.05: KS for numbers, chi-square for categories; no floor, no correction."""
    if kind == "numeric":
        return bool(stats.ks_2samp(a, b, method="asymp").pvalue < NAIVE_ALPHA)
    table = np.vstack([np.bincount(a, minlength=10), np.bincount(b, minlength=10)])
    table = table[:, table.sum(axis=0) > 0]
    return bool(stats.chi2_contingency(table, correction=False).pvalue < NAIVE_ALPHA)


def naive_psi(kind: str, a: np.ndarray, b: np.ndarray) -> bool:
    """(b) a fixed distance threshold, PSI >= 0.1."""
    if kind == "categorical":
        a, b = LEVELS[a], LEVELS[b]
    return PSI().exact(a, b).statistic >= PSI_THRESHOLD


def flags(result: Any, names: list[str], n: int, rule: str) -> dict[str, bool]:
    """Each column's verdict from a ``wk.drift`` result; stops the benchmark if one was not compared."""
    out = {}
    for name in names:
        col = result[name]
        if col.drifted is None:
            raise RuntimeError(f"N={n}, {rule}: column {name} was not compared: {col.status}, {col.message}")
        out[name] = bool(col.drifted)
    return out


# --- running -----------------------------------------------------------------------------------------------


Counts = dict[tuple[int, str, str, str], list[int]]  # (n, rule, shape, variant) -> [flagged, columns]


def run_size(n: int, trials: int, profile_trials: int, counts: Counts, seconds: dict[int, float]) -> None:
    rng = np.random.default_rng([SEED, n])
    t0 = time.perf_counter()
    for trial in range(trials):
        ref, cur = make_trial(n, rng)
        names = list(ref)
        ref_df, cur_df = as_frame(ref), as_frame(cur)
        verdicts = {"default": flags(wk.drift(ref_df, cur_df), names, n, "default")}
        if trial < profile_trials:
            res = wk.drift(wk.profile(ref_df), wk.profile(cur_df))
            verdicts["profiles"] = flags(res, names, n, "profiles")
        verdicts["naive_p"] = {c: naive_p(KIND[c.split(".")[0]], ref[c], cur[c]) for c in names}
        verdicts["psi"] = {c: naive_psi(KIND[c.split(".")[0]], ref[c], cur[c]) for c in names}
        for rule, by_column in verdicts.items():
            for name, flagged in by_column.items():
                shape, variant = name.split(".")
                cell = counts[(n, rule, shape, variant)]
                cell[0] += flagged
                cell[1] += 1
    seconds[n] = time.perf_counter() - t0


# --- report ------------------------------------------------------------------------------------------------


def upper(k: int, n: int) -> float:
    """Upper end of the two-sided 95% Clopper-Pearson interval of a rate k/n."""
    return 1.0 if k >= n else float(stats.beta.ppf(0.975, k + 1, n - k))


def lower(k: int, n: int) -> float:
    """Lower end of the two-sided 95% Clopper-Pearson interval of a rate k/n."""
    return 0.0 if k <= 0 else float(stats.beta.ppf(0.025, k, n - k + 1))


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def pooled(counts: Counts, n: int, rule: str, shapes: list[str], variant: str) -> tuple[int, int]:
    """(flagged, columns) of ``rule`` at ``n`` over ``shapes``, one variant."""
    cells = [counts[key] for s in shapes if (key := (n, rule, s, variant)) in counts]
    return sum(c[0] for c in cells), sum(c[1] for c in cells)


def pct(k: int, m: int) -> str:
    return f"{100.0 * k / m:.2f}%" if m else "-"


def print_table(counts: Counts, n: int, rule: str) -> None:
    header = (
        f"  {'case':<12}{'kind':<12}{'null flagged':>14}{'rate':>8}{'95% up':>8}"
        f"{'tiny flagged':>14}{'rate':>8}{'shift found':>13}{'rate':>9}{'95% low':>9}"
    )
    if rule == "default":
        header += f"{'p<.05 null':>12}{'p<.05 tiny':>11}{'PSI null':>10}{'PSI shift':>10}"
    print(header)
    groups = [([s], s) for s in SHAPES]
    groups += [([s.name for s in NUMERIC], "all numeric"), ([s.name for s in CATEGORICAL], "all categ.")]
    groups += [(SHAPES, "all")]
    for shapes, label in groups:
        null, tiny, shift = (pooled(counts, n, rule, shapes, v) for v in VARIANTS)
        if null[1] == 0:
            continue
        kind = KIND.get(label, "")
        line = (
            f"  {label:<12}{kind:<12}{f'{null[0]}/{null[1]}':>14}{pct(*null):>8}"
            f"{100 * upper(*null):>7.2f}%{f'{tiny[0]}/{tiny[1]}':>14}{pct(*tiny):>8}"
            f"{f'{shift[0]}/{shift[1]}':>13}{pct(*shift):>9}{100 * lower(*shift):>8.2f}%"
        )
        if rule == "default":
            naive = [pooled(counts, n, r, shapes, v) for r, v in (("naive_p", "null"), ("naive_p", "tiny"))]
            naive += [pooled(counts, n, "psi", shapes, v) for v in ("null", "shift")]
            line += "".join(f"{pct(*c):>{w}}" for c, w in zip(naive, (12, 11, 10, 10), strict=True))
        print(line)


def verdict_lines(counts: Counts, n: int, rule: str, label: str) -> list[str]:
    lines = []
    null = pooled(counts, n, rule, SHAPES, "null")
    shift = pooled(counts, n, rule, SHAPES, "shift")
    if null[1]:
        rate, up = null[0] / null[1], upper(*null)
        tag = mark(rate <= FP_BAR) if n in BAR_SIZES else "----"
        lines.append(
            f"{tag}  N={n:,}{label}: no-drift controls flagged {null[0]} of {null[1]:,} = {pct(*null)} "
            f"(95% upper bound {100 * up:.2f}%{', below the bar' if up <= FP_BAR else ''}; "
            f"bar <= {FP_BAR:.0%})"
        )
    if shift[1]:
        rate, lo = shift[0] / shift[1], lower(*shift)
        rates = {s: (k / m, k, m) for s in SHAPES for k, m in [pooled(counts, n, rule, [s], "shift")] if m}
        worst = min(rates, key=lambda s: rates[s][0])
        detail = f"; lowest: {worst} {rates[worst][1]}/{rates[worst][2]} = {pct(*rates[worst][1:])}"
        if n >= DETECT_FROM:
            lines.append(
                f"{mark(rate >= DETECT_BAR)}  N={n:,}{label}: stated shifts found in {shift[0]} of "
                f"{shift[1]:,} = {pct(*shift)} (95% lower bound {100 * lo:.2f}%; bar >= {DETECT_BAR:.0%})"
                + detail
            )
        else:
            lines.append(
                f"----  N={n:,}{label}: stated shifts found in {shift[0]} of {shift[1]:,} = {pct(*shift)} "
                f"(no bar below {DETECT_FROM:,} rows){detail}"
            )
    return lines


def report(counts: Counts, sizes: list[int], seconds: dict[int, float], trials: dict[int, int]) -> None:
    print()
    print(
        f"Python {platform.python_version()}, watchkeeper {wk.__version__}, pandas {pd.__version__}, "
        f"numpy {np.__version__}; default policy: alpha 0.01 with Holm over the 27 columns, effect floors "
        "0.05 sd (Wasserstein) and 2.5 points"
    )
    print(
        "rates are of columns; 95% bounds are Clopper-Pearson (two-sided 95%); null = no-drift control, "
        f"tiny = {STATED_SD * TINY:g} sd or {100 * STATED_POINTS * TINY:g} point, shift = {STATED_SD:g} sd "
        f"or {100 * STATED_POINTS:g} points"
    )
    print(
        f"contrast columns: p<.05 = plain KS (numeric) or chi-square (categorical) p < {NAIVE_ALPHA:g}, "
        f"no floor, no correction; PSI = PSI >= {PSI_THRESHOLD:g}"
    )
    verdicts: list[str] = []
    for n in sizes:
        print()
        outside = " (outside the bar: a contrast size)" if n not in BAR_SIZES else ""
        print(f"N = {n:,}: {trials[n]} trial(s), {seconds[n]:.0f} s{outside}; wk.drift(ref_df, cur_df)")
        print_table(counts, n, "default")
        lines = verdict_lines(counts, n, "default", "")
        if pooled(counts, n, "profiles", SHAPES, "null")[1]:
            m = pooled(counts, n, "profiles", SHAPES, "null")[1] // len(SHAPES)
            print(
                f"N = {n:,}, the first {m} trial(s) again from profiles: "
                "wk.drift(wk.profile(ref), wk.profile(cur))"
            )
            print_table(counts, n, "profiles")
            lines += verdict_lines(counts, n, "profiles", " from profiles")
        for line in lines:
            print(line)
        verdicts += lines

    print()
    print("the contrast, on the same columns:")
    for n in sizes:
        p_null, p_tiny = (pooled(counts, n, "naive_p", SHAPES, v) for v in ("null", "tiny"))
        s_null, s_shift = (pooled(counts, n, "psi", SHAPES, v) for v in ("null", "shift"))
        d_tiny = pooled(counts, n, "default", SHAPES, "tiny")
        print(
            f"  N={n:>9,}: (a) p<.05 flags {pct(*p_null)} of controls and {pct(*p_tiny)} of negligible "
            f"changes (default rule: {pct(*d_tiny)}); (b) PSI>=0.1 flags {pct(*s_null)} of controls and "
            f"finds {pct(*s_shift)} of stated shifts"
        )
    print()
    print("verdicts:")
    for line in verdicts:
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few trials at every N: a smoke run")
    parser.add_argument("--sizes", help="comma-separated N (default 200,1000,10000,100000,1000000)")
    cfg = parser.parse_args(argv)

    trials = QUICK_TRIALS if cfg.quick else TRIALS
    profile_trials = QUICK_PROFILE_TRIALS if cfg.quick else PROFILE_TRIALS
    sizes = [int(s) for s in cfg.sizes.split(",")] if cfg.sizes else list(trials)
    unknown = [n for n in sizes if n not in trials]
    if unknown:
        sys.exit(f"sizes must be among {', '.join(map(str, trials))}; got {unknown}")

    counts: Counts = defaultdict(lambda: [0, 0])
    seconds: dict[int, float] = {}
    for n in sizes:
        extra = f", {profile_trials[n]} of them also from profiles" if n in profile_trials else ""
        print(f"N = {n:,}: {trials[n]} trial(s){extra} ...", flush=True)
        run_size(n, trials[n], profile_trials.get(n, 0), counts, seconds)
    report(counts, sizes, seconds, trials)


if __name__ == "__main__":
    main()
