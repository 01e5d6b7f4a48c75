"""Performance once labels arrive: metrics equal scikit-learn's on the labelled predictions of a window, read
back from a real store; the intervals match their formulas; late labels re-score the right windows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

import watchkeeper as wk
from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.monitor.performance import (
    Z95,
    _relabelled_query,
    derive,
    relabelled,
    roc_auc,
    wilson_interval,
)
from watchkeeper.store import Batch, LabelRows, PredictionRows, RunStart, RunUpdate, Store, codec

SUBJECT = "model:clf@1"


@pytest.fixture
def db(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/wk.db", artifact_root=tmp_path / "artifacts")
    yield s
    s.close()


def fill(store, preds, labels=None, *, t=None, label_t=None, ids=None, subject=SUBJECT):
    """Write predictions (and the labels that are not None) as one batch: prediction i made at t[i]."""
    n = len(preds)
    ids = ids if ids is not None else [f"id{i}" for i in range(n)]
    t = t if t is not None else [1000.0 + i for i in range(n)]
    batch = Batch(
        predictions=[
            PredictionRows(
                project="p", subject=subject, ids=ids, t=t, values=[codec.encode(v) for v in preds]
            )
        ]
    )
    if labels is not None:
        label_t = label_t if label_t is not None else [5000.0] * n
        keep = [i for i in range(n) if labels[i] is not None]
        batch.labels.append(
            LabelRows(
                project="p",
                subject=subject,
                ids=[ids[i] for i in keep],
                values=[codec.encode(labels[i]) for i in keep],
                t=[label_t[i] for i in keep],
            )
        )
    assert store.write(batch).applied


def context(store, start=0.0, end=1e10, *, settings=None, run=None, subject=SUBJECT):
    return WindowContext(
        store=store,
        project="p",
        model="clf",
        version="1",
        subject=subject,
        start=start,
        end=end,
        profile=None,
        reference=None,
        reference_info=None,
        training_run=run,
        settings=settings or MonitorSettings(),
        now=end,
    )


def signals(ctx) -> dict[str, float]:
    out = {}
    for d in derive(ctx):
        assert not d.labels and d.name not in out
        out[d.name] = d.value
    return out


# -- agreement with scikit-learn --------------------------------------------------------------------------


def test_binary_metrics_equal_sklearns_over_the_labelled_predictions_of_the_window(db):
    rng = np.random.default_rng(7)
    n = 600
    score = rng.uniform(size=n)
    y = (rng.uniform(size=n) < 0.2 + 0.6 * score).astype(int)
    pred = (score > 0.45).astype(int)
    t = np.sort(rng.uniform(0, 300, size=n))
    labelled = rng.uniform(size=n) < 0.7
    fill(
        db,
        [{"score": float(s), "label": int(p)} for s, p in zip(score, pred, strict=True)],
        [int(v) if keep else None for v, keep in zip(y, labelled, strict=True)],
        t=t.tolist(),
    )
    start, end = 100.0, 200.0
    sel = labelled & (t >= start) & (t < end)
    got = signals(context(db, start, end))
    yt, yp, ys = y[sel], pred[sel], score[sel]
    assert got["labelled_rows"] == sel.sum() > 50
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp), abs=1e-12)
    assert got["precision"] == pytest.approx(skm.precision_score(yt, yp), abs=1e-12)
    assert got["recall"] == pytest.approx(skm.recall_score(yt, yp), abs=1e-12)
    assert got["f1"] == pytest.approx(skm.f1_score(yt, yp), abs=1e-12)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt, ys), abs=1e-12)
    lo, hi = wilson_interval(int((yt == yp).sum()), int(sel.sum()))
    assert (got["accuracy_ci_low"], got["accuracy_ci_high"]) == pytest.approx((lo, hi))
    assert got["roc_auc_ci_low"] < got["roc_auc"] < got["roc_auc_ci_high"]
    assert not any(k.startswith(("rmse", "mae")) or k.endswith(("_baseline", "_drop")) for k in got)


def test_a_positive_label_of_another_name_is_the_class_scored(db):
    rng = np.random.default_rng(3)
    n = 300
    y = rng.choice(["fraud", "legit"], size=n, p=[0.3, 0.7])
    flip = rng.uniform(size=n) < 0.25
    pred = np.where(flip, np.where(y == "fraud", "legit", "fraud"), y)
    score = np.where(pred == "fraud", rng.uniform(0.5, 1, n), rng.uniform(0, 0.5, n))
    fill(db, [{"class": str(p), "proba": float(s)} for p, s in zip(pred, score, strict=True)], y.tolist())
    got = signals(context(db, settings=MonitorSettings(positive_label="fraud")))
    assert got["precision"] == pytest.approx(skm.precision_score(y, pred, pos_label="fraud"))
    assert got["recall"] == pytest.approx(skm.recall_score(y, pred, pos_label="fraud"))
    assert got["f1"] == pytest.approx(skm.f1_score(y, pred, pos_label="fraud"))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y == "fraud", score))


def test_multiclass_metrics_are_sklearns_macro_averages(db):
    rng = np.random.default_rng(11)
    n = 500
    classes = np.array(["cat", "dog", "bird", "fish"])
    y = classes[rng.choice(4, size=n, p=[0.4, 0.3, 0.2, 0.1])]
    # "fish" is never predicted: its precision is undefined and left out of the macro average
    pred = np.where(rng.uniform(size=n) < 0.6, y, classes[rng.choice(3, size=n)])
    pred = np.where(pred == "fish", "cat", pred)
    fill(db, [{"prediction": str(p)} for p in pred], y.tolist())
    got = signals(context(db))
    assert got["labelled_rows"] == n
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert got[name] == pytest.approx(fn(y, pred, average="macro", zero_division=np.nan), abs=1e-12), name
    assert "roc_auc" not in got  # not defined for multi-class here


def test_regression_metrics_equal_sklearns_and_the_mae_interval_is_the_normal_one(db):
    rng = np.random.default_rng(5)
    n = 400
    y = rng.normal(50, 10, size=n)
    pred = y + rng.normal(1, 4, size=n)
    fill(db, [{"y_pred": float(p)} for p in pred], [{"y": float(v)} for v in y])
    got = signals(context(db))
    assert got["labelled_rows"] == n
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    e = np.abs(pred - y)
    half = 1.959964 * e.std(ddof=1) / math.sqrt(n)
    assert got["mae_ci_low"] == pytest.approx(e.mean() - half, rel=1e-6)
    assert got["mae_ci_high"] == pytest.approx(e.mean() + half, rel=1e-6)
    assert not {"accuracy", "f1", "roc_auc"} & set(got)


def test_integer_labels_with_real_valued_predictions_are_regression(db):
    y = [3, 0, 7, 2, 5]
    pred = [2.5, 0.4, 6.1, 2.0, 5.9]
    fill(db, [{"output": p} for p in pred], y)
    got = signals(context(db))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert "accuracy" not in got


def test_a_bare_probability_is_scored_as_binary_classification(db):
    rng = np.random.default_rng(2)
    n = 300
    p = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p).astype(bool)
    # one output column: the SDK stores a function's scalar result as {"output": value}
    fill(db, [{"output": float(v)} for v in p], [bool(v) for v in y])
    got = signals(context(db))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, p >= 0.5))
    assert got["f1"] == pytest.approx(skm.f1_score(y, p >= 0.5))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))


def test_a_confidence_in_the_predicted_label_is_turned_into_the_positive_class_probability(db):
    rng = np.random.default_rng(9)
    n = 300
    p_pos = rng.uniform(size=n)
    y = (rng.uniform(size=n) < p_pos).astype(int)
    pred = (p_pos >= 0.5).astype(int)
    confidence = np.where(pred == 1, p_pos, 1 - p_pos)
    fill(
        db, [{"label": int(a), "score": float(c)} for a, c in zip(pred, confidence, strict=True)], y.tolist()
    )
    assert signals(context(db))["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p_pos))


def test_probability_vectors_give_label_and_score(db):
    probs = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    y = [0, 1, 1, 0]
    fill(db, [{"proba": v} for v in probs], y)
    got = signals(context(db))
    pred = [int(np.argmax(v)) for v in probs]
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, [v[1] for v in probs]))


# -- intervals --------------------------------------------------------------------------------------------


def test_wilson_interval_against_a_hand_computed_case():
    # 8 of 10: p = 0.8, z^2 = 3.8414588; centre = (0.8 + 0.19207294) / 1.38414588 = 0.71674016;
    # half-width = 1.95996398 / 1.38414588 * sqrt(0.016 + 0.00960365) = 0.22657769
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4901625, abs=1e-7)
    assert hi == pytest.approx(0.9433178, abs=1e-7)
    # 0 of 10: the interval starts at 0 and ends at z^2 / (n + z^2) = 3.841459 / 13.841459
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.277533), abs=1e-6)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_accuracy_interval_of_a_window_of_ten_with_eight_right(db):
    fill(db, [{"label": 1}] * 10, [1] * 8 + [0] * 2)
    got = signals(context(db))
    assert got["accuracy"] == 0.8
    assert (got["accuracy_ci_low"], got["accuracy_ci_high"]) == pytest.approx(
        (0.4901625, 0.9433178), abs=1e-7
    )
    assert "roc_auc" not in got  # no score


def test_roc_auc_with_ties_and_its_delong_standard_error_by_pairs():
    rng = np.random.default_rng(4)
    y = rng.uniform(size=150) < 0.4
    score = np.round(rng.normal(y * 0.8, 1.0), 1)  # rounded: many ties
    auc, se = roc_auc(y, score)
    assert auc == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)
    # DeLong's placement values by explicit comparison of every (positive, negative) pair
    pos, neg = score[y], score[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    expected = math.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    assert se == pytest.approx(expected, rel=1e-12)


def test_roc_auc_interval_covers_the_true_auc_about_95_percent_of_the_time():
    # binormal scores, negatives N(0, 1) and positives N(1, 1): true AUC = Phi(1 / sqrt 2)
    from scipy.stats import norm

    true_auc = norm.cdf(1 / math.sqrt(2))
    rng = np.random.default_rng(12345)
    y = np.r_[np.ones(60, bool), np.zeros(80, bool)]
    hits, reps = 0, 600
    for _ in range(reps):
        score = rng.normal(y.astype(float), 1.0)
        auc, se = roc_auc(y, score)
        hits += abs(auc - true_auc) <= Z95 * se
    assert 0.925 <= hits / reps <= 0.975


# -- what is and is not emitted ---------------------------------------------------------------------------


def test_a_window_without_labels_gives_nothing(db):
    fill(db, [{"label": 1, "score": 0.9}] * 4, [None, None, 1, 0], t=[10.0, 20.0, 110.0, 120.0])
    assert list(derive(context(db, 0.0, 100.0))) == []  # two predictions, no label yet
    assert list(derive(context(db, 200.0, 300.0))) == []  # no predictions at all
    assert signals(context(db, 100.0, 200.0))["labelled_rows"] == 2


def test_unreadable_predictions_give_nothing_and_a_warning(db, caplog):
    fill(db, [{"embedding": [0.1, 0.2], "other": "x"}] * 3, [1, 0, 1])
    assert list(derive(context(db))) == []
    assert "could not be scored" in caplog.text


def test_drop_against_the_training_runs_baseline(db):
    assert db.write(
        Batch(
            runs=[RunStart(id="train1", project="p", name="train", created_at=1.0)],
            run_updates=[
                RunUpdate(id="train1", summary={"val_accuracy": 0.9, "eval": {"roc_auc": 0.8}, "f1": True})
            ],
        )
    ).applied
    run = db.runs.get("train1")
    fill(db, [{"label": 1, "score": 0.9}, {"label": 0, "score": 0.2}, {"label": 1, "score": 0.4}], [1, 1, 0])
    got = signals(context(db, run=run))
    assert got["accuracy_baseline"] == 0.9
    assert got["accuracy_drop"] == pytest.approx(0.9 - 1 / 3)
    assert got["roc_auc_baseline"] == 0.8  # "eval/roc_auc" found as a path in the nested summary
    assert got["roc_auc_drop"] == pytest.approx(0.8 - 0.5)
    assert "f1_baseline" not in got  # a bool is not a baseline


def test_regression_drop_is_current_minus_baseline(db):
    assert db.write(
        Batch(
            runs=[RunStart(id="train2", project="p", name="train", created_at=1.0)],
            run_updates=[RunUpdate(id="train2", summary={"test_rmse": 1.0, "mae": 2.0})],
        )
    ).applied
    fill(db, [{"prediction": 1.5}, {"prediction": 4.0}], [0.5, 2.0])  # errors 1 and 2
    got = signals(context(db, run=db.runs.get("train2")))
    assert got["rmse"] == pytest.approx(math.sqrt(2.5))
    assert got["rmse_drop"] == pytest.approx(math.sqrt(2.5) - 1.0)
    assert got["mae_drop"] == pytest.approx(1.5 - 2.0)
    assert got["mae_baseline"] == 2.0


# -- late labels ------------------------------------------------------------------------------------------


def test_relabelled_returns_the_times_of_predictions_whose_label_came_since(store):
    t = [float(x) for x in range(100, 200, 10)]  # 10 predictions, ids id0..id9
    label_t = [500.0, 600.0, 700.0, 800.0, 900.0, 1000.0, 500.0, 900.0, 650.0, 1100.0]
    fill(store, [{"label": 1}] * 10, [1] * 9 + [None], t=t, label_t=label_t)
    # a label for an id never predicted, and predictions of another subject, change nothing
    fill(store, [{"label": 1}], [0], t=[150.0], label_t=[2000.0], ids=["id3"], subject="model:other@1")
    store.write(
        Batch(labels=[LabelRows(project="p", subject=SUBJECT, ids=["ghost"], values=[1], t=[3000.0])])
    )

    def expected(since, horizon):
        return [
            ti
            for ti, lt, i in zip(t, label_t, range(10), strict=True)
            if i < 9 and ti >= horizon and lt >= since
        ]

    for since, horizon in ((0.0, 0.0), (700.0, 0.0), (700.0, 140.0), (900.0, 100.0), (1001.0, 0.0)):
        assert relabelled(store, "p", SUBJECT, since, horizon) == expected(since, horizon)
    assert relabelled(store, "p", SUBJECT, 900.0, 100.0) == [140.0, 150.0, 170.0]
    # a late correction moves the label's time: the window of id0 is to be scored again
    fill(store, [{"label": 1}], [0], t=[100.0], label_t=[1200.0], ids=["id0"])
    assert relabelled(store, "p", SUBJECT, 1150.0, 0.0) == [100.0]
    assert relabelled(store, "nope", SUBJECT, 0.0, 0.0) == []


def test_relabelled_is_one_query_through_the_indexes(db):
    fill(db, [{"label": 1}] * 3, [1, 0, 1])
    stmt = _relabelled_query("p", SUBJECT, 0.0, 0.0)
    sql = str(stmt.compile(db.engine, compile_kwargs={"literal_binds": True}))
    with db.connect() as conn:
        plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
    assert "SEARCH predictions USING INDEX" in plan, plan
    assert "SEARCH labels USING INDEX sqlite_autoindex_labels_1" in plan or "PRIMARY KEY" in plan, plan
    assert "SCAN predictions" not in plan and "SCAN labels" not in plan, plan


def test_late_labels_change_the_window_score_when_it_is_derived_again(db):
    fill(db, [{"label": 1}] * 4, [1, None, None, None], t=[10.0, 11.0, 12.0, 13.0], label_t=[50.0] * 4)
    assert signals(context(db, 0.0, 100.0))["accuracy"] == 1.0
    db.write(
        Batch(
            labels=[LabelRows(project="p", subject=SUBJECT, ids=["id1", "id2"], values=[0, 0], t=[90.0] * 2)]
        )
    )
    assert relabelled(db, "p", SUBJECT, 60.0, 0.0) == [11.0, 12.0]
    got = signals(context(db, 0.0, 100.0))
    assert (got["labelled_rows"], got["accuracy"]) == (3.0, pytest.approx(1 / 3))


# -- through the SDK --------------------------------------------------------------------------------------


def test_predictions_and_labels_logged_by_a_run_are_scored(store_uri):
    run = wk.init(project="p", model="clf", version="1", uri=store_uri, window=3600, system_metrics=False)

    @run.watch(outputs=lambda y: {"score": y, "label": int(y > 0.5)}, id=lambda x: x["request_id"])
    def predict(x):
        return x["amount"] / 100

    for i in range(100):
        predict({"request_id": f"req-{i}", "amount": float(i)})
    truth = {f"req-{i}": int(i % 3 == 0) for i in range(0, 100, 2)}  # every second one gets its label
    for rid, label in truth.items():
        run.log_label(rid, label)
    run.finish()
    with Store(store_uri) as store:
        got = signals(context(store))
    y = np.array([truth[f"req-{i}"] for i in range(0, 100, 2)])
    score = np.arange(0, 100, 2) / 100
    assert got["labelled_rows"] == 50
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, score > 0.5))
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score))
