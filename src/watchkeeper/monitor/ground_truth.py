"""Ground truth as it arrives: how much of it is still missing, and whether its distribution moved.

* ``label_pending_rate``: the window's predictions (those logged with an id) still without a label, over the
  window's predictions; ``labelled_share = 1 - label_pending_rate``. Given as soon as the window has
  predictions, before any label arrives (when it says the most); a window without predictions with ids
  gives neither.
* ``label_class_share{class=...}`` (classification): the share of the window's arrived labels in each
  class; the reference's classes that did not arrive in this window are given with share 0, so a class
  that stops arriving shows as 0 rather than as a missing series. At most ``MAX_CLASSES`` series, the
  most frequent first.
* label drift (a sign of concept drift): the window's arrived labels against the reference's target column,
  which is ``settings.label_column``, or else the first of ``label``, ``target``, ``y``, ``class`` in the
  reference (matched exactly, then ignoring case). The labels are profiled with
  :func:`watchkeeper.profile.profile` and compared with the reference's column profile:

  - classes (the window's task is classification, see :mod:`watchkeeper.monitor.performance`): Pearson's
    chi-square test of homogeneity (:mod:`watchkeeper.drift.chi2`) on the class counts. A categorical or
    boolean target gives the reference's counts from its frequent items (exact up to 1024 distinct
    values). A target whose classes are numbers (0/1, integer codes) is numeric in the profile, which keeps
    a KLL sketch and no counts: the reference's share of class ``c`` is the sketch's CDF from ``c - 0.5``
    to ``c + 0.5`` (right within the sketch's rank error, 0.39% at its default size), and the reference's
    values in no class's cell form one more cell. ``label_drift_score`` is the largest change of a class's
    share, the categorical effect of :mod:`watchkeeper.drift.dataset`, and ``label_drift_detected`` follows
    the default rule of :mod:`watchkeeper.drift.decide`: p-value below ``settings.alpha`` and a share
    moved by at least 2.5 percentage points;
  - numbers (regression): :func:`watchkeeper.drift.drift` of the two profiles with the default numeric
    rule: the p-value is the smaller of the Kolmogorov-Smirnov and Welch p-values, doubled;
    ``label_drift_score`` the Wasserstein distance in reference standard deviations; drifted when
    p < ``settings.alpha`` and the score is at least 0.05.

  With one column compared, the multiple-testing adjustment changes nothing. Labels take the reference's
  kind where they can: strings for a categorical target (``1`` is ``"1"``), booleans for a boolean target
  when they are 0/1 or booleans, numbers for a numeric one. Where they cannot (strings against a numeric
  target), and without a reference or a target column, there is no label drift signal.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from watchkeeper.drift import DriftPolicy, drift
from watchkeeper.drift.base import CATEGORICAL
from watchkeeper.drift.binning import quantile_sketch
from watchkeeper.drift.chi2 import Chi2, chi2_homogeneity
from watchkeeper.drift.columns import OK
from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.monitor.performance import (
    CLASSIFICATION,
    class_name,
    is_class,
    is_real,
    read_label,
    read_window,
    unify_classes,
)
from watchkeeper.profile import Profile, profile

if TYPE_CHECKING:
    from watchkeeper.profile import ColumnProfile

log = logging.getLogger(__name__)

TARGET_NAMES = ("label", "target", "y", "class")
MAX_CLASSES = 50


@dataclass(frozen=True, slots=True)
class LabelDrift:
    score: float
    p_value: float
    detected: bool


def target_column(reference: Profile | None, name: str | None = None) -> str | None:
    """The reference's target column: ``name`` when given (None if the reference lacks it), else the first
    of ``TARGET_NAMES`` present, matched exactly and then ignoring case."""
    if reference is None:
        return None
    if name is not None:
        return name if name in reference else None
    for candidate in TARGET_NAMES:
        if candidate in reference:
            return candidate
    lower = {c.lower(): c for c in reference}
    return next((lower[c] for c in TARGET_NAMES if c in lower), None)


def derive(ctx: WindowContext) -> Iterator[Derived]:
    total, labelled = ctx.store.labels.counts(ctx.project, ctx.subject, ctx.start, ctx.end)
    if total == 0:
        return
    yield Derived("label_pending_rate", (total - labelled) / total)
    yield Derived("labelled_share", labelled / total)
    if labelled == 0:
        return
    joined = ctx.store.labels.joined(ctx.project, ctx.subject, ctx.start, ctx.end)
    ys = [y for y in map(read_label, joined.labels) if y is not None]
    if not ys:
        return
    scored = read_window(joined, ctx.settings.positive_label)
    classes = all(is_class(y) for y in ys) and (scored is None or scored.task == CLASSIFICATION)
    target = target_column(ctx.reference, ctx.settings.label_column)
    if target is None and ctx.reference is not None and ctx.settings.label_column is not None:
        log.warning(
            "watchkeeper: %s: label_column %r is not a column of the reference (it has %d columns)",
            ctx.subject,
            ctx.settings.label_column,
            len(ctx.reference),
        )
    ref_col = ctx.reference[target] if ctx.reference is not None and target is not None else None
    if classes:
        yield from _class_signals(ys, ref_col, ctx.settings.alpha)
    elif ref_col is not None and all(is_real(y) or isinstance(y, bool) for y in ys):
        result = numeric_drift([float(y) for y in ys], ref_col, ctx.settings.alpha)
        if result is not None:
            yield from _drift_signals(result)


def _drift_signals(result: LabelDrift) -> Iterator[Derived]:
    yield Derived("label_drift_score", result.score)
    yield Derived("label_drift_p_value", result.p_value)
    yield Derived("label_drift_detected", 1.0 if result.detected else 0.0)


def _class_signals(ys: Sequence[Any], ref_col: ColumnProfile | None, alpha: float) -> Iterator[Derived]:
    keys = unify_classes(ys)
    result, ref_classes = None, []
    if ref_col is not None:
        converted = as_reference_kind(keys, ref_col.kind)
        if converted is not None:
            keys = converted
            found = class_drift(keys, ref_col, alpha)
            if found is not None:
                result, ref_classes = found
    counts = Counter(class_name(k) for k in keys)
    for name in (class_name(c) for c in ref_classes):
        counts.setdefault(name, 0)
    n = len(keys)
    for name, count in sorted(counts.items(), key=lambda kv: -kv[1])[:MAX_CLASSES]:
        yield Derived("label_class_share", count / n, {"class": name})
    if result is not None:
        yield from _drift_signals(result)


def as_reference_kind(keys: Sequence[Any], kind: str) -> list[Any] | None:
    """Class keys in the kind of the reference's target column; None when they cannot be."""
    if kind == "categorical":
        return [k if isinstance(k, str) else str(k) for k in keys]
    if kind == "boolean":
        if all(isinstance(k, bool) or k in (0, 1) for k in keys):
            return [bool(k) for k in keys]
        return None
    if kind == "numeric":
        if all(isinstance(k, int) for k in keys):  # bools are ints
            return [int(k) for k in keys]
        return None
    return None


