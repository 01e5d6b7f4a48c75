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
