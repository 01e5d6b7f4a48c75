"""The bins every distribution distance compares, on raw samples and on profiles alike.

PSI, KL divergence, Jensen-Shannon, Hellinger, total variation and L-infinity all reduce both samples to two
discrete distributions over the same cells, ``p`` (reference shares) and ``q`` (current shares), built here
so that every one of them sees the same numbers.

Numeric columns: ``n_bins`` reference-quantile bins. The interior edges are the reference's quantiles at
``i / n_bins`` (``i = 1 .. n_bins - 1``), taken as ``np.quantile(ref, i / n_bins, method="inverted_cdf")``
(the smallest value whose empirical CDF reaches ``i / n_bins``, which is also what the KLL sketch returns), so
each bin holds about ``1 / n_bins`` of the reference. Bins are closed on the right::

    (-inf, e_1], (e_1, e_2], ..., (e_{k-1}, +inf)

which matches the sketch's CDF (the share of values ``<= x``), and the first and last bins are open, so
current values beyond the reference's range fall into them. Ties: equal edges (a value holding more than a
bin's share) are merged, so there may be fewer than ``n_bins`` bins. When the lowest edge *is* the reference
minimum (the minimum is a mass point, e.g. a constant column or one with many zeros), an extra edge just
below it (``np.nextafter(min, -inf)``) gives values below the reference minimum a bin of their own, with a
reference share of 0; otherwise a constant reference ``c`` would put current values below ``c`` into the
same bin as ``c`` and hide that drift. (Values above a top mass point already have their own last bin.)

On profiles the edges are the reference KLL sketch's quantiles at the same ranks, and the shares are
differences of each sketch's CDF at those edges (``Quantiles.cdf``, the share of values ``<= edge``).

Categorical columns: one cell per category seen on either side (the union); a category absent from one side
has count 0 there. Raw labels are counted with pyarrow's hash-based ``value_counts`` (``None`` and NaN are
skipped). On profiles the counts come from each column's ``FrequentItems``: exact while a side holds at most
1024 distinct values. Beyond that, a category gets its own cell only when its count is known on both sides
(the side is exact, or the sketch tracks that value); everything else forms one "other" cell (shown as
``None`` in ``details["categories"]``) holding ``n - sum(tracked counts)``. The statistic is then that of a
coarser partition: by the data-processing inequality it can only under-state a divergence, and each tracked
count is a lower bound, short by at most the sketch's ``error``; such results carry ``bound=None``.

Smoothing: KL divergence and PSI take ``ln(q_i / p_i)``, which an empty cell makes infinite. With
``epsilon > 0`` every share below ``epsilon`` is raised to ``epsilon`` and the shares are renormalised to sum
to 1 (``EPSILON = 1e-4`` by default for PSI and KL). Flooring (rather than only replacing zeros) makes a cell
that held 0.00002 and one that held 0 count the same, so a log term does not swing on a handful of rows, or
on a sketch's estimate of them. Jensen-Shannon, Hellinger, total variation and L-infinity are finite on
empty cells and default to ``epsilon = 0`` (no smoothing), which is what scipy computes; they accept the same
``epsilon`` when one wants them on the smoothed distributions.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa

from watchkeeper.drift.base import BOOLEAN, CATEGORICAL, NUMERIC, DriftMethod, DriftStatistic

__all__ = [
    "DEFAULT_BINS",
    "EPSILON",
    "Binned",
    "BinnedDistance",
    "bin_categorical",
    "bin_categorical_profiles",
    "bin_numeric",
    "bin_numeric_profiles",
    "category_counts",
    "finite_sample",
    "numeric_edges",
    "profile_kind",
    "quantile_sketch",
    "sample_kind",
    "sketch_bound",
    "smooth",
]

EPSILON = 1e-4
DEFAULT_BINS = 10


# -- raw samples ---------------------------------------------------------------------------------------------


def sorted_copy(x: np.ndarray) -> np.ndarray:
    """``x`` sorted: itself when it already is (an O(n) check), so callers may pass pre-sorted samples."""
    if x.size < 2 or bool(np.all(x[1:] >= x[:-1])):
        return x
    return np.sort(x)


def finite_sample(values: Any, side: str) -> np.ndarray:
    """``values`` as a 1-D float64 array of its finite values; ``ValueError`` naming ``side`` if none remain.

    Profiles summarise finite values only (NaN and ±inf are counted apart), so the exact path drops them too.
    """
    x = np.asarray(values)
    if x.ndim != 1:
        raise ValueError(f"{side} sample must be 1-D (got shape {x.shape})")
    if x.dtype.kind not in "biuf":
        try:
            x = x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{side} sample must be numeric (got dtype {x.dtype})") from exc
    x = np.asarray(x, dtype=np.float64)
    finite = np.isfinite(x)
    if not finite.all():
        x = x[finite]
    if x.size == 0:
        raise ValueError(f"{side} sample is empty (no finite values)")
    return x


def category_counts(values: Any, side: str) -> dict[Any, int]:
    """Count of each label in a 1-D array of labels (str, int, float, bool, object); None and NaN skipped.

    Keys are Python values (as ``FrequentItems`` stores them), so raw counts and profile counts line up.
    """
    x = values if isinstance(values, pa.Array | pa.ChunkedArray) else np.asarray(values)
    if not isinstance(x, pa.Array | pa.ChunkedArray) and x.ndim != 1:
        raise ValueError(f"{side} sample must be 1-D (got shape {x.shape})")
    out: dict[Any, int]
    if (
        isinstance(x, np.ndarray)
        and x.dtype.kind in "iu"
        and x.size
        and x.min() >= 0
        and x.max() < 4 * x.size
    ):
        # Integer codes (e.g. from a dictionary encoding): one bincount, no hashing.
        counts = np.bincount(x)
        present = np.flatnonzero(counts)
        return dict(zip(present.tolist(), counts[present].tolist(), strict=True))
    try:
        arr = x if isinstance(x, pa.Array | pa.ChunkedArray) else pa.array(x, from_pandas=True)
        arr = arr.drop_null()
        if pa.types.is_floating(arr.type):
            arr = arr.filter(pa.compute.invert(pa.compute.is_nan(arr)))
        vc = arr.value_counts()
        if isinstance(vc, pa.ChunkedArray):
            vc = vc.combine_chunks()
        out = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist(), strict=True))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed types (e.g. ints and strings in one object array): count the Python objects.
        out = {}
        for key, c in Counter(x.tolist()).items():
            if key is None or (isinstance(key, float) and math.isnan(key)):
                continue
            if isinstance(key, np.generic):
                key = key.item()
            out[key] = out.get(key, 0) + c
    if not out:
        raise ValueError(f"{side} sample is empty (no non-missing labels)")
    return out


def sample_kind(values: Any) -> str:
    """``"numeric"`` for int/float arrays, ``"boolean"`` for bool arrays, ``"categorical"`` otherwise."""
    kind = np.asarray(values).dtype.kind if not isinstance(values, pa.Array | pa.ChunkedArray) else None
    if kind is None:
        t = values.type
        if pa.types.is_boolean(t):
            return BOOLEAN
        return NUMERIC if pa.types.is_integer(t) or pa.types.is_floating(t) else CATEGORICAL
    if kind == "b":
        return BOOLEAN
    return NUMERIC if kind in "iuf" else CATEGORICAL


def profile_kind(col: Any) -> str:
    """The drift kind of a ``ColumnProfile``: numeric (also datetime), boolean, or categorical."""
    kind = col.kind
    if kind in ("numeric", "datetime"):
        return NUMERIC
    if kind == "boolean":
        return BOOLEAN
    return CATEGORICAL


# -- bins ----------------------------------------------------------------------------------------------------


def numeric_edges(quantiles: np.ndarray, ref_min: float) -> np.ndarray:
    """Interior bin edges from the reference's quantiles at ``i / n_bins``: sorted, deduplicated, and with an
    extra edge just below the minimum when the lowest edge is the minimum (see the module docstring)."""
    edges = np.unique(np.asarray(quantiles, dtype=np.float64))
    if edges.size == 0 or edges[0] <= ref_min:
        edges = np.concatenate(([np.nextafter(ref_min, -np.inf), ref_min], edges[edges > ref_min]))
    return edges


def _check_bins(n_bins: int) -> int:
    if not isinstance(n_bins, int | np.integer) or isinstance(n_bins, bool) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2 (got {n_bins!r})")
    return int(n_bins)


@dataclass(frozen=True, slots=True)
class Binned:
    """Two distributions over the same cells: counts per cell for the reference and the current side.

    Numeric: ``edges`` holds the interior edges (cells ``(-inf, e_1], ..., (e_{k-1}, inf)``). Categorical:
    ``categories`` names each cell (``None`` = the "other" cell of an inexact profile). ``exact`` is False
    when the counts are estimates (numeric profiles) or come from a coarsened table (see module docstring).
    """

    kind: str
    ref_counts: np.ndarray
    cur_counts: np.ndarray
    edges: np.ndarray | None = None
    categories: list[Any] | None = None
    exact: bool = True

    @property
    def p(self) -> np.ndarray:
        """Reference shares (sum 1)."""
        return self.ref_counts / self.ref_counts.sum()

    @property
    def q(self) -> np.ndarray:
        """Current shares (sum 1)."""
        return self.cur_counts / self.cur_counts.sum()

    def shares(self, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """``(p, q)``, smoothed with ``epsilon`` (see :func:`smooth`)."""
        return smooth(self.p, epsilon), smooth(self.q, epsilon)

    def details(self, epsilon: float = 0.0) -> dict[str, Any]:
        p, q = self.shares(epsilon)
        out: dict[str, Any] = {"kind": self.kind}
        if self.edges is not None:
            out["edges"] = self.edges.tolist()
        if self.categories is not None:
            out["categories"] = list(self.categories)
        out.update(
            p=p.tolist(),
            q=q.tolist(),
            ref_counts=self.ref_counts.tolist(),
            cur_counts=self.cur_counts.tolist(),
            epsilon=epsilon,
            exact=self.exact,
        )
        return out


def smooth(shares: np.ndarray, epsilon: float) -> np.ndarray:
    """Raise every share below ``epsilon`` to ``epsilon`` and renormalise to sum 1 (no-op for 0)."""
    if epsilon <= 0.0:
        return shares
    floored = np.maximum(shares, epsilon)
    return floored / floored.sum()


def _counts_at_edges(sorted_x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per right-closed bin of a sorted sample (a ``searchsorted`` of the edges, no pass over it)."""
    le = np.searchsorted(sorted_x, edges, side="right")
    return np.diff(np.concatenate(([0], le, [sorted_x.size]))).astype(np.float64)


