"""``wk.drift``: compare a reference with current data, per column and for the whole dataset.

Raw data (any table ``wk.profile`` accepts) is compared exactly; two ``Profile`` objects are compared from
their sketches, with the bounds each method states. The per-column verdict and the dataset verdict follow
:mod:`watchkeeper.drift.decide`; a column that cannot be compared gets a status and a message, never a
silent NaN verdict.

Vector (embedding) columns follow the same rule with :mod:`watchkeeper.drift.vector`: the test of a shift
of the mean embedding joins the multiple-testing family like any column's test, and the effect that must
reach ``vector_min_effect`` (default 0.1) is the debiased distance between the mean embeddings in average
reference standard deviations. The default is twice the numeric floor (0.05 reference standard deviations
of Wasserstein distance) because a vector's distance adds up over its dimensions: a change of 0.005
standard deviations in every one of 384 dimensions, each far too small to matter, is already 0.1 in
total, while a shift of 0.1 along one direction is as visible as a numeric column's 0.1.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from watchkeeper.drift import decide
from watchkeeper.drift.base import DriftMethod, DriftStatistic
from watchkeeper.drift.binning import bin_categorical_profiles
from watchkeeper.drift.columns import (
    DIMENSION_MISMATCH,
    EMPTY,
    KIND_MISMATCH,
    NOT_COMPARED,
    OK,
    ONLY_CURRENT,
    ONLY_REFERENCE,
    ColumnPair,
    pair_column,
)
from watchkeeper.drift.vector import VECTOR, MeanShift
from watchkeeper.drift.welch import welch_from_moments
from watchkeeper.profile import Profile
from watchkeeper.profile.frames import as_frame

DEFAULT_TESTS = {
    "numeric": "ks+welch",
    "text": "ks+welch",
    "categorical": "chi2",
    "boolean": "ztest",
    "vector": "mean_shift",
}
VECTOR_EFFECT = "mean shift/sd"
EFFECTS = {
    "numeric": "wasserstein/std",
    "text": "wasserstein/std",
    "categorical": "max share change",
    "boolean": "max share change",
    "vector": VECTOR_EFFECT,
}
VECTOR_MIN_EFFECT = 0.1


@dataclass(frozen=True, slots=True)
class ColumnDrift:
    """The comparison of one column."""

    column: str
    kind: str
    status: str  # "ok" when compared; otherwise why not (see watchkeeper.drift.columns)
    drifted: bool | None  # None when the column was not compared
    method: str | None = None
    statistic: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    effect_name: str | None = None
    effect: float = math.nan
    message: str = ""
    ref_count: int = 0  # values compared (missing, NaN and ±inf left out)
    cur_count: int = 0
    ref_missing: int = 0
    cur_missing: int = 0
    rule: str = "default"  # "default", "test" (a chosen test: adjusted p < alpha) or "threshold"
    threshold: float | None = None  # for rule "threshold": drifted when statistic >= threshold
    plot: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DriftResult:
    columns: list[ColumnDrift]
    policy: decide.DriftPolicy
    source: str  # "raw" or "profiles"
    vector_min_effect: float = VECTOR_MIN_EFFECT  # the effect floor of vector columns (mean shift/sd)

    @property
    def compared(self) -> list[ColumnDrift]:
        return [c for c in self.columns if c.drifted is not None]

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        """Share of the compared columns that drifted (0 when none could be compared)."""
        n = len(self.compared)
        return len(self.drifted_columns) / n if n else 0.0

    @property
    def drifted(self) -> bool:
        """The dataset-level decision: at least ``policy.drift_share`` of the compared columns drifted."""
        return bool(self.compared) and self.share >= self.policy.drift_share

    def __getitem__(self, column: str) -> ColumnDrift:
        for c in self.columns:
            if c.column == column:
                return c
        raise KeyError(f"no column {column!r} in this drift result")

    def __iter__(self) -> Iterator[ColumnDrift]:
        return iter(self.columns)

    def table(self) -> Any:
        """A pandas DataFrame, one row per column: method, statistic, p-value, effect, drifted, status."""
        import pandas as pd

        rows = [
            {
                "column": c.column,
                "kind": c.kind,
                "method": c.method,
                "statistic": c.statistic,
                "p_value": c.p_value,
                "p_adjusted": c.p_adjusted,
                "effect_name": c.effect_name,
                "effect": c.effect,
                "drifted": c.drifted,
                "rule": c.rule,
                "threshold": c.threshold,
                "status": c.status,
                "message": c.message,
                "ref_count": c.ref_count,
                "cur_count": c.cur_count,
            }
            for c in self.columns
        ]
        return pd.DataFrame(rows).set_index("column")

    def to_html(self, path: str | None = None, *, title: str = "Drift report") -> str:
        """A self-contained HTML report; written to ``path`` when given. Returns the HTML."""
        from watchkeeper.report.drift import render

        html = render(self, title=title)
        if path is not None:
            with open(path, "w", encoding="utf-8") as f:
                f.write(html)
        return html

    def __repr__(self) -> str:
        top = sorted(self.compared, key=lambda c: -(c.effect if not math.isnan(c.effect) else -1))[:3]
        most = ", ".join(f"{c.column} ({c.effect:.3g})" for c in top if c.drifted)
        counts = f"{len(self.drifted_columns)} of {len(self.compared)} compared columns drifted"
        return f"DriftResult(drifted={self.drifted}, {counts}" + (f"; most: {most}" if most else "") + ")"


def drift(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    alpha: float = 0.01,
    correction: decide.Correction = "holm",
    numeric_min_effect: float = 0.05,
    categorical_min_effect: float = 0.025,
    drift_share: float = 0.5,
    vector_min_effect: float = VECTOR_MIN_EFFECT,
    method: str | Mapping[str, str] | None = None,
    threshold: float | Mapping[str, float] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference``: two tables (pandas, polars, Arrow, numpy, dicts, records) or
    two ``Profile`` objects. See :mod:`watchkeeper.drift.decide` for the decision rule and its settings;
    ``vector_min_effect`` is the effect floor of vector columns (see :mod:`watchkeeper.drift.vector`).

    ``method`` replaces the default rule by one catalogue method: for every column it covers (a name), or
    per column (a mapping). A chosen test (``ks``, ``welch``, ``chi2``, ``ztest``) decides by its adjusted
    p-value against ``alpha``; a chosen distance (``psi``, ``js``, ...) by ``threshold`` (a number, or one
    per column), and stays out of the multiple-testing family. ``progress(done, total, column)`` is called
    after each column is compared.
    """
    policy = decide.DriftPolicy(alpha, correction, numeric_min_effect, categorical_min_effect, drift_share)
    if not vector_min_effect >= 0.0:
        raise ValueError(f"vector_min_effect must not be negative, got {vector_min_effect}")
    choose = _chooser(method, threshold)
    if isinstance(reference, Profile) != isinstance(current, Profile):
        raise TypeError("compare two Profiles, or two tables: got one of each")
    if isinstance(reference, Profile):
        names = _names(reference, current, columns)
        results = _each(names, lambda name: _compare_profiles(name, reference, current, choose), progress)
        source = "profiles"
    else:
        ref_frame, cur_frame = as_frame(reference), as_frame(current)
        names = _names(ref_frame.names, cur_frame.names, columns)
        ref_names, cur_names = set(ref_frame.names), set(cur_frame.names)

        def compare(name: str) -> ColumnDrift:
            # one column of each side at a time: peak memory stays near one column's, not a copy of the frames
            ref = ref_frame.column(name) if name in ref_names else None
            cur = cur_frame.column(name) if name in cur_names else None
            return _compare_raw(pair_column(name, ref, cur), choose)

        results = _each(names, compare, progress)
        source = "raw"
    return DriftResult(_decide(results, policy, vector_min_effect), policy, source, vector_min_effect)


