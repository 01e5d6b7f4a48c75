"""Several ``watchkeeper server`` processes over one PostgreSQL database give exact totals (the issue's
replica test).

Three servers (the real command, ``--no-auth``, each on its own port) share the session's PostgreSQL
database. While they run:

* three client processes, replicas of one model, each ``wk.init(uri=<its server>)`` with 1-s windows, call a
  watched ``predict`` (a few calls raise), log a point per call and a label for every third prediction;
* four threads, each with its own ``HttpTransport`` per server, send batches round-robin to the servers and
  send every batch again, with the same id, to the next server (a resend to another replica must not be
  applied again); then pairs of threads send the same batches at the same moment to two different servers,
  so that two replicas race to apply one id;
* a thread scrapes ``/metrics`` of every server the whole time, so each replica's running totals are advanced
  while PostgreSQL commits profiles out of id order.

At the end, the store holds exactly what was sent, once: points, window profile rows, requests and errors in
the merged traffic, predictions and labels; and ``/metrics`` of every replica reports the same, exact,
request and error totals. About 20 s. Skips when PostgreSQL cannot be reached (the ``pg_uri`` fixture).

Also here: the bug this test first ran into, now fixed in ``Store.write``. ``Store`` cached the id of a
project or series it had just inserted before the transaction committed, so a concurrent request of the same
server process could use an id that was not committed yet; on PostgreSQL its write then failed a foreign
key and the batch was refused with 422 (and dropped by the SDK). Two tests reproduce that case
deterministically with one ``Store``; in the replica test, the threads' first batches create their series
concurrently.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from watchkeeper.profile import Profile, Traffic
from watchkeeper.store import Batch, LabelRows, Points, ProfileLog, RunStart, SampleRows, Store
from watchkeeper.store.schema import labels, predictions, projects

httpx = pytest.importorskip("httpx", reason="the HTTP transport needs httpx (the dev extra)")
pytest.importorskip("fastapi", reason="the server needs fastapi (the dev extra)")
pytest.importorskip("uvicorn", reason="the server needs uvicorn (the dev extra)")

from watchkeeper.sdk.http import HttpTransport  # noqa: E402

PROJECT = "replicas"
SERVERS = 3
CALLS = 300  # watched calls per client process
THREADS, ROUNDS = 4, 9  # batch senders, and batches each sends (each twice)
RACES = 8  # batches sent by two threads at once to two servers
POINTS = 25  # points per batch

CLIENT = """
import json, sys, time
import watchkeeper as wk

url, i, n, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
run = wk.init(project="replicas", name=f"replica-{i}", model="fraud", version="2", uri=url,
              system_metrics=False, flush_interval=0.2, window=1.0)

def predict(x):
    if int(x) % 50 == 49:
        raise ValueError("bad input")
    return {"score": x / 1000, "label": int(x) % 2}

watched = run.watch(predict, features=lambda x: {"x": x}, id=lambda x: f"{i}-{int(x)}", name="predict")
for k in range(n):
    try:
        watched(float(k))
    except ValueError:
        pass
    run.log({"calls": k})
    if k % 3 == 0:
        run.log_label(f"{i}-{k}", k % 2)
    time.sleep(0.004)
run.finish()
with open(out, "w") as f:
    json.dump({"id": run.id}, f)
