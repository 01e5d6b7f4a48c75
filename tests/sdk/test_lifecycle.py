"""How a run ends: at interpreter exit, by an uncaught exception, or killed (found and marked crashed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from watchkeeper.store import Store

SCRIPT = """
import sys, time, os
import watchkeeper as wk
uri, mode = sys.argv[1], sys.argv[2]
run = wk.init(project="life", uri=uri, flush_interval=0.05)
print(run.id, flush=True)
for i in range(20000):
    run.log({"x": i, "y": 0.5})
if mode == "raise":
    raise ValueError("bad batch at step 7")
if mode == "hang":
    from watchkeeper.store import Store
    store = Store(uri)
    deadline = time.time() + 60
    while not store.signals.summaries(run.id) and time.time() < deadline:
        time.sleep(0.05)  # until the writer has persisted some of what was logged (a busy machine is slow)
    print("ready", flush=True)
    time.sleep(600)
"""


def _spawn(uri: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, uri, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_exit_without_finish_flushes_everything_and_finishes(store_uri):
    p = _spawn(store_uri, "exit")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    store = Store(store_uri)
    info = store.runs.get(out.split()[0])
    assert info.status == "finished" and info.ended_at is not None
    assert {s.name: s.count for s in store.signals.summaries(info.id)} == {"x": 20000, "y": 20000}
    assert info.summary["x"] == 19999


def test_an_uncaught_exception_marks_the_run_failed(store_uri):
    p = _spawn(store_uri, "raise")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "bad batch at step 7" in err  # the user's traceback is untouched
    info = Store(store_uri).runs.get(out.split()[0])
    assert info.status == "failed"
    assert info.error == "ValueError: bad batch at step 7"
    assert Store(store_uri).signals.summaries(info.id)[0].count == 20000


def test_a_killed_process_leaves_a_crashed_run_not_an_open_one(store_uri):
    p = _spawn(store_uri, "hang")
    run_id = p.stdout.readline().strip()
    assert p.stdout.readline().strip() == "ready"
    store = Store(store_uri)
    assert store.runs.get(run_id).status == "running"
    assert store.runs.reap() == []  # alive: not reaped
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    assert store.runs.reap() == [run_id]  # same host, pid gone: crashed at once
    info = store.runs.get(run_id)
    assert info.status == "crashed" and info.ended_at is not None
    # what was written before the kill is still there
    assert store.signals.summaries(run_id)[0].count > 0


def test_a_stale_heartbeat_from_another_host_is_crashed(store_uri):
    from watchkeeper.store import Batch, RunStart

    store = Store(store_uri)
    store.write(
        Batch(runs=[RunStart(id="r", project="p", name="r", created_at=time.time() - 600, host="far")])
    )
    assert store.runs.reap(stale_after=120) == ["r"]