class _NotApplicable(ValueError):
    """The method chosen for a column does not cover its kind."""


Choice = tuple[str, float | None] | None


def _chooser(
    method: str | Mapping[str, str] | None, threshold: float | Mapping[str, float] | None
) -> Callable[[str, str], Choice]:
    """``choose(column, kind)``: (method, threshold) chosen for the column, or None for the default rule."""
    if method is None:
        if threshold is not None:
            raise ValueError("threshold= goes with method=: it is the decision value of a chosen distance")
        return lambda name, kind: None
    registry = DriftMethod.registry()
    named = set(method.values()) if isinstance(method, Mapping) else {method}
    unknown = sorted(m for m in named if m not in registry)
    if unknown:
        raise ValueError(f"unknown drift method(s) {unknown}; known: {', '.join(registry)}")
    for m in named:
        cls = registry[m]
        if cls.is_test and threshold is not None and not isinstance(threshold, Mapping):
            raise ValueError(f"method {m!r} is a test, decided by alpha; threshold= is for distances")
        if not cls.is_test and threshold is None:
            raise ValueError(
                f"method {m!r} is a distance: give threshold= (the value at which a column drifts)"
            )

    def choose(name: str, kind: str) -> Choice:
        m = method.get(name) if isinstance(method, Mapping) else method
        if m is None:
            return None
        cls = registry[m]
        covered = "numeric" if kind == "text" else kind  # free text is compared by its lengths
        if covered not in cls.kinds:
            if isinstance(method, Mapping):  # chosen for this very column: say why it cannot be used
                raise _NotApplicable(f"method {m!r} does not apply to {kind} columns")
            return None  # one method for all: columns it does not cover keep the default rule
        if cls.is_test:
            return m, None
        t = threshold.get(name) if isinstance(threshold, Mapping) else threshold
        if t is None:
            raise ValueError(f"column {name!r}: method {m!r} is a distance: give it a threshold")
        return m, float(t)

    return choose


