"""Predictions and late labels: stored apart, joined by id on reading, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time

import pytest
import sqlalchemy as sa

from watchkeeper.errors import StoreError
from watchkeeper.store import Batch, LabelRows, Points, PredictionRows, RunStart, Store, codec
from watchkeeper.store.labels import Joined

SUBJECT = "model:fraud-clf@1.3.0"


def _predictions(
    ids: list[str], t: list[float], scores: list[float], subject: str = SUBJECT, **kw
) -> PredictionRows:
    values = [codec.encode({"score": s, "label": int(s > 0.5)}) for s in scores]
    return PredictionRows(project="p", subject=subject, ids=ids, t=t, values=values, **kw)


def _labels(ids: list[str], values: list, t: list[float], subject: str = SUBJECT) -> LabelRows:
    return LabelRows(project="p", subject=subject, ids=ids, values=[codec.encode(v) for v in values], t=t)


def _write(store: Store, **records) -> None:
    assert store.write(Batch(**records)).applied


def test_a_label_that_arrives_first_joins_once_its_prediction_comes(store):
    _write(store, labels=[_labels(["a"], [1], [500.0])])
    assert store.labels.joined("p", SUBJECT) == Joined([], [], [], [], [])
    assert store.labels.get("p", SUBJECT, "a") == (None, 1)
    assert store.labels.counts("p", SUBJECT) == (0, 0)

    _write(store, predictions=[_predictions(["a", "b"], [100.0, 101.0], [0.9, 0.2])])
    j = store.labels.joined("p", SUBJECT)
    assert j == Joined(["a"], [100.0], [{"score": 0.9, "label": 1}], [1], [500.0])
    assert store.labels.counts("p", SUBJECT) == (2, 1)
    assert store.labels.get("p", SUBJECT, "b") == ({"score": 0.2, "label": 0}, None)


def test_a_second_label_replaces_the_first_value_and_time(store):
    _write(store, predictions=[_predictions(["a"], [100.0], [0.9])])
    _write(store, labels=[_labels(["a"], [0], [200.0])])
    _write(store, labels=[_labels(["a"], [1], [300.0])])
    j = store.labels.joined("p", SUBJECT)
    assert (j.ids, j.labels, j.label_t) == (["a"], [1], [300.0])
    assert store.labels.counts("p", SUBJECT) == (1, 1)
    # within one batch too, the later label wins
    _write(store, labels=[_labels(["a", "a"], [7, 8], [400.0, 401.0]), _labels(["a"], [9], [402.0])])
    assert store.labels.get("p", SUBJECT, "a")[1] == 9
    assert store.labels.joined("p", SUBJECT).label_t == [402.0]


def test_a_resent_prediction_keeps_the_first(store):
    _write(store, predictions=[_predictions(["a", "a"], [100.0, 150.0], [0.9, 0.1])])
    _write(store, predictions=[_predictions(["a"], [200.0], [0.3])])
    _write(store, labels=[_labels(["a"], [1], [300.0])])
    j = store.labels.joined("p", SUBJECT)
    assert (j.ids, j.t, j.predictions) == (["a"], [100.0], [{"score": 0.9, "label": 1}])
    assert store.labels.counts("p", SUBJECT) == (1, 1)


def test_the_same_batch_written_twice_adds_nothing(store):
    batch = Batch(
        predictions=[_predictions(["a", "b"], [100.0, 101.0], [0.9, 0.2])],
        labels=[_labels(["a"], [1], [300.0])],
    )
    assert batch
    assert store.write(batch).applied
    # a newer label in between: the resent batch must not bring the old one back
    _write(store, labels=[_labels(["a"], [0], [400.0])])
    assert not store.write(batch).applied
    assert store.labels.counts("p", SUBJECT) == (2, 1)
    assert store.labels.get("p", SUBJECT, "a") == ({"score": 0.9, "label": 1}, 0)


def test_time_range_is_start_inclusive_end_exclusive(store):
    ts = [10.0, 20.0, 30.0, 40.0, 50.0]
    ids = [f"id{i}" for i in range(5)]
    _write(
        store,
        predictions=[_predictions(ids, ts, [0.1, 0.2, 0.6, 0.7, 0.8])],
        labels=[_labels(ids, [0, 0, 1, 1, 1], [99.0] * 5)],
    )
    j = store.labels.joined("p", SUBJECT, start=20.0, end=40.0)
    assert (j.ids, j.t) == (["id1", "id2"], [20.0, 30.0])
    assert store.labels.counts("p", SUBJECT, start=20.0, end=40.0) == (2, 2)
    assert store.labels.joined("p", SUBJECT, start=40.0).ids == ["id3", "id4"]
    assert store.labels.joined("p", SUBJECT, end=10.0).ids == []
    assert store.labels.joined("p", SUBJECT, end=10.000001).ids == ["id0"]
    assert store.labels.joined("p", SUBJECT, start=15.0, limit=2).ids == ["id1", "id2"]
    # the range is over prediction time, not label time
    assert store.labels.counts("p", SUBJECT, start=90.0) == (0, 0)


def test_counts_match_a_hand_count(store):
    # 8 predictions at t = 0..7; labels for ids 1, 2, 5, 7, and for "x" which was never predicted
    ids = [str(i) for i in range(8)]
    _write(store, predictions=[_predictions(ids, [float(i) for i in range(8)], [0.5] * 8)])
    _write(store, labels=[_labels(["1", "2", "5", "7", "x"], [1, 0, 1, 0, 1], [100.0] * 5)])
    assert store.labels.counts("p", SUBJECT) == (8, 4)
    # [2, 6): predictions 2, 3, 4, 5, of which 2 and 5 are labelled
    assert store.labels.counts("p", SUBJECT, 2.0, 6.0) == (4, 2)
    assert store.labels.joined("p", SUBJECT, 2.0, 6.0).ids == ["2", "5"]
    assert store.labels.joined("p", SUBJECT).labels == [1, 0, 1, 0]


def test_nan_and_infinity_inside_values_round_trip(store):
    values = [{"score": math.nan, "logits": [math.inf, -math.inf, 1.5]}, {"score": 0.25, "logits": []}]
    encoded = PredictionRows(
        project="p", subject=SUBJECT, ids=["a"], t=[1.0], values=[codec.encode(values[0])]
    )
    # a direct writer that did not encode gets the same result
    raw = PredictionRows(project="p", subject=SUBJECT, ids=["b"], t=[2.0], values=[values[1]])
    raw_nan = PredictionRows(project="p", subject=SUBJECT, ids=["c"], t=[3.0], values=[{"score": -math.inf}])
    _write(store, predictions=[encoded, raw, raw_nan])
    _write(
        store,
        labels=[
            LabelRows(project="p", subject=SUBJECT, ids=["a", "c"], values=[math.nan, 2.0], t=[9.0, 9.0])
        ],
    )
    j = store.labels.joined("p", SUBJECT)
    assert j.ids == ["a", "c"]
    a, c = j.predictions
    assert math.isnan(a["score"]) and a["logits"] == [math.inf, -math.inf, 1.5]
    assert c == {"score": -math.inf}
    assert math.isnan(j.labels[0]) and j.labels[1] == 2.0
    assert store.labels.get("p", SUBJECT, "b") == ({"score": 0.25, "logits": []}, None)


def _contents(store: Store) -> tuple:
    return (
        [r.id for r in store.runs.list()],
        store.labels.counts("p", SUBJECT),
        store.labels.joined("p", SUBJECT),
        store.labels.get("p", SUBJECT, "late"),
        store.signals.names("r1"),
    )


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        (_predictions(["x", "y", "z"], [1.0, 2.0], [0.1, 0.2, 0.3]), r"predictions\[1\]\.t", r"\(3\), got 2"),
        (
            PredictionRows(project="p", subject=SUBJECT, ids=["x", "y"], t=[1.0, 2.0], values=[{}]),
            r"predictions\[1\]\.values",
            r"\(2\), got 1",
        ),
        (_predictions(["x", ""], [1.0, 2.0], [0.1, 0.2]), r"predictions\[1\]\.ids\[1\]", "got 0 characters"),
        (_predictions(["x", "y" * 257], [1.0, 2.0], [0.1, 0.2]), r"predictions\[1\]\.ids\[1\]", "257"),
        (_predictions(["x", "y"], [1.0, math.nan], [0.1, 0.2]), r"predictions\[1\]\.t\[1\]", "finite"),
        (
            PredictionRows(project="p", subject=SUBJECT, ids=["x"], t=[1.0], values=[0.3]),
            r"predictions\[1\]\.values\[0\]",
            "expected a dict",
        ),
        (
            PredictionRows(project="p", subject=SUBJECT, ids=["x"], t=[1.0], values=[{"s": object()}]),
            r"predictions\[1\]\.values\[0\]\.s",
            "cannot store",
        ),
    ],
)
def test_a_malformed_batch_is_refused_whole_naming_the_field(store, bad, field, message):
    _write(store, predictions=[_predictions(["old"], [0.5], [0.4])])
    before = _contents(store)
    batch = Batch(
        runs=[RunStart(id="r1", project="p", name="r1", created_at=time.time())],
        points=[Points(project="p", subject="r1", run_id="r1", name=["x"], step=[0], t=[1.0], value=[1.0])],
        predictions=[_predictions(["late"], [1.0], [0.9]), bad],
        labels=[_labels(["late", "old"], [1, 0], [5.0, 5.0])],
    )
    with pytest.raises(StoreError, match=f"batch {batch.id}.*{field}.*{message}") as info:
        store.write(batch)
    assert not info.value.transient  # sending it again cannot help: the writer must drop it
    assert _contents(store) == before
    # the batch id was not used up: once fixed, the same batch is applied
    batch.predictions.pop()
    assert store.write(batch).applied
    assert store.labels.counts("p", SUBJECT) == (2, 2)


def test_bad_labels_are_refused_naming_the_field(store):
    bad = LabelRows(project="p", subject=SUBJECT, ids=["a", "b"], values=[1], t=[1.0, 2.0])
    with pytest.raises(StoreError, match=r"labels\[0\]\.values .*expected one entry per id \(2\), got 1"):
        store.write(Batch(labels=[bad]))
    with pytest.raises(StoreError, match=r"labels\[0\]\.values\[0\]: expected a label, got None"):
        store.write(
            Batch(labels=[LabelRows(project="p", subject=SUBJECT, ids=["a"], values=[None], t=[1.0])])
        )
    with pytest.raises(StoreError, match=r"labels\[0\]\.subject"):
        store.write(Batch(labels=[LabelRows(project="p", subject="s" * 321, ids=["a"], values=[1], t=[1.0])]))
    assert store.runs.list() == [] and store.labels.get("p", SUBJECT, "a") == (None, None)


def test_a_prediction_of_an_unknown_run_is_refused(store):
    with pytest.raises(StoreError, match="batch"):
        store.write(Batch(predictions=[_predictions(["a"], [1.0], [0.5], run_id="no-such-run")]))
    assert store.labels.counts("p", SUBJECT) == (0, 0)
    _write(store, runs=[RunStart(id="r1", project="p", name="r1", created_at=time.time())])
    _write(store, predictions=[_predictions(["a"], [1.0], [0.5], run_id="r1")])
    assert store.labels.counts("p", SUBJECT) == (1, 0)


def test_two_subjects_and_two_projects_do_not_mix(store):
    other = "model:fraud-clf@1.4.0"
    _write(
        store,
        predictions=[
            _predictions(["a", "b"], [1.0, 2.0], [0.9, 0.8]),
            _predictions(["a", "c"], [1.0, 3.0], [0.1, 0.2], subject=other),
            PredictionRows(project="q", subject=SUBJECT, ids=["a"], t=[1.0], values=[{"score": 0.0}]),
        ],
        labels=[_labels(["a"], [1], [5.0]), _labels(["a", "c"], [0, 0], [6.0, 7.0], subject=other)],
    )
    assert store.labels.joined("p", SUBJECT) == Joined(["a"], [1.0], [{"score": 0.9, "label": 1}], [1], [5.0])
    j = store.labels.joined("p", other)
    assert (j.ids, j.labels, j.label_t) == (["a", "c"], [0, 0], [6.0, 7.0])
    assert [p["score"] for p in j.predictions] == [0.1, 0.2]
    assert store.labels.counts("p", SUBJECT) == (2, 1)
    assert store.labels.counts("p", other) == (2, 2)
    assert store.labels.counts("q", SUBJECT) == (1, 0)
    assert store.labels.get("q", SUBJECT, "a") == ({"score": 0.0}, None)


def test_an_unknown_project_or_subject_reads_empty(store):
    _write(store, predictions=[_predictions(["a"], [1.0], [0.9])], labels=[_labels(["a"], [1], [2.0])])
    for project, subject in (("nope", SUBJECT), ("p", "model:nope@1")):
        assert store.labels.joined(project, subject) == Joined([], [], [], [], [])
        assert store.labels.counts(project, subject) == (0, 0)
        assert store.labels.get(project, subject, "a") == (None, None)


def test_ten_thousand_predictions_and_labels_in_one_batch(store):
    n = 10_000
    ids = [f"req-{i:05d}" for i in range(n)]
    t = [1_700_000_000.0 + i * 0.5 for i in range(n)]
    scores = [(i % 100) / 100 for i in range(n)]
    # every third prediction has its label; the label says whether the score was above 0.5
    labelled = list(range(0, n, 3))
    batch = Batch(
        predictions=[_predictions(ids, t, scores)],
        labels=[
            _labels(
                [ids[i] for i in labelled],
                [int(scores[i] > 0.5) for i in labelled],
                [t[i] + 86400 for i in labelled],
            )
        ],
    )

    inserts: list[tuple[str, bool]] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith(("INSERT INTO predictions", "INSERT INTO labels")):
            inserts.append((statement[:24], executemany))

    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.write(batch).applied
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    # one executemany per table, not a statement per row
    assert len(inserts) == 2 and all(many for _, many in inserts), inserts

    assert store.labels.counts("p", SUBJECT) == (n, len(labelled))
    # (a subject new to PostgreSQL's statistics once drew a plan quadratic in the rows, 5 s here: the
    # predictions in range are a materialised CTE on PostgreSQL; speed belongs in bench/, not here)
    j = store.labels.joined("p", SUBJECT)
    assert j.ids == [ids[i] for i in labelled]
    assert j.t == [t[i] for i in labelled]
    assert [p["score"] for p in j.predictions] == [scores[i] for i in labelled]
    assert j.labels == [int(p["label"]) for p in j.predictions]
    assert j.label_t == [t[i] + 86400 for i in labelled]
    # a middle slice: [t[3000], t[6000]) holds predictions 3000..5999, of which every third is labelled
    assert store.labels.counts("p", SUBJECT, t[3000], t[6000]) == (3000, 1000)