def bin_numeric(ref: Any, cur: Any, n_bins: int = DEFAULT_BINS) -> Binned:
    """Reference-quantile bins of two raw numeric samples (non-finite values dropped)."""
    n_bins = _check_bins(n_bins)
    r = np.sort(finite_sample(ref, "reference"))
    c = np.sort(finite_sample(cur, "current"))
    n = r.size
    # inverted_cdf at i/n_bins in integer arithmetic: index ceil(i * n / n_bins) - 1, no rounding doubt.
    i = np.arange(1, n_bins, dtype=np.int64)
    quantiles = r[(i * n + n_bins - 1) // n_bins - 1]
    edges = numeric_edges(quantiles, float(r[0]))
    return Binned(NUMERIC, _counts_at_edges(r, edges), _counts_at_edges(c, edges), edges=edges)


def quantile_sketch(col: Any, side: str) -> Any:
    """The KLL ``Quantiles`` of a numeric ``ColumnProfile``; ``ValueError`` naming ``side`` if it has none."""
    part = getattr(col, "numeric", None)
    if part is None or part.quantiles.n == 0:
        raise ValueError(f"{side} profile of column {getattr(col, 'name', '?')!r} holds no finite numbers")
    return part.quantiles


REFERENCE_RANK_ERROR = 0.0078  # KLL k=350 (0.77%), the sketch size every stated bound was measured at


def sketch_bound(stated: float, *sketches: Any, proportional: bool = False) -> float:
    """A bound stated (and measured) at k = 350, scaled up for smaller sketches by their rank error.

    With ``proportional`` it is also scaled down for larger ones: right for a statistic whose error is the
    sketches' rank errors and nothing else (KS: the two CDF errors add), not for the binned distances, whose
    worst cases (bins the current sample leaves nearly empty) do not shrink with k.
    """
    worst = max(sk.rank_error for sk in sketches)
    ratio = worst / REFERENCE_RANK_ERROR
    return stated * (ratio if proportional else max(1.0, ratio))


def bin_numeric_profiles(ref: Any, cur: Any, n_bins: int = DEFAULT_BINS) -> Binned:
    """The same bins from two ``ColumnProfile`` objects: edges from the reference KLL sketch's quantiles,
    shares from both sketches' CDFs at the edges (counts = share x n)."""
    n_bins = _check_bins(n_bins)
    rq, cq = quantile_sketch(ref, "reference"), quantile_sketch(cur, "current")
    quantiles = np.asarray(rq.quantile(np.arange(1, n_bins) / n_bins), dtype=np.float64)
    edges = numeric_edges(quantiles, rq.min)

    def counts(sk: Any) -> np.ndarray:
        cdf = np.clip(sk.cdf(edges), 0.0, 1.0)
        return np.diff(np.concatenate(([0.0], np.maximum.accumulate(cdf), [1.0]))) * sk.n

    return Binned(NUMERIC, counts(rq), counts(cq), edges=edges, exact=False)


def _order(cells: list[Any], ref: dict[Any, float], cur: dict[Any, float]) -> list[Any]:
    # Largest reference share first, then largest current share: a report reads the top of the list.
    return sorted(cells, key=lambda v: (-ref.get(v, 0), -cur.get(v, 0)))


def bin_categorical(ref: Any, cur: Any) -> Binned:
    """One cell per label seen on either side; raw labels, None/NaN skipped."""
    rc, cc = category_counts(ref, "reference"), category_counts(cur, "current")
    cats = _order(list({**rc, **cc}), rc, cc)
    return Binned(
        CATEGORICAL,
        np.array([rc.get(v, 0) for v in cats], dtype=np.float64),
        np.array([cc.get(v, 0) for v in cats], dtype=np.float64),
        categories=cats,
    )


def _profile_counts(col: Any, side: str) -> tuple[dict[Any, int], int, bool]:
    """(tracked counts, total, exact) of a categorical or boolean ``ColumnProfile``."""
    counts: dict[Any, int] = {}
    total, exact = 0, True
    strings = getattr(col, "strings", None)
    if strings is not None and strings.frequent.n:
        f = strings.frequent
        counts.update((item.value, item.count) for item in f.top(len(f)))
        total, exact = f.n, f.is_exact
    for value, c in ((True, col.true_count), (False, col.false_count)):
        if c:
            counts[value] = counts.get(value, 0) + c
            total += c
    if total == 0:
        raise ValueError(
            f"{side} profile of column {getattr(col, 'name', '?')!r} holds no categorical values"
        )
    return counts, total, exact


def bin_categorical_profiles(ref: Any, cur: Any) -> Binned:
    """Category cells from two profiles' frequent items (exact up to 1024 distinct values; see module doc)."""
    rc, rn, r_exact = _profile_counts(ref, "reference")
    cc, cn, c_exact = _profile_counts(cur, "current")
    union = list({**rc, **cc})
    # A category gets its own cell only when both sides know its count (exact side, or tracked value).
    cats = [v for v in union if (r_exact or v in rc) and (c_exact or v in cc)]
    cats = _order(cats, rc, cc)
    r = [float(rc.get(v, 0)) for v in cats]
    c = [float(cc.get(v, 0)) for v in cats]
    exact = r_exact and c_exact
    if not exact:
        cats.append(None)
        r.append(float(rn - sum(r)))
        c.append(float(cn - sum(c)))
    return Binned(CATEGORICAL, np.array(r), np.array(c), categories=cats, exact=exact)


# -- the shared base of the binned distances -----------------------------------------------------------------


class BinnedDistance(DriftMethod):
    """A distance between the binned (numeric) or per-category (categorical) distributions ``p`` and ``q``.

    Subclasses implement :meth:`distance` on two share vectors and set ``numeric_bound`` (and optionally
    ``numeric_relative_bound``): the stated bound on ``|on_profiles - exact|`` for numeric columns is
    ``numeric_bound + numeric_relative_bound x statistic`` for k >= 350 sketches (tested), scaled up for
    smaller sketches. Categorical profiles are exact (bound 0) while
    both sides hold at most 1024 distinct values, and carry ``bound=None`` beyond.
    """

    default_epsilon: ClassVar[float] = 0.0
    numeric_bound: ClassVar[float]
    numeric_relative_bound: ClassVar[float] = 0.0  # plus this fraction of the statistic (log-based methods)

    def __init__(self, n_bins: int = DEFAULT_BINS, epsilon: float | None = None) -> None:
        self.n_bins = _check_bins(n_bins)
        eps = self.default_epsilon if epsilon is None else float(epsilon)
        if not 0.0 <= eps < 0.5 or math.isnan(eps):
            raise ValueError(f"epsilon must be in [0, 0.5) (got {epsilon!r})")
        self.epsilon = eps

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_bins={self.n_bins}, epsilon={self.epsilon})"

    @staticmethod
    @abstractmethod
    def distance(p: np.ndarray, q: np.ndarray) -> float:
        """The distance between reference shares ``p`` and current shares ``q`` (same cells, sums of 1)."""

    def _check_kind(self, kind: str) -> str:
        if kind == BOOLEAN and CATEGORICAL in self.kinds:
            return CATEGORICAL  # True/False as two categories
        if kind not in self.kinds:
            raise ValueError(f"{self.name} compares {' or '.join(self.kinds)} columns, not {kind}")
        return kind

    def exact(self, ref: np.ndarray, cur: np.ndarray, *, kind: str | None = None) -> DriftStatistic:
        """On raw samples; ``kind`` ("numeric" or "categorical") defaults to one read from the dtype."""
        kind = self._check_kind(kind or sample_kind(ref))
        binned = bin_numeric(ref, cur, self.n_bins) if kind == NUMERIC else bin_categorical(ref, cur)
        return self._result(binned, 0.0)

    def on_profiles(self, ref: Any, cur: Any, *, kind: str | None = None) -> DriftStatistic:
        """On two ``ColumnProfile`` objects; ``kind`` defaults to the reference profile's kind."""
        kind = self._check_kind(kind or profile_kind(ref))
        if kind == NUMERIC:
            binned = bin_numeric_profiles(ref, cur, self.n_bins)
            sketches = quantile_sketch(ref, "reference"), quantile_sketch(cur, "current")
            out = self._result(binned, 0.0)
            stated = self.numeric_bound + self.numeric_relative_bound * out.statistic
            return replace(out, bound=sketch_bound(stated, *sketches))
        binned = bin_categorical_profiles(ref, cur)
        return self._result(binned, 0.0 if binned.exact else None)

    def _result(self, binned: Binned, bound: float | None) -> DriftStatistic:
        p, q = binned.shares(self.epsilon)
        return DriftStatistic(
            self.name, float(self.distance(p, q)), None, bound, binned.details(self.epsilon)
        )