def _chosen(
    base: ColumnDrift, stat: DriftStatistic, limit: float | None, plot: dict[str, Any]
) -> ColumnDrift:
    return replace(
        base,
        method=stat.method,
        statistic=stat.statistic,
        p_value=math.nan if stat.p_value is None else stat.p_value,
        rule="test" if limit is None else "threshold",
        threshold=limit,
        plot=plot,
    )


def _each(names: list[str], compare: Callable[[str], ColumnDrift], progress: Any) -> list[ColumnDrift]:
    out = []
    for i, name in enumerate(names):
        out.append(compare(name))
        if progress is not None:
            progress(i + 1, len(names), name)
    return out


def _names(ref: Any, cur: Any, columns: list[str] | None) -> list[str]:
    ref_names, cur_names = list(ref), list(cur)
    names = ref_names + [n for n in cur_names if n not in ref_names]
    if columns is None:
        return names
    unknown = [c for c in columns if c not in names]
    if unknown:
        raise KeyError(f"columns not in either dataset: {unknown}")
    return list(columns)


def _method(name: str) -> DriftMethod:
    return DriftMethod.registry()[name]()


# -- raw data ---------------------------------------------------------------------------------------------


def _compare_raw(pair: ColumnPair, choose: Callable[[str, str], Choice]) -> ColumnDrift:
    base = ColumnDrift(
        column=pair.name,
        kind=pair.kind,
        status=pair.status,
        drifted=None,
        message=pair.message,
        ref_count=0 if pair.ref is None else len(pair.ref),
        cur_count=0 if pair.cur is None else len(pair.cur),
        ref_missing=pair.ref_missing,
        cur_missing=pair.cur_missing,
    )
    if pair.status != OK:
        return base
    ref, cur = pair.ref, pair.cur
    assert ref is not None and cur is not None
    try:
        chosen = choose(pair.name, pair.kind)
    except _NotApplicable as exc:
        return replace(base, status=NOT_COMPARED, message=str(exc))
    try:
        if pair.kind == VECTOR:
            plot = {**_numeric_plot(np.sort(_norms(ref)), np.sort(_norms(cur))), "label": NORM_LABEL}
            if chosen is not None:
                return _chosen(base, _method(chosen[0]).exact(ref, cur, kind=VECTOR), chosen[1], plot)
            return _vector(base, MeanShift().exact(ref, cur), plot)
        if pair.kind in ("numeric", "text"):
            # sorted once here; KS, Wasserstein and the plot all read the sorted samples
            ref, cur = np.sort(ref), np.sort(cur)
            plot = _numeric_plot(ref, cur)
            if chosen is not None:
                return _chosen(base, _method(chosen[0]).exact(ref, cur, kind="numeric"), chosen[1], plot)
            ks, w = _method("ks").exact(ref, cur), _method("wasserstein").exact(ref, cur)
            return _numeric(base, ks, w, _welch_raw(ref, cur), plot)
        labels = pair.labels
        k = len(labels)
        p = np.bincount(ref, minlength=k) / ref.size
        q = np.bincount(cur, minlength=k) / cur.size
        plot = _categorical_plot(labels, p, q)
        if pair.kind == "boolean":  # the z-test's sign says which way the share of True moved
            truth = np.array([bool(v) for v in labels])
            ref, cur = truth[ref], truth[cur]
        kind = "boolean" if pair.kind == "boolean" else "categorical"  # the codes are labels, not numbers
        if chosen is not None:
            return _chosen(base, _method(chosen[0]).exact(ref, cur, kind=kind), chosen[1], plot)
        test = _method("ztest" if pair.kind == "boolean" else "chi2").exact(ref, cur, kind=kind)
        return _categorical(base, test, float(np.max(np.abs(p - q))), plot)
    except ValueError as exc:
        return replace(base, status=NOT_COMPARED, message=str(exc))