"""


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
_free_port = _servers["free_port"]


def _command() -> list[str]:
    script = Path(sys.executable).with_name("watchkeeper")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from watchkeeper.cli import main; main()"]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not become healthy within {timeout:.0f} s")


@pytest.fixture
def replicas(pg_uri, tmp_path):
    """The URLs of SERVERS ``watchkeeper server`` processes over the same PostgreSQL database."""
    env = {**os.environ}
    for var in ("WATCHKEEPER_URI", "WATCHKEEPER_TOKEN"):
        env.pop(var, None)
    procs, urls, logs = [], [], []
    try:
        for i in range(SERVERS):
            port = _free_port()
            log = tmp_path / f"server-{i}.log"
            cmd = [*_command(), "server", "--host", "127.0.0.1", "--port", str(port), "--uri", pg_uri]
            with open(log, "wb") as f:
                procs.append(
                    subprocess.Popen(
                        [*cmd, "--no-auth"], env=env, stdout=f, stderr=subprocess.STDOUT, cwd=tmp_path
                    )
                )
            urls.append(f"http://127.0.0.1:{port}")
            logs.append(log)
        for url, proc, log in zip(urls, procs, logs, strict=True):
            _wait_healthy(url, proc, log)
        yield urls
    finally:
        for proc in procs:
            _stop(proc)


# -- the batches the threads send -------------------------------------------------------------------------


def _window(subject: str, start: float, requests: int, errors: int) -> ProfileLog:
    """A window of ``requests`` calls (``errors`` of them raised TimeoutError) with one row each."""
    traffic = Traffic()
    seconds = np.linspace(0.005, 0.05, requests)
    traffic.endpoint("predict").update(seconds, ["TimeoutError"] * errors + [None] * (requests - errors))
    prof = Profile({}, rows=requests, traffic=traffic)
    return ProfileLog(
        PROJECT, subject, "window", start, start + 1.0, requests, prof.to_bytes(), prof.format_version
    )


def _batch(run_id: str, n: int) -> Batch:
    """Batch number ``n``: POINTS points (steps n*POINTS ...), a window of 10+n requests (n % 3 errors), two
    sample rows and labels for ids L<n> and L<n+1> (so consecutive batches overlap by one id)."""
    steps = list(range(n * POINTS, (n + 1) * POINTS))
    return Batch(
        id=f"replica-batch-{n:04d}",
        points=[
            Points(
                PROJECT,
                run_id,
                ["a"] * POINTS,
                steps,
                [1000.0 + s for s in steps],
                [float(s) for s in steps],
                run_id=run_id,
            )
        ],
        profiles=[_window("model:batch@1", 1_700_000_000.0 + n, 10 + n, n % 3)],
        samples=[
            SampleRows(
                PROJECT,
                "samples/predict",
                1_700_000_000.0 + n,
                [{"n": n, "r": 0}, {"n": n, "r": 1}],
                run_id=run_id,
            )
        ],
        labels=[LabelRows(PROJECT, "model:batch@1", [f"L{n}", f"L{n + 1}"], [n, n + 1], [1.0 * n, 1.0 * n])],
    )


# -- reading the totals -----------------------------------------------------------------------------------


def _metric(text: str, name: str, **want: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``want``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and all(f'{k}="{v}"' in m.group(1).split(",") for k, v in want.items()):
            total += float(m.group(2))
    return total


def _merged_traffic(store: Store, subject: str) -> tuple[int, int, int]:
    """(windows, summed rows, requests of the merged traffic) of a subject."""
    windows = store.profiles.windows(PROJECT, subject)
    merged = Profile()
    for w in windows:
        merged = merged.merge(Profile.from_bytes(w.data))
    return len(windows), sum(w.rows for w in windows), merged.traffic.endpoints["predict"].requests


def _count(store: Store, table: sa.Table, subject: str) -> int:
    q = (
        sa.select(sa.func.count())
        .select_from(table.join(projects, projects.c.id == table.c.project_id))
        .where(projects.c.name == PROJECT, table.c.subject == subject)
    )
    with store.connect() as conn:
        return conn.execute(q).scalar_one()


def test_three_replicas_over_one_postgresql_give_exact_totals(replicas, pg_uri, tmp_path, monkeypatch):
    monkeypatch.setenv("WATCHKEEPER_SPOOL_DIR", str(tmp_path / "spool"))
    env = {**os.environ, "WATCHKEEPER_SPOOL_DIR": str(tmp_path / "spool")}
    env.pop("WATCHKEEPER_TOKEN", None)

    transports = [
        [
            HttpTransport(url, spool_dir=tmp_path / f"spool-{t}-{s}", retry_time=20.0)
            for s, url in enumerate(replicas)
        ]
        for t in range(THREADS)
    ]
    run_id = "replica-batches"
    applied: dict[str, list[bool]] = {}

    def send_twice(t: int, n: int) -> None:
        """Batch n to replica n % SERVERS, then the same batch (same id) to the next replica."""
        batch = _batch(run_id, n)
        first = transports[t][n % SERVERS].send(batch).applied
        again = transports[t][(n + 1) % SERVERS].send(batch).applied
        with lock:
            applied[batch.id] = [first, again]

    lock = threading.Lock()
    errors: list[BaseException] = []
    clients: list[subprocess.Popen] = []
    scraping = threading.Event()
    scrapes = [0] * SERVERS

    def scrape() -> None:
        while not scraping.is_set():
            for i, url in enumerate(replicas):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/metrics", timeout=10).status_code == 200:
                        scrapes[i] += 1
            time.sleep(0.2)

    scraper = threading.Thread(target=scrape, daemon=True)
    outs = [tmp_path / f"client-{i}.json" for i in range(SERVERS)]
    try:
        start = Batch(runs=[RunStart(run_id, PROJECT, "batches", time.time(), job_type="inference")])
        assert transports[0][0].send(start).applied
        assert not transports[1][2].send(start).applied  # the same id at another replica

        # the model's replicas: one client process per server
        for i, (url, out) in enumerate(zip(replicas, outs, strict=True)):
            cmd = [sys.executable, "-c", CLIENT, url, str(i), str(CALLS), str(out)]
            clients.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
        scraper.start()

        def sender(t: int) -> None:
            try:
                for j in range(ROUNDS):
                    send_twice(t, t * ROUNDS + j)
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [threading.Thread(target=sender, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not errors, errors

        # two replicas race to apply the same id
        def racer(t: int, batch: Batch, server: int, barrier: threading.Barrier) -> None:
            try:
                barrier.wait(10)
                result = transports[t][server].send(batch).applied
                with lock:
                    applied.setdefault(batch.id, []).append(result)
            except BaseException as exc:
                errors.append(exc)

        for r in range(RACES):
            batch = _batch(run_id, THREADS * ROUNDS + r)
            barrier = threading.Barrier(2)
            pair = [
                threading.Thread(target=racer, args=(0, batch, r % SERVERS, barrier)),
                threading.Thread(target=racer, args=(1, batch, (r + 1) % SERVERS, barrier)),
            ]
            for th in pair:
                th.start()
            for th in pair:
                th.join(30)
        assert not errors, errors

        for i, c in enumerate(clients):
            _, err = c.communicate(timeout=60)
            assert c.returncode == 0, f"client {i} failed:\n{err[-3000:]}"
    finally:
        scraping.set()
        if scraper.is_alive():
            scraper.join(30)
        for row in transports:
            for tr in row:
                tr.close()
        for c in clients:
            _stop(c)

    sent = THREADS * ROUNDS + RACES
    # every id applied exactly once, whichever replica got it first
    assert len(applied) == sent
    for n in range(sent):
        got = applied[f"replica-batch-{n:04d}"]
        if n < THREADS * ROUNDS:
            assert got == [True, False], (n, got)  # sent, then resent to the next replica
        else:
            assert sorted(got) == [False, True], (n, got)  # two replicas at once: one applies it
    for row in transports:
        for tr in row:
            assert tr.spool.spooled == 0, "a batch was spooled: a server did not answer in time"
    assert min(scrapes) > 0

    run_ids = [json.loads(o.read_text())["id"] for o in outs]
    calls, raised = SERVERS * CALLS, SERVERS * (CALLS // 50)
    labelled = SERVERS * len(range(0, CALLS, 3))
    batch_requests = sum(10 + n for n in range(sent))
    batch_errors = sum(n % 3 for n in range(sent))
    with Store(pg_uri) as store:
        # the threads' batches
        history = store.signals.history(run_id, "a")
        assert len(history) == sent * POINTS
        np.testing.assert_array_equal(history.step, np.arange(sent * POINTS))
        np.testing.assert_array_equal(history.value, np.arange(sent * POINTS, dtype=np.float64))
        assert _merged_traffic(store, "model:batch@1") == (sent, batch_requests, batch_requests)
        found = store.samples.query(project=PROJECT, run_ids=[run_id], limit=1000)
        assert sorted((r.data["n"], r.data["r"]) for r in found.rows) == [
            (n, r) for n in range(sent) for r in (0, 1)
        ]
        assert _count(store, labels, "model:batch@1") == sent + 1  # ids L0 ... L<sent>
        # the model's replicas
        for i, rid in enumerate(run_ids):
            points = store.signals.history(rid, "calls")
            assert len(points) == CALLS, f"client {i}"
            np.testing.assert_array_equal(points.value, np.arange(CALLS, dtype=np.float64))
            assert store.runs.get(rid).status == "finished"
        windows, rows, requests = _merged_traffic(store, "model:fraud@2")
        assert (rows, requests) == (calls, calls)
        assert windows >= SERVERS  # each replica closed at least one window of its own
        merged_errors = Profile()
        for w in store.profiles.windows(PROJECT, "model:fraud@2"):
            merged_errors = merged_errors.merge(Profile.from_bytes(w.data))
        assert merged_errors.traffic.endpoints["predict"].errors == {"ValueError": raised}
        assert _count(store, predictions, "model:fraud@2") == calls - raised
        assert _count(store, labels, "model:fraud@2") == labelled
        # labels of calls that raised have no prediction to join
        joined = SERVERS * sum(1 for k in range(0, CALLS, 3) if k % 50 != 49)
        assert store.labels.counts(PROJECT, "model:fraud@2") == (calls - raised, joined)

    # every replica reports the same, exact totals
    for url in replicas:
        text = httpx.get(f"{url}/metrics", timeout=10).text
        fraud = {"project": PROJECT, "model": "fraud", "version": "2", "endpoint": "predict"}
        batch = {"project": PROJECT, "model": "batch", "version": "1", "endpoint": "predict"}
        assert _metric(text, "watchkeeper_requests_total", **fraud) == calls, url
        assert _metric(text, "watchkeeper_errors_total", **fraud, error_type="ValueError") == raised, url
        assert _metric(text, "watchkeeper_requests_total", **batch) == batch_requests, url
        assert (
            _metric(text, "watchkeeper_errors_total", **batch, error_type="TimeoutError") == batch_errors
        ), url
        assert _metric(text, "watchkeeper_request_duration_seconds_count", **fraud) == calls, url
        assert (
            _metric(text, "watchkeeper_windows_total", project=PROJECT, model="batch", version="1") == sent
        ), url


# -- ids cached before their transaction commits (a bug these tests found, fixed in Store.write) ---------
# Store.project_id and Store.series_ids once put the id of a row they had just inserted into the Store's
# shared cache before the transaction committed; on PostgreSQL a concurrent write in the same process (the
# server's thread pool) took the id from the cache, its insert failed the foreign key, and ingest answered
# 422, which the SDK treats as a refusal for good: the batch was dropped.


def _write_during(
    store: Store, hold: Callable[[sa.Connection], object], batch: Batch
) -> BaseException | None:
    """Write ``batch`` from another thread while this one holds a write transaction in which ``hold`` ran
    (what a concurrent request of the same server process does); the other write's exception, if any."""
    outcome: list[BaseException | None] = []

    def other() -> None:
        try:
            store.write(batch)
            outcome.append(None)
        except BaseException as exc:  # reported to the test
            outcome.append(exc)

    thread = threading.Thread(target=other)
    with store.begin_write() as conn:
        hold(conn)
        thread.start()
        thread.join(2)  # it fails at once with the bug; it may also wait for this commit, which is fine
    thread.join(30)
    assert outcome, "the concurrent write did not finish"
    return outcome[0]


def test_a_new_series_written_by_two_concurrent_transactions_of_one_store(pg_uri):
    with Store(pg_uri) as store:
        store.write(Batch(runs=[RunStart("r1", PROJECT, "r1", 1.0)]))
        batch = Batch(points=[Points(PROJECT, "r1", ["loss"], [0], [1.0], [0.5], run_id="r1")])
        error = _write_during(
            store, lambda conn: store.series_ids(conn, PROJECT, "r1", "r1", {}, {"loss"}), batch
        )
        assert error is None, f"the concurrent write failed: {error}"
        assert store.signals.history("r1", "loss").value.tolist() == [0.5]


def test_a_new_project_written_by_two_concurrent_transactions_of_one_store(pg_uri):
    with Store(pg_uri) as store:
        batch = Batch(runs=[RunStart("r2", "brand-new", "r2", 1.0)])
        error = _write_during(store, lambda conn: store.project_id(conn, "brand-new"), batch)
        assert error is None, f"the concurrent write failed: {error}"
        assert store.runs.get("r2").project == "brand-new"
