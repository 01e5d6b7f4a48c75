"""Several worker processes watching the same deployment into one store: each is its own run, and merging
their windows gives exact totals."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from watchkeeper.profile import Profile
from watchkeeper.store import Store

WORKER = """
import contextlib, sys
import watchkeeper as wk

uri, worker, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
run = wk.init(project="serve", model="clf", version="2", uri=uri, name=f"worker-{worker}", window=3600,
              system_metrics=False)

@run.watch(features=lambda x: {"x": x}, id=lambda x: f"w{worker}-{x}")
def predict(x):
    if x % 10 == 0:
        raise RuntimeError("bad row")
    return {"score": x / calls}

for i in range(calls):
    with contextlib.suppress(RuntimeError):
        predict(i)
run.finish()
"""


def test_workers_merge_to_exact_totals(store_uri):
    calls = [3000, 2000, 1000]
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, store_uri, str(w), str(n)], stderr=subprocess.PIPE)
        for w, n in enumerate(calls)
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    with Store(store_uri) as store:
        windows = store.profiles.windows("serve", "model:clf@2")
        assert len({w.run_id for w in windows}) == 3
        merged = Profile.from_bytes(windows[0].data)
        for w in windows[1:]:
            merged = merged.merge(Profile.from_bytes(w.data))
        ep = merged.traffic.endpoints["predict"]
        assert ep.requests == sum(calls) and ep.latency.count == sum(calls)
        assert ep.errors == {"RuntimeError": sum(n // 10 for n in calls)}
        assert merged.rows == sum(calls)
        xs = np.concatenate([np.arange(n, dtype=float) for n in calls])
        assert merged["x"].mean == pytest.approx(xs.mean(), rel=1e-12)
        assert merged["score"].count == sum(n - n // 10 for n in calls)
        assert store.labels.counts("serve", "model:clf@2") == (sum(n - n // 10 for n in calls), 0)
        assert sorted(r.name for r in store.runs.list()) == ["worker-0", "worker-1", "worker-2"]


def test_forked_workers_of_a_preloaded_app_each_continue_as_their_own_run(store_uri):
    """gunicorn --preload: wk.init and the decorator run in the master, then workers fork."""
    import os

    import watchkeeper as wk

    run = wk.init(project="serve", model="clf", version="3", uri=store_uri, window=3600, system_metrics=False)

    @run.watch(features=lambda x: {"x": x})
    def predict(x):
        return {"score": x}

    for i in range(5):
        predict(i)
    children = []
    for worker in range(2):
        pid = os.fork()
        if pid == 0:  # a worker: serve, then exit as gunicorn's workers do (atexit runs finish)
            code = 1
            try:
                for i in range(100 * (worker + 1)):
                    predict(i)
                run.finish()
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    for pid in children:
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0
    run.finish()
    with Store(store_uri) as store:
        windows = store.profiles.windows("serve", "model:clf@3")
        by_run = {}
        for w in windows:
            by_run[w.run_id] = by_run.get(w.run_id, 0) + Profile.from_bytes(w.data).traffic.calls.requests
        assert sorted(by_run.values()) == [5, 100, 200]
        assert by_run[run.id] == 5  # the master's own calls stay in the master's run
        runs = store.runs.list()
        children = [r for r in runs if r.id != run.id]
        assert len(runs) == 3 and all(r.name.startswith(f"{run.name}-") for r in children)
        assert all(r.status == "finished" and r.model == "clf" and r.version == "3" for r in runs)