def _welch_raw(ref: np.ndarray, cur: np.ndarray) -> float:
    """Welch's p-value; 1 (no evidence) when a side has fewer than two values, where KS alone decides."""
    if ref.size < 2 or cur.size < 2:
        return 1.0
    p = _method("welch").exact(ref, cur).p_value
    return 1.0 if p is None else p


def _numeric(
    base: ColumnDrift, ks: DriftStatistic, w: DriftStatistic, p_welch: float, plot: dict[str, Any]
) -> ColumnDrift:
    assert ks.p_value is not None
    return replace(
        base,
        method="ks+welch",
        statistic=ks.statistic,
        p_value=decide.combine_two(ks.p_value, p_welch),
        effect_name="wasserstein/std",
        effect=w.statistic,
        plot=plot,
    )


def _norms(x: np.ndarray) -> np.ndarray:
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def _vector(base: ColumnDrift, test: DriftStatistic, plot: dict[str, Any]) -> ColumnDrift:
    """The default rule's row for a vector column; the message gives the mean norm's change."""
    d = test.details or {}
    note = f"dimension {d['dim']}; mean norm {d['norm_ref']:.4g} → {d['norm_cur']:.4g}"
    if math.isfinite(d["norm_change"]):
        note += f" ({100 * d['norm_change']:+.1f}%)"
    if d["p_method"] == "bound":
        note += "; p-value from profiles: a bound for any correlation between dimensions"
    return replace(
        base,
        method=test.method,
        statistic=test.statistic,
        p_value=test.p_value if test.p_value is not None else math.nan,
        effect_name=VECTOR_EFFECT,
        effect=float(d["effect"]),
        message=note + (f"; {base.message}" if base.message else ""),
        plot=plot,
    )


def _categorical(base: ColumnDrift, test: DriftStatistic, effect: float, plot: dict[str, Any]) -> ColumnDrift:
    return replace(
        base,
        method=test.method,
        statistic=test.statistic,
        p_value=test.p_value if test.p_value is not None else math.nan,
        effect_name="max share change",
        effect=effect,
        plot=plot,
    )


PLOT_BINS = 30
PLOT_CATEGORIES = 20
NORM_LABEL = "L2 norm of each row"  # a vector column's chart: the distribution of its rows' norms


def _numeric_plot(ref: np.ndarray, cur: np.ndarray) -> dict[str, Any]:
    """Shares of both samples (sorted) in equal-width bins between their 0.5% and 99.5% quantiles."""

    def at(s: np.ndarray, q: float) -> float:
        return float(s[min(s.size - 1, int(q * s.size))])

    both_lo = min(at(ref, 0.005), at(cur, 0.005))
    both_hi = max(at(ref, 0.995), at(cur, 0.995))
    if not both_hi > both_lo:
        both_lo, both_hi = both_lo - 0.5, both_hi + 0.5
    edges = np.linspace(both_lo, both_hi, PLOT_BINS + 1)
    clip = lambda x: np.clip(x, both_lo, both_hi)  # noqa: E731 - the tails go into the outer bins
    p = np.histogram(clip(ref), edges)[0] / ref.size
    q = np.histogram(clip(cur), edges)[0] / cur.size
    return {"type": "histogram", "edges": edges.tolist(), "ref": p.tolist(), "cur": q.tolist()}


