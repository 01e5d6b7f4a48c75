"""The one write path: a batch is applied whole, once, and keeps NaN and infinity."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

from watchkeeper.errors import StoreError
from watchkeeper.store import Batch, Points, RunStart, RunUpdate, SampleRows, Store


def _start(store: Store, run_id: str = "run1", project: str = "p") -> None:
    store.write(
        Batch(runs=[RunStart(id=run_id, project=project, name=f"name-{run_id}", created_at=time.time())])
    )


def _points(run_id: str, names: list[str], values: list[float], steps: list[int] | None = None) -> Points:
    n = len(names)
    return Points(
        project="p",
        subject=run_id,
        run_id=run_id,
        name=names,
        step=steps if steps is not None else list(range(n)),
        t=[1000.0 + i for i in range(n)],
        value=values,
    )


def test_points_round_trip_with_nan_and_infinity(store):
    _start(store)
    values = [1.5, math.nan, math.inf, -math.inf, -2.0]
    store.write(Batch(points=[_points("run1", ["x"] * 5, values)]))
    h = store.signals.history("run1", "x")
    np.testing.assert_array_equal(h.step, np.arange(5))
    assert h.value[0] == 1.5 and math.isnan(h.value[1])
    assert h.value[2] == math.inf and h.value[3] == -math.inf and h.value[4] == -2.0
    (s,) = store.signals.summaries("run1")
    assert (s.name, s.count, s.step, s.last) == ("x", 5, 4, -2.0)
    # min and max skip NaN but see the infinities
    assert s.min == -math.inf and s.max == math.inf


def test_a_resent_batch_is_applied_once(store):
    _start(store)
    batch = Batch(points=[_points("run1", ["a", "b"], [1.0, 2.0])])
    assert store.write(batch).applied
    assert not store.write(batch).applied
    assert {s.name: s.count for s in store.signals.summaries("run1")} == {"a": 1, "b": 1}


def test_a_batch_with_one_bad_part_writes_nothing(store):
    _start(store)
    store.write(Batch(points=[_points("run1", ["a"], [1.0])]))
    bad = Batch(
        points=[_points("run1", ["a", "a"], [2.0, 3.0], steps=[1, 2])],
        samples=[SampleRows(project="p", key="t", t=1.0, rows=[{"x": 1}], run_id="run1")],
        # a run that does not exist: its series violates the foreign key, failing the transaction
        run_updates=[RunUpdate(id="run1", summary={"k": 1})],
    )
    bad.points.append(_points("no-such-run", ["z"], [9.0]))
    with pytest.raises(StoreError, match=f"batch {bad.id}"):
        store.write(bad)
    assert [(s.name, s.count) for s in store.signals.summaries("run1")] == [("a", 1)]
    assert store.samples.tables("run1") == []
    assert store.runs.get("run1").summary == {}
    # and the store is fully usable afterwards, with the same batch id still unapplied
    bad.points.pop()
    assert store.write(bad).applied
    assert [(s.name, s.count) for s in store.signals.summaries("run1")] == [("a", 3)]


def test_run_updates_and_listing(store):
    _start(store, "r1", "alpha")
    _start(store, "r2", "beta")
    store.write(
        Batch(run_updates=[RunUpdate(id="r1", status="finished", summary={"auc": 0.9, "bad": math.nan})])
    )
    r1 = store.runs.get("r1")
    assert r1.status == "finished" and r1.summary["auc"] == 0.9 and math.isnan(r1.summary["bad"])
    assert [r.id for r in store.runs.list("alpha")] == ["r1"]
    assert {r.id for r in store.runs.list()} == {"r1", "r2"}
    assert store.runs.get("name-r2").id == "r2"  # by unique name
    with pytest.raises(KeyError, match="no run"):
        store.runs.get("nope")


def test_reap_marks_dead_runs_crashed(store):
    now = time.time()
    store.write(
        Batch(
            runs=[
                RunStart(id="alive", project="p", name="a", created_at=now, host="h1", pid=1),
                RunStart(id="stale", project="p", name="b", created_at=now - 1000, host="other", pid=1),
                RunStart(id="gone", project="p", name="c", created_at=now, host="h1", pid=2**22 + 12345),
            ]
        )
    )
    crashed = store.runs.reap(now=now, stale_after=120, host="h1")
    assert sorted(crashed) == ["gone", "stale"]
    assert store.runs.get("alive").status == "running"
    assert store.runs.get("stale").status == "crashed"


WRITER = """
import sys, time
from watchkeeper.store import Batch, Points, RunStart, Store
uri, run_id, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store(uri)
store.write(Batch(runs=[RunStart(id=run_id, project="p", name=run_id, created_at=time.time())]))
for i in range(0, n, 500):
    steps = list(range(i, i + 500))
    store.write(Batch(points=[Points(project="p", subject=run_id, run_id=run_id, name=["x"] * 500,
                                     step=steps, t=[float(s) for s in steps], value=[1.0] * 500)]))
store.close()
"""


def test_several_processes_write_one_sqlite_file(sqlite_uri):
    Store(sqlite_uri).close()
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, sqlite_uri, f"w{i}", "5000"], stderr=subprocess.PIPE)
        for i in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    store = Store(sqlite_uri)
    counts = {r.id: store.signals.summaries(r.id)[0].count for r in store.runs.list()}
    assert counts == {f"w{i}": 5000 for i in range(4)}


def test_old_batch_ids_are_pruned(sqlite_uri, monkeypatch):
    import sqlalchemy as sa

    from watchkeeper.store import store as store_module
    from watchkeeper.store.schema import ingest_batches

    monkeypatch.setattr(store_module, "PRUNE_BATCH_IDS_EVERY", 5)
    store = Store(sqlite_uri)
    with store.begin_write() as conn:
        conn.execute(ingest_batches.insert(), [{"id": "ancient", "received_at": time.time() - 30 * 86400}])
    for _ in range(5):
        store.write(Batch(run_updates=[RunUpdate(id="none")]))
    with store.connect() as conn:
        ids = set(conn.execute(sa.select(ingest_batches.c.id)).scalars())
    assert "ancient" not in ids and len(ids) == 5
