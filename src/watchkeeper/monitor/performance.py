"""Performance once labels arrive: the window's predictions that have a label by now, scored against it.

Every pass reads the predictions made in ``[ctx.start, ctx.end)`` whose label has arrived, so a window is
scored again (and its points replaced) when late labels come in: :func:`relabelled` tells the runner which
windows got new labels. A window none of whose predictions has a label gives no signal at all (not zeros).

**Reading a prediction.** Its value is a dict of the model's outputs (or a scalar). The predicted label is
the first of the keys ``label``, ``class``, ``prediction``, ``y_pred`` present, else the value of the only
key; the score the first of ``score``, ``proba``, ``probability``, ``p``. A score that is a list of class
probabilities gives the second entry as the score when it has two, and its argmax as the predicted label
when none is given. A label is a scalar, or a dict with ``label``, ``y`` or ``value`` (or one key).
Predictions or labels that cannot be read (missing, NaN, nested) are left out; ``labelled_rows`` counts
the rows that were scored.

**The task**, worked out from the data:

* the labels are *class-like* when each is a bool, a string, an int or an integral float (1.0 is class
  1). Then, when every predicted label is class-like too, the task is classification of those labels;
  when not, but every row has a number in [0, 1] (its score, else its predicted value: a model that
  returns a bare probability) and there are at most two distinct labels, it is binary classification by
  that score: predicted positive when the score is at least 0.5, scored as "positive label vs the rest";
* otherwise, when the labels and the predicted values are real numbers, regression. So integer targets
  with integer predictions count as classes; a regression model's real-valued outputs make it regression.

**Classification** (``accuracy``, ``precision``, ``recall``, ``f1``): binary with
``settings.positive_label`` as the positive class when the window's classes (labels and predictions) are at
most two and include it (or are 0/1, the positive class absent from the window); otherwise multi-class
with the *macro* average (the unweighted mean over the classes seen in labels or predictions). F1 is
``2 TP / (2 TP + FP + FN)``. A ratio with nothing to count (precision without a predicted positive,
recall without a labelled one) is NaN, not 0, and a macro average leaves such classes out: this is
scikit-learn's ``zero_division=np.nan``. ``accuracy_ci_low`` and ``accuracy_ci_high`` bound accuracy
with the 95% Wilson score interval (E. B. Wilson, "Probable inference, the law of succession, and
statistical inference", JASA 22(158), 1927), which unlike the Wald interval stays inside [0, 1] and
keeps its coverage for small windows and accuracies near 1::

    p = k / n,  centre = (p + z^2 / 2n) / (1 + z^2 / n),
    half-width = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2),  z = 1.96

``roc_auc`` (binary only, when every scored row has a score and both the positive class and another
occur among the labels) is the Mann-Whitney form: with ``R+`` the sum of the positives' ranks among all
scores (ties given their average rank),
``AUC = (R+ - n+ (n+ + 1) / 2) / (n+ n-)`` (H. B. Mann and D. R. Whitney, Ann. Math. Statist. 18(1),
1947; J. A. Hanley and B. J. McNeil, "The meaning and use of the area under a receiver operating
characteristic (ROC) curve", Radiology 143(1), 1982). The score is read as the probability of the positive
class, except when every score is at least 0.5 while both classes are predicted: then it is the
confidence in the predicted label, and ``1 - score`` for a predicted negative. Its 95% interval
(``roc_auc_ci_low``/``_high``, with at least two rows of each class) is ``AUC +- 1.96 SE`` clipped to
[0, 1], with DeLong's distribution-free standard error (E. R. DeLong, D. M. DeLong and D. L.
Clarke-Pearson, Biometrics 44(3), 1988), computed from ranks as in X. Sun and W. Xu, IEEE Signal
Processing Letters 21(11), 2014::

    V+_i = (rank of i among all - rank of i among positives) / n-      (share of negatives below i)
    V-_j = 1 - (rank of j among all - rank of j among negatives) / n+  (share of positives above j)
    SE^2 = var(V+) / n+ + var(V-) / n-

rather than Hanley and McNeil's formula, which assumes exponentially distributed scores; with a perfect
separation the SE is 0 and the interval is the point.

**Regression**: ``rmse``, ``mae``, and ``mae_ci_low``/``_high``, the normal-approximation 95% interval of a
mean, ``MAE +- 1.96 sd(|e|) / sqrt(n)`` (sample sd, n >= 2; the lower end clipped at 0).

**Against the baseline**: for each metric with keys in ``settings.baseline_keys``, the first of them found
in the training run's summary (a key such as ``eval/accuracy`` is also looked up as a path in nested dicts)
gives ``<metric>_baseline`` and ``<metric>_drop``: ``baseline - current`` for metrics where higher is
better, ``current - baseline`` for ``rmse`` and ``mae``, so a positive drop is always worse.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from watchkeeper.monitor.base import Derived, WindowContext
from watchkeeper.store.schema import labels, predictions, projects

if TYPE_CHECKING:
    from watchkeeper.store.labels import Joined
    from watchkeeper.store.store import Store

log = logging.getLogger(__name__)

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
PREDICTION_KEYS = ("label", "class", "prediction", "y_pred")
SCORE_KEYS = ("score", "proba", "probability", "p")
LABEL_KEYS = ("label", "y", "value")
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
CLASSIFICATION = "classification"
REGRESSION = "regression"


# -- reading predictions and labels -----------------------------------------------------------------------


def is_real(v: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def is_class(v: Any) -> bool:
    """A value that can be a class: a bool, a string, an int or an integral float."""
    if isinstance(v, bool | str):
        return True
    return is_real(v) and float(v).is_integer()


def class_key(v: Any) -> Any:
    """The class a class-like value stands for: an integral float is its int (1.0 is class 1)."""
    if isinstance(v, float):
        return int(v)
    return v


def _probabilities(v: Any) -> tuple[Any, float | None]:
    """(argmax, score) of a list of class probabilities: the score only for two classes."""
    if not v or not all(is_real(x) for x in v):
        return None, None
    return int(np.argmax(v)), (float(v[1]) if len(v) == 2 else None)


def read_prediction(value: Any) -> tuple[Any, float | None]:
    """(predicted label or value, score) of one prediction's outputs; None for what it does not hold."""
    if not isinstance(value, Mapping):
        return (value if is_real(value) or isinstance(value, bool | str) else None), None
    pred = next((value[k] for k in PREDICTION_KEYS if value.get(k) is not None), None)
    raw_score = next((value[k] for k in SCORE_KEYS if value.get(k) is not None), None)
    if pred is None and raw_score is None and len(value) == 1:
        pred = next(iter(value.values()))
    score = None
    if isinstance(raw_score, list):
        argmax, score = _probabilities(raw_score)
        if pred is None:
            pred = argmax
    elif is_real(raw_score):
        score = float(raw_score)
    if isinstance(pred, list):  # a vector of class probabilities under a label key
        pred, list_score = _probabilities(pred)
        score = score if score is not None else list_score
    if not (is_real(pred) or isinstance(pred, bool | str)):
        pred = None
    return pred, score