def _categorical_plot(labels: list[Any], p: np.ndarray, q: np.ndarray) -> dict[str, Any]:
    order = np.argsort(-(p + q), kind="stable")
    top = order[:PLOT_CATEGORIES]
    cats = [str(labels[i]) for i in top]
    ref, cur = p[top].tolist(), q[top].tolist()
    if len(order) > PLOT_CATEGORIES:
        rest = order[PLOT_CATEGORIES:]
        cats.append(f"{len(rest)} others")
        ref.append(float(p[rest].sum()))
        cur.append(float(q[rest].sum()))
    return {"type": "bars", "categories": cats, "ref": ref, "cur": cur}


# -- profiles ---------------------------------------------------------------------------------------------


def _compare_profiles(
    name: str, reference: Profile, current: Profile, choose: Callable[[str, str], Choice]
) -> ColumnDrift:
    if name not in current:
        return ColumnDrift(
            name, "-", ONLY_REFERENCE, None, message="the column is missing from the current data"
        )
    if name not in reference:
        return ColumnDrift(name, "-", ONLY_CURRENT, None, message="the column is not in the reference")
    a, b = reference[name], current[name]
    kind_a, kind_b = a.kind, b.kind
    base = ColumnDrift(
        name,
        kind_a,
        OK,
        None,
        ref_missing=a.missing + a.counts.nan + a.counts.posinf + a.counts.neginf,
        cur_missing=b.missing + b.counts.nan + b.counts.posinf + b.counts.neginf,
    )
    if "empty" in (kind_a, kind_b):
        side = "reference" if kind_a == "empty" else "current data"
        return replace(
            base,
            kind=kind_b if kind_a == "empty" else kind_a,
            status=EMPTY,
            message=f"the {side} has no values in this column",
        )
    if kind_a != kind_b:
        return replace(
            base, status=KIND_MISMATCH, message=f"{kind_a} in the reference, {kind_b} in the current data"
        )
    kind = "numeric" if kind_a == "datetime" else kind_a
    try:
        chosen = choose(name, kind)
    except _NotApplicable as exc:
        return replace(base, status=NOT_COMPARED, message=str(exc))
    try:
        if kind == VECTOR:
            return _vector_profiles(base, a, b, chosen)
        if kind == "numeric":
            base = replace(base, kind="numeric", ref_count=a.numeric.moments.n, cur_count=b.numeric.moments.n)
            if a.numeric.moments.n == 0 or b.numeric.moments.n == 0:
                side = "reference" if a.numeric.moments.n == 0 else "current data"
                return replace(base, status=EMPTY, message=f"the {side} has no finite values in this column")
            plot = _numeric_plot_profiles(a, b)
            if chosen is not None:
                return _chosen(base, _method(chosen[0]).on_profiles(a, b, kind="numeric"), chosen[1], plot)
            ma, mb = a.numeric.moments, b.numeric.moments
            p_welch = (
                welch_from_moments(ma.n, ma.mean, ma.variance(ddof=1), mb.n, mb.mean, mb.variance(ddof=1))[1]
                if ma.n > 1 and mb.n > 1
                else 1.0
            )
            ks, w = _method("ks").on_profiles(a, b), _method("wasserstein").on_profiles(a, b)
            return _numeric(base, ks, w, p_welch, plot)
        if kind in ("categorical", "boolean"):
            binned = bin_categorical_profiles(a, b)
            p, q = binned.p, binned.q
            labels = ["(other values)" if c is None else c for c in binned.categories]
            base = replace(
                base, ref_count=int(binned.ref_counts.sum()), cur_count=int(binned.cur_counts.sum())
            )
            plot = _categorical_plot(labels, p, q)
            if chosen is not None:
                return _chosen(base, _method(chosen[0]).on_profiles(a, b, kind=kind), chosen[1], plot)
            test = _method("chi2" if kind == "categorical" else "ztest").on_profiles(a, b, kind=kind)
            return _categorical(base, test, float(np.max(np.abs(p - q))), plot)
    except ValueError as exc:
        return replace(base, status=NOT_COMPARED, message=str(exc))
    return replace(base, status=NOT_COMPARED, message=f"{kind_a} columns are not compared from profiles yet")


