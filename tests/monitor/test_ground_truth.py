"""Ground truth monitor: the share of predictions waiting for a label, exact; label drift found on a shifted
label distribution and not on a sample of the reference's own, against scipy where the test is exact."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from watchkeeper.monitor.base import MonitorSettings, WindowContext
from watchkeeper.monitor.ground_truth import derive, target_column
from watchkeeper.profile import profile
from watchkeeper.store import Batch, LabelRows, PredictionRows, Store, codec

SUBJECT = "model:clf@1"


@pytest.fixture
def db(tmp_path):
    s = Store(f"sqlite:///{tmp_path}/wk.db", artifact_root=tmp_path / "artifacts")
    yield s
    s.close()


def fill(store, preds, labels=None, *, t=None, ids=None):
    """Predictions ``preds`` made at ``t`` (default 1000, 1001, ...) and the labels that are not None."""
    n = len(preds)
    ids = ids if ids is not None else [f"id{i}" for i in range(n)]
    t = t if t is not None else [1000.0 + i for i in range(n)]
    batch = Batch(
        predictions=[
            PredictionRows(
                project="p", subject=SUBJECT, ids=ids, t=t, values=[codec.encode(v) for v in preds]
            )
        ]
    )
    if labels is not None:
        keep = [i for i in range(n) if labels[i] is not None]
        batch.labels.append(
            LabelRows(
                project="p",
                subject=SUBJECT,
                ids=[ids[i] for i in keep],
                values=[codec.encode(labels[i]) for i in keep],
                t=[9000.0] * len(keep),
            )
        )
    assert store.write(batch).applied


def context(store, start=0.0, end=1e10, *, reference=None, settings=None):
    return WindowContext(
        store=store,
        project="p",
        model="clf",
        version="1",
        subject=SUBJECT,
        start=start,
        end=end,
        profile=None,
        reference=reference,
        reference_info=None,
        training_run=None,
        settings=settings or MonitorSettings(),
        now=end,
    )


def signals(ctx) -> dict[str, float]:
    out = {}
    for d in derive(ctx):
        key = d.name if not d.labels else f"{d.name}{{class={d.labels['class']}}}"
        assert key not in out
        out[key] = d.value
    return out


# -- labels still pending ---------------------------------------------------------------------------------


def test_pending_rate_is_the_share_of_the_windows_predictions_without_a_label(db):
    # 10 predictions in [100, 200), 3 labelled; one labelled before the window; a label for an unknown id
    t = [50.0] + [100.0 + 10 * i for i in range(10)]
    labels = [1, 1, None, 0, None, None, 1, None, None, None, None]
    fill(db, [{"label": 1}] * 11, labels, t=t)
    assert db.write(
        Batch(labels=[LabelRows(project="p", subject=SUBJECT, ids=["never"], values=[1], t=[1.0])])
    ).applied
    got = signals(context(db, 100.0, 200.0))
    assert got["label_pending_rate"] == pytest.approx(7 / 10)
    assert got["labelled_share"] == pytest.approx(3 / 10)
    assert got["label_class_share{class=1}"] == pytest.approx(2 / 3)
    assert got["label_class_share{class=0}"] == pytest.approx(1 / 3)


def test_pending_rate_is_given_before_any_label_arrives_and_nothing_else(db):
    fill(db, [{"label": 1}] * 4)
    assert signals(context(db)) == {"label_pending_rate": 1.0, "labelled_share": 0.0}
    assert signals(context(db, 0.0, 10.0)) == {}  # no predictions in the window at all


# -- label drift ------------------------------------------------------------------------------------------


def _classes_window(db, labels, classes_predicted=None):
    preds = [{"label": p} for p in (classes_predicted if classes_predicted is not None else labels)]
    fill(db, preds, list(labels))


def test_label_drift_of_categorical_labels_is_scipys_chi_square(db):
    rng = np.random.default_rng(21)
    ref_labels = rng.choice(["legit", "fraud", "review"], size=3000, p=[0.8, 0.15, 0.05])
    reference = profile({"amount": rng.uniform(size=3000), "target": ref_labels.tolist()})
    cur = rng.choice(["legit", "fraud", "review"], size=400, p=[0.65, 0.3, 0.05])
    _classes_window(db, cur.tolist())
    got = signals(context(db, reference=reference))
    table = [[int((x == c).sum()) for c in ("legit", "fraud", "review")] for x in (ref_labels, cur)]
    expected = stats.chi2_contingency(table, correction=False)
    assert got["label_drift_p_value"] == pytest.approx(expected.pvalue, rel=1e-9)
    shares_ref = np.array(table[0]) / 3000
    shares_cur = np.array(table[1]) / 400
    assert got["label_drift_score"] == pytest.approx(np.abs(shares_ref - shares_cur).max())
    assert got["label_drift_detected"] == 1.0
    assert got["label_class_share{class=fraud}"] == pytest.approx(shares_cur[1])


def test_no_label_drift_on_a_sample_of_the_references_distribution(db):
    rng = np.random.default_rng(22)
    p = [0.8, 0.15, 0.05]
    reference = profile({"label": rng.choice(["legit", "fraud", "review"], size=3000, p=p).tolist()})
    _classes_window(db, rng.choice(["legit", "fraud", "review"], size=400, p=p).tolist())
    got = signals(context(db, reference=reference))
    assert got["label_drift_p_value"] > 0.05
    assert got["label_drift_detected"] == 0.0


@pytest.mark.parametrize(("current_rate", "drifts"), [(0.3, False), (0.5, True)])
def test_label_drift_of_integer_classes_against_a_numeric_target(db, current_rate, drifts):
    rng = np.random.default_rng(23)
    # 0/1 labels profile as a numeric column (a KLL sketch, no class counts)
    reference = profile({"y": (rng.uniform(size=20000) < 0.3).astype(int)})
    assert reference["y"].kind == "numeric"
    cur = (rng.uniform(size=500) < current_rate).astype(int).tolist()
    _classes_window(db, cur)
    got = signals(context(db, reference=reference))
    assert got["label_drift_detected"] == float(drifts)
    # the reference's class shares come from the sketch: the test is the exact one within its rank error
    ref = reference["y"].numeric.quantiles
    ref_ones = round(20000 * (1 - ref.cdf([0.5])[0]))
    table = [[20000 - ref_ones, ref_ones], [cur.count(0), cur.count(1)]]
    assert got["label_drift_p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert (got["label_drift_p_value"] < 0.01) == drifts


def test_boolean_target_with_zero_one_labels_and_a_named_label_column(db):
    rng = np.random.default_rng(24)
    reference = profile({"is_fraud": (rng.uniform(size=5000) < 0.1).tolist(), "label": ["x"] * 5000})
    cur = (rng.uniform(size=400) < 0.25).astype(int).tolist()
    _classes_window(db, cur)
    settings = MonitorSettings(label_column="is_fraud")
    got = signals(context(db, reference=reference, settings=settings))
    ones = sum(cur)
    ref_true = reference["is_fraud"].true_count
    table = [[5000 - ref_true, ref_true], [400 - ones, ones]]
    assert got["label_drift_p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert got["label_drift_detected"] == 1.0
    assert got["label_class_share{class=true}"] == pytest.approx(ones / 400)


def test_a_reference_class_that_did_not_arrive_has_share_zero(db):
    reference = profile({"Target": ["a"] * 50 + ["b"] * 30 + ["c"] * 20})
    _classes_window(db, ["a", "a", "b", "a"])
    got = signals(context(db, reference=reference))
    shares = {k: v for k, v in got.items() if k.startswith("label_class_share")}
    assert shares == {
        "label_class_share{class=a}": 0.75,
        "label_class_share{class=b}": 0.25,
        "label_class_share{class=c}": 0.0,
    }


@pytest.mark.parametrize(("shift", "drifts"), [(0.0, False), (0.5, True)])
def test_label_drift_of_a_regression_target(db, shift, drifts):
    rng = np.random.default_rng(25)
    reference = profile({"target": rng.normal(10.0, 2.0, size=5000)})
    y = rng.normal(10.0 + 2.0 * shift, 2.0, size=300)
    fill(db, [{"prediction": float(v + rng.normal())} for v in y], [float(v) for v in y])
    got = signals(context(db, reference=reference))
    assert got["label_drift_detected"] == float(drifts)
    assert (got["label_drift_p_value"] < 0.01) == drifts
    assert got["label_drift_score"] == pytest.approx(shift, abs=0.15)  # Wasserstein / reference sd
    assert not any(k.startswith("label_class_share") for k in got)


def test_no_drift_signal_without_a_target_column(db):
    _classes_window(db, [0, 1, 1])
    got = signals(context(db, reference=profile({"amount": [1.0, 2.0]})))
    assert "label_drift_score" not in got and got["label_class_share{class=1}"] == pytest.approx(2 / 3)
    assert target_column(profile({"Y": [1]})) == "Y"
    assert target_column(profile({"label": [1], "target": [1]})) == "label"
    assert target_column(profile({"label": [1]}), "outcome") is None


def test_a_numeric_targets_class_that_stops_arriving_counts_in_a_cell_of_its_own(db):
    rng = np.random.default_rng(26)
    ref_values = rng.choice([0, 1, 2], size=600, p=[0.5, 0.3, 0.2])
    reference = profile({"label": ref_values})
    cur = rng.choice([0, 1], size=300, p=[0.6, 0.4]).tolist()  # class 2 no longer arrives
    _classes_window(db, cur)
    got = signals(context(db, reference=reference))
    # 600 values fit the KLL sketch whole, so its CDF is exact: the 2 x 3 table with class 2 empty now
    table = [np.bincount(ref_values, minlength=3).tolist(), [cur.count(0), cur.count(1), 0]]
    assert got["label_drift_p_value"] == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue)
    assert got["label_drift_score"] == pytest.approx(table[0][2] / 600)  # class 2's share fell the most
    assert got["label_drift_detected"] == 1.0
    assert "label_class_share{class=2}" not in got  # a numeric target has no list of classes to show