def class_drift(
    keys: Sequence[Any], ref_col: ColumnProfile, alpha: float
) -> tuple[LabelDrift, list[Any]] | None:
    """The chi-square comparison of class labels ``keys`` (already in the reference's kind) with the
    reference's target column, and the reference's classes (those it counts); None for a target kind that
    holds no classes (text, vectors, dates)."""
    kind = ref_col.kind
    if kind in ("categorical", "boolean"):
        cur = profile({ref_col.name: keys})[ref_col.name]
        stat = Chi2().on_profiles(ref_col, cur, kind=CATEGORICAL)
        details = stat.details or {}
        p, q = np.asarray(details["p"]), np.asarray(details["q"])
        cells = zip(details["categories"], details["ref_counts"], strict=True)
        ref_classes = [c for c, r in cells if c is not None and r]
        x2_p = math.nan if stat.p_value is None else stat.p_value
    elif kind == "numeric":
        sketch = quantile_sketch(ref_col, "reference")
        classes = np.array(sorted(set(keys)), dtype=np.float64)
        # one cell (c - 0.5, c + 0.5] per class: disjoint, since classes are distinct integers
        below, upto = sketch.cdf(classes - 0.5), sketch.cdf(classes + 0.5)
        ref_counts = np.clip(upto - below, 0.0, 1.0) * sketch.n
        # values in no class's cell: a cell of their own, unless less than a row is left (rounding)
        rest = sketch.n - ref_counts.sum()
        ref_counts = np.append(ref_counts, rest if rest >= 0.5 else 0.0)
        seen = Counter(keys)
        cur_counts = np.array([seen[int(c)] for c in classes] + [0], dtype=np.float64)
        _, x2_p, _, _ = chi2_homogeneity(ref_counts, cur_counts)
        p, q = ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum()
        ref_classes = []
    else:
        return None
    effect = float(np.max(np.abs(p - q)))
    minimum = DriftPolicy().categorical_min_effect
    return LabelDrift(effect, x2_p, bool(x2_p < alpha and effect >= minimum)), ref_classes


def numeric_drift(ys: Sequence[float], ref_col: ColumnProfile, alpha: float) -> LabelDrift | None:
    """The default numeric comparison of real-valued labels with a numeric target column; None when the
    target is not numeric or the comparison cannot be made."""
    if ref_col.kind != "numeric":
        return None
    name = ref_col.name
    cur = profile({name: np.asarray(ys, dtype=np.float64)})
    col = drift(Profile({name: ref_col}, rows=ref_col.count), cur, alpha=alpha)[name]
    if col.status != OK or col.drifted is None:
        return None
    return LabelDrift(col.effect, col.p_value, col.drifted)