def _vector_profiles(base: ColumnDrift, a: Any, b: Any, chosen: Choice) -> ColumnDrift:
    va, vb = a.vectors, b.vectors
    if va is None or vb is None:  # declared a vector column (schema=) but no numeric lists arrived
        side = "reference" if va is None else "current data"
        return replace(base, status=EMPTY, message=f"the {side} holds no vectors in this column")
    # missing: nulls, rows with a non-finite component, rows of another length than the column's dimension
    base = replace(
        base,
        ref_count=va.n,
        cur_count=vb.n,
        ref_missing=a.missing + va.nonfinite + a.vector_mismatch,
        cur_missing=b.missing + vb.nonfinite + b.vector_mismatch,
    )
    if va.dim != vb.dim:
        message = f"vectors of dimension {va.dim} in the reference, {vb.dim} in the current data"
        return replace(base, status=DIMENSION_MISMATCH, message=message)
    if va.n == 0 or vb.n == 0:
        side = "reference" if va.n == 0 else "current data"
        return replace(base, status=EMPTY, message=f"the {side} has no finite vectors in this column")
    plot = {**_quantile_plot(va.norm_quantiles, vb.norm_quantiles), "label": NORM_LABEL}
    if chosen is not None:
        return _chosen(base, _method(chosen[0]).on_profiles(a, b, kind=VECTOR), chosen[1], plot)
    return _vector(base, MeanShift().on_profiles(a, b), plot)


def _numeric_plot_profiles(a: Any, b: Any) -> dict[str, Any]:
    return _quantile_plot(a.numeric.quantiles, b.numeric.quantiles)


def _quantile_plot(qa: Any, qb: Any) -> dict[str, Any]:
    """As :func:`_numeric_plot`, from two quantile sketches."""
    lo = min(float(qa.quantile(0.005)), float(qb.quantile(0.005)))
    hi = max(float(qa.quantile(0.995)), float(qb.quantile(0.995)))
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, PLOT_BINS + 1)
    inner = edges[1:-1]
    p = np.diff(np.concatenate(([0.0], qa.cdf(inner)[: len(inner)], [1.0])))
    q = np.diff(np.concatenate(([0.0], qb.cdf(inner)[: len(inner)], [1.0])))
    return {"type": "histogram", "edges": edges.tolist(), "ref": p.tolist(), "cur": q.tolist()}


# -- the decision -----------------------------------------------------------------------------------------


def _decide(
    results: list[ColumnDrift], policy: decide.DriftPolicy, vector_min_effect: float = VECTOR_MIN_EFFECT
) -> list[ColumnDrift]:
    # the multiple-testing family: every compared column decided by a test (default rule or a chosen test)
    p = np.array([r.p_value if r.status == OK and r.rule != "threshold" else math.nan for r in results])
    adjusted = decide.adjust_p_values(p, policy.correction)
    out = []
    for r, p_adj in zip(results, adjusted, strict=True):
        if r.status != OK:
            out.append(r)
        elif r.rule == "threshold":
            assert r.threshold is not None
            out.append(replace(r, drifted=bool(r.statistic >= r.threshold)))
        elif math.isnan(p_adj):
            out.append(r)
        elif r.rule == "test":
            out.append(replace(r, p_adjusted=float(p_adj), drifted=bool(p_adj < policy.alpha)))
        else:
            minimum = {
                "wasserstein/std": policy.numeric_min_effect,
                VECTOR_EFFECT: vector_min_effect,
            }.get(r.effect_name or "", policy.categorical_min_effect)
            drifted = bool(p_adj < policy.alpha and r.effect >= minimum)
            out.append(replace(r, p_adjusted=float(p_adj), drifted=drifted))
    return out