def read_label(value: Any) -> Any:
    """The label held by one stored label value; None when it holds none that can be scored."""
    if isinstance(value, Mapping):
        found = next((value[k] for k in LABEL_KEYS if k in value), None)
        if found is None and len(value) == 1:
            found = next(iter(value.values()))
        value = found
    return value if is_real(value) or isinstance(value, bool | str) else None


def unify_classes(values: Sequence[Any]) -> list[Any]:
    """Class keys of ``values``, as strings for all of them when strings mix with other types (so that a
    label ``"1"`` and a prediction ``1`` are one class)."""
    keys = [class_key(v) for v in values]
    if any(isinstance(k, str) for k in keys) and not all(isinstance(k, str) for k in keys):
        return [class_name(k) for k in keys]
    return keys


def class_name(v: Any) -> str:
    """A class as a signal label value: JSON's ``true``/``false`` for booleans, else ``str``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(class_key(v))


@dataclass(frozen=True, slots=True)
class Scored:
    """The labelled predictions of a window, read for scoring.

    ``task`` is ``classification`` or ``regression``. Classification: ``y_true`` and ``y_pred`` are class
    keys (by score: booleans, "is the positive class"); ``score`` the probability of the positive class
    for every row, or None. Regression: both are floats. ``positive`` is the positive class, ``dropped``
    the labelled rows left out because their prediction or label could not be read for the task.
    """

    task: str
    y_true: list[Any]
    y_pred: list[Any]
    score: np.ndarray | None
    positive: Any
    dropped: int

    def __len__(self) -> int:
        return len(self.y_true)


def read_window(joined: Joined, positive_label: Any) -> Scored | None:
    """The labelled predictions ``joined`` read for scoring (see the module docstring for the rules); None
    when no row can be scored."""
    rows = []
    for value, label in zip(joined.predictions, joined.labels, strict=True):
        y = read_label(label)
        if y is None:
            continue
        pred, score = read_prediction(value)
        if pred is not None or score is not None:
            rows.append((y, pred, score))
    total = len(joined)
    if not rows:
        return None
    ys = [r[0] for r in rows]
    if all(is_class(y) for y in ys):
        classed = [r for r in rows if r[1] is not None and is_class(r[1])]
        if classed and not any(r[1] is not None and not is_class(r[1]) for r in rows):
            return _classes(classed, positive_label, total)
        probs = [r[2] if r[2] is not None else r[1] for r in rows]
        if all(is_real(p) and 0.0 <= p <= 1.0 for p in probs) and len(set(unify_classes(ys))) <= 2:
            return _by_score(ys, probs, positive_label, total)
    if all(is_real(y) or isinstance(y, bool) for y in ys):
        real = [(y, r[1] if is_real(r[1]) else r[2]) for y, r in zip(ys, rows, strict=True)]
        real = [(float(y), float(p)) for y, p in real if p is not None]
        if real:
            return Scored(
                REGRESSION, [y for y, _ in real], [p for _, p in real], None, None, total - len(real)
            )
    return None


def _classes(rows: list[tuple[Any, Any, float | None]], positive_label: Any, total: int) -> Scored:
    keys = unify_classes([r[0] for r in rows] + [r[1] for r in rows] + [positive_label])
    n = len(rows)
    y_true, y_pred, positive = keys[:n], keys[n : 2 * n], keys[-1]
    score = None
    if all(r[2] is not None for r in rows):
        score = np.array([r[2] for r in rows], dtype=np.float64)
        is_pos = np.array([p == positive for p in y_pred])
        # every score >= 0.5 with both classes predicted: the score is the confidence in the predicted label
        if is_pos.any() and not is_pos.all() and score.min() >= 0.5:
            score = np.where(is_pos, score, 1.0 - score)
    return Scored(CLASSIFICATION, y_true, y_pred, score, positive, total - n)


def _by_score(ys: list[Any], probs: list[Any], positive_label: Any, total: int) -> Scored:
    keys = unify_classes([*ys, positive_label])
    positive = keys[-1]
    y_true = [k == positive for k in keys[:-1]]
    score = np.array(probs, dtype=np.float64)
    return Scored(CLASSIFICATION, y_true, (score >= 0.5).tolist(), score, True, total - len(ys))


# -- the metrics ------------------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``successes / n`` (95% with the default ``z``).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n <= 0:
        raise ValueError(f"n: expected a positive count, got {n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes: expected 0 to n ({n}), got {successes}")
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.maximum(den, 1), np.nan)


def _mean(x: np.ndarray) -> float:
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def roc_auc(is_positive: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    """(AUC, DeLong's standard error) of ``score`` for the boolean labels ``is_positive``; the SE is NaN
    with fewer than two rows of a class. Both classes must occur."""
    from scipy.stats import rankdata  # here, not at import: scipy.stats costs ~0.5 s

    pos, neg = score[is_positive], score[~is_positive]
    n_pos, n_neg = pos.size, neg.size
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"is_positive: expected both classes, got {n_pos} positives and {n_neg} negatives")
    ranks = rankdata(score)
    auc = (ranks[is_positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg)
    if n_pos < 2 or n_neg < 2:
        return float(auc), math.nan
    v_pos = (ranks[is_positive] - rankdata(pos)) / n_neg
    v_neg = 1.0 - (ranks[~is_positive] - rankdata(neg)) / n_pos
    se = math.sqrt(v_pos.var(ddof=1) / n_pos + v_neg.var(ddof=1) / n_neg)
    return float(auc), se


def classification_metrics(scored: Scored) -> dict[str, float]:
    """accuracy (with its Wilson interval), precision, recall, F1 and, where it applies, ROC AUC (with its
    DeLong interval) of a classification window."""
    classes = list(dict.fromkeys([*scored.y_true, *scored.y_pred]))
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    t = np.array([index[v] for v in scored.y_true], dtype=np.int64)
    p = np.array([index[v] for v in scored.y_pred], dtype=np.int64)
    cm = np.bincount(t * k + p, minlength=k * k).reshape(k, k)
    tp = np.diag(cm).astype(np.float64)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    n = len(t)
    correct = int(tp.sum())
    out = {"accuracy": correct / n}
    out["accuracy_ci_low"], out["accuracy_ci_high"] = wilson_interval(correct, n)
    positive = scored.positive
    binary = k <= 2 and (positive in index or all(c in (0, 1) for c in classes))
    if binary:
        if positive in index:
            i = index[positive]
            tp_, fp_, fn_ = tp[i : i + 1], fp[i : i + 1], fn[i : i + 1]
        else:  # the positive class occurs neither in labels nor in predictions: nothing to count
            tp_ = fp_ = fn_ = np.zeros(1)
        precision, recall = _ratio(tp_, tp_ + fp_), _ratio(tp_, tp_ + fn_)
        f1 = _ratio(2 * tp_, 2 * tp_ + fp_ + fn_)
    else:
        precision, recall, f1 = _ratio(tp, tp + fp), _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn)
    out.update(precision=_mean(precision), recall=_mean(recall), f1=_mean(f1))
    if binary and scored.score is not None:
        is_pos = t == index[positive] if positive in index else np.zeros(n, dtype=bool)
        if is_pos.any() and not is_pos.all():
            auc, se = roc_auc(is_pos, scored.score)
            out["roc_auc"] = auc
            if math.isfinite(se):
                out["roc_auc_ci_low"] = max(0.0, auc - Z95 * se)
                out["roc_auc_ci_high"] = min(1.0, auc + Z95 * se)
    return out


def regression_metrics(scored: Scored) -> dict[str, float]:
    """RMSE and MAE (with its normal-approximation interval) of a regression window."""
    err = np.asarray(scored.y_pred, dtype=np.float64) - np.asarray(scored.y_true, dtype=np.float64)
    absolute = np.abs(err)
    mae = float(absolute.mean())
    out = {"rmse": math.sqrt(float(np.mean(err * err))), "mae": mae}
    if err.size >= 2:
        half = Z95 * float(absolute.std(ddof=1)) / math.sqrt(err.size)
        out["mae_ci_low"], out["mae_ci_high"] = max(0.0, mae - half), mae + half
    return out


def _summary_value(summary: Mapping[str, Any], key: str) -> float | None:
    value: Any = summary.get(key)
    if value is None:
        for sep in ("/", "."):
            if sep in key:
                node: Any = summary
                for part in key.split(sep):
                    node = node.get(part) if isinstance(node, Mapping) else None
                if node is not None:
                    value = node
                    break
    return float(value) if is_real(value) else None


def baselines(summary: Mapping[str, Any], keys: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """metric -> its baseline: the first of its keys found in a run summary with a finite number."""
    out = {}
    for metric, candidates in keys.items():
        for key in candidates:
            value = _summary_value(summary, key)
            if value is not None:
                out[metric] = value
                break
    return out


# -- the monitor ------------------------------------------------------------------------------------------


def derive(ctx: WindowContext) -> Iterator[Derived]:
    """Performance of the window's labelled predictions; nothing when none of them has a label."""
    joined = ctx.store.labels.joined(ctx.project, ctx.subject, ctx.start, ctx.end)
    if not len(joined):
        return
    scored = read_window(joined, ctx.settings.positive_label)
    if scored is None:
        log.warning(
            "watchkeeper: %s: %d labelled predictions in window [%s, %s) could not be scored: expected "
            "predictions with a label or score and labels that are classes or numbers, got e.g. %r and %r",
            ctx.subject,
            len(joined),
            ctx.start,
            ctx.end,
            joined.predictions[0],
            joined.labels[0],
        )
        return
    score = classification_metrics if scored.task == CLASSIFICATION else regression_metrics
    metrics = score(scored)
    yield Derived("labelled_rows", float(len(scored)))
    for name, value in metrics.items():
        yield Derived(name, value)
    run = ctx.training_run
    if run is None:
        return
    for metric, baseline in baselines(run.summary or {}, ctx.settings.baseline_keys).items():
        if metric in metrics:
            current = metrics[metric]
            drop = current - baseline if metric in LOWER_IS_BETTER else baseline - current
            yield Derived(f"{metric}_baseline", baseline)
            yield Derived(f"{metric}_drop", drop)


def _relabelled_query(project: str, subject: str, since: float, horizon_start: float) -> sa.Select:
    # Predictions in the horizon through their (project_id, subject, t) index, each looking its label up by
    # the whole primary key; labels have no index on t, so starting from them would read every label the
    # subject ever had. MATERIALIZED on PostgreSQL for the reason given in Labels.joined.
    ranged = (
        sa.select(
            predictions.c.project_id, predictions.c.subject, predictions.c.prediction_id, predictions.c.t
        )
        .select_from(predictions.join(projects, projects.c.id == predictions.c.project_id))
        .where(projects.c.name == project, predictions.c.subject == subject, predictions.c.t >= horizon_start)
        .cte("ranged")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    on = sa.and_(
        labels.c.project_id == ranged.c.project_id,
        labels.c.subject == ranged.c.subject,
        labels.c.prediction_id == ranged.c.prediction_id,
    )
    return (
        sa.select(ranged.c.t)
        .select_from(ranged.join(labels, on))
        .where(labels.c.t >= since)
        .distinct()
        .order_by(ranged.c.t)
    )


def relabelled(store: Store, project: str, subject: str, since: float, horizon_start: float) -> list[float]:
    """The times (sorted, distinct) of ``subject``'s predictions made at or after ``horizon_start`` whose
    label was written at or after ``since``: the windows holding them are the ones to score again."""
    with store.connect() as conn:
        return [float(t) for (t,) in conn.execute(_relabelled_query(project, subject, since, horizon_start))]
