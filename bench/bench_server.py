"""Ingest throughput of ``watchkeeper server``: 8 client processes send window profiles and sampled request
rows through the SDK's HTTP transport as fast as the server takes them, into SQLite and into PostgreSQL.

The bar (issue): 8 client processes sending windows and samples for 60 s with zero loss and the server's
memory flat; at least 20,000 sample rows/s and 1,000 window-profiles/s into SQLite on this machine, more on
PostgreSQL. Printed: window-profiles/s, sample rows/s, the events/s the ingested profiles represent (the sum
of their ``rows`` over the duration), the per-batch ingest latency p50/p99 seen by the clients, the server's
RSS over time and its CPU, and PASS or MISS per bar.

Run: ``.venv/bin/python bench/bench_server.py`` (about 10 minutes: 2 runs of 60 s per configuration, the
medians printed; ``--repeats 3`` takes about 15; ``--quick`` is a smoke run of about 2 minutes: one run of
10 s per configuration). The exit code is 0 whether or not the bars are met; it is non-zero only when the
benchmark itself fails: a server did not start, a client failed, or the store does not hold exactly what
the clients had acknowledged.

**The server** is the real command, ``watchkeeper server --no-auth --host 127.0.0.1 --port <free port>
--uri <store> --workers N --no-monitor`` (``--no-monitor`` where the command has it: the monitors are
another load than ingest, and their own batches would upset the exact count of batch ids below), started
as a subprocess (its log, uvicorn's access log included, goes to a file:
that is what a user gets). Stores: a new SQLite file, and a new PostgreSQL database
(``postgresql+psycopg://postgres@127.0.0.1:5432/<new>``, created and dropped by the benchmark; the admin URI
is ``WATCHKEEPER_BENCH_PG_URI``, and PostgreSQL is left out, saying why, when it cannot be reached). Each
store is measured with ``--workers 1`` and ``--workers 2``; the configurations alternate within each round.
The store is migrated and its project created (one run-start batch) before the server starts.

**The data** is built once, in this process, and reused by every client: one window profile of a model with
25 features (20 numeric, 5 categorical) and 2 outputs over ``--window-rows`` events (1,000 by default: a
1-s window of a replica at 1,000 requests/s), with its traffic section (the endpoint's latencies and errors,
two stages), made by ``watchkeeper.profile`` and serialised once; and a sampled request row as the watcher
writes it (``t``, ``id``, ``latency_ms``, ``status``, ``error``, the 25 inputs, the outputs, stage times).
A batch is what one replica's writer sends when windows close: ``--profiles-per-batch`` window profiles (4)
with the profile's bytes and a new window start each, and ``--samples-per-profile`` (20) sampled rows per
window, each with its own id. 20 rows per profile is the ratio of the issue's two bars, and the watcher's
default 1% sampling of a 2,000-request window.

**The clients** are 8 processes of this file (``--client``). Each makes an ``HttpTransport`` (the SDK's
HTTP path: the binary body form once the server's first answer lists it in ``Accept-Post``, else gzip JSON;
retries, the on-disk spool) with a spool directory of its own, starts a run with one
batch, waits for the common start, then sends batches one after the other until the duration is over. A
batch whose ``send`` returns without spooling was acknowledged by the server; one that was spooled is resent
by ``close()`` at the end. Latency per batch is measured twice: the whole ``send`` (the client's JSON and
gzip encoding included), and the HTTP exchange alone, timed by an ``httpx`` transport handed to
``HttpTransport(http_transport=...)``; the percentiles are over every acknowledged batch of every client.

**Zero loss** is checked in the store after the clients have closed: per client run, the window profiles
and sample rows stored are exactly the acknowledged batches times their contents, the profiles' ``rows`` sum
to that many events, no (run, window start) and no (run, batch time, row index) is stored twice, every
spool is empty and nothing was rejected; ``ingest_batches`` holds one id per batch. Any difference stops the
benchmark with an error.

**Rates** are the acknowledged batches' contents over the time from the common start to the last client's
last acknowledgement. **Memory**: the resident set (``VmRSS`` of ``/proc/<pid>/status``, summed over the
server's process tree: with ``--workers 2`` a supervisor and two workers) is sampled every second; printed
at the start, in the middle (30 s of a 60-s run) and at the end. The first half is warm-up (allocator arenas,
connection pools and caches grow to their working size); the criterion is on the second half: **flat** when
RSS at the end is at most ``FLAT_RATIO`` (10%) and ``FLAT_MIB`` (32 MiB) above RSS in the middle, and the
least-squares slope over the second half is printed in MiB/min beside it. **CPU**: the server tree's, the
PostgreSQL backends' (those connected to the bench database, read from ``pg_stat_activity`` and ``/proc``)
and the clients' CPU seconds over the measured time; the server and the clients share the machine's cores
(2 here), so the server's CPU per batch is printed too, with the rate one core would sustain at it. The
PostgreSQL sessions opened during a run come from ``pg_stat_database.sessions``.

**Where the time goes** (printed after the load runs): the same batches pushed through the server's ingest
steps in this process, one step at a time, without HTTP, wall and CPU time per batch, for both body forms:
the JSON form (the client's ``wire.to_json``, ``json.dumps`` and gzip level 5; the server's gunzip, the
pydantic ``IngestBatch`` validation straight from the JSON text, which decodes the base64 once, and
``to_batch()``) and the binary form (the client's ``wire.to_binary``; the server's ``split_binary``, the
validation of the header and ``to_batch(payload)``); then ``Profile.from_bytes`` of each profile (the ingest
route reads every profile back before writing) and ``Store.write`` on a fresh SQLite file and a fresh
PostgreSQL database; then the whole app (``create_app``: the body middleware, FastAPI, the route) in this
process through Starlette's ``TestClient``, without sockets, with each form; then a cProfile of the steps
of the binary form on SQLite, the functions with the most own time. The server's CPU per batch under load
minus the whole app's is what uvicorn, sockets and the access log cost.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import cProfile
import gzip
import io
import json
import os
import pstats
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
import warnings
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT = "bench"
MODEL, VERSION = "fraud-clf", "1.3.0"
SUBJECT = f"model:{MODEL}@{VERSION}"
CLIENTS = 8
NUMERIC, CATEGORICAL = 20, 5
WINDOW0 = 1_700_000_000.0  # the first window start (replicas' windows are aligned)
ROWS_BAR, PROFILES_BAR = 20_000.0, 1_000.0
FLAT_RATIO, FLAT_MIB = 0.10, 32.0
PG_ADMIN = os.environ.get("WATCHKEEPER_BENCH_PG_URI", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MIB = 1024 * 1024
GZIP_JSON = {"content-type": "application/json", "content-encoding": "gzip"}


# --- the data ----------------------------------------------------------------------------------------------


def columns(rng: Any, n: int) -> tuple[dict[str, Any], Any]:
    """``n`` requests' 25 inputs (20 numeric, 5 categorical) and the model's score."""
    import numpy as np

    inputs: dict[str, Any] = {}
    for j in range(NUMERIC):
        if j % 4 == 0:
            inputs[f"amount_{j}"] = rng.lognormal(3 + j / 10, 1.0, n)
        elif j % 4 == 1:
            inputs[f"count_{j}"] = rng.poisson(3 + j, n).astype(np.float64)
        else:
            inputs[f"score_{j}"] = rng.normal(j, 1 + j / 10, n)
    for j in range(CATEGORICAL):
        levels = [f"{'abcde'[j]}{k}" for k in range(6 + 8 * j)]
        inputs[f"cat_{j}"] = rng.choice(levels, n).tolist()
    return inputs, rng.random(n)


def build_template(window_rows: int, seed: int = 0) -> dict[str, Any]:
    """One window profile (bytes, base64) and one sampled request row, as the SDK would make them."""
    import numpy as np

    from watchkeeper.profile import Profile, Traffic, profile

    rng = np.random.default_rng(seed)
    n = window_rows
    inputs, score = columns(rng, n)
    outputs = {"score": score, "label": (score > 0.7).astype(np.int64)}
    traffic = Traffic()
    errors = [None] * n
    for i in rng.choice(n, max(1, n // 200), replace=False):
        errors[int(i)] = "TimeoutError"
    traffic.endpoint("predict").update(rng.lognormal(-4.0, 0.5, n), errors)
    traffic.stage("features").update(rng.lognormal(-6.0, 0.5, n))
    traffic.stage("model").update(rng.lognormal(-5.0, 0.5, n))
    cols = {**profile(inputs).columns, **profile(outputs).columns}
    roles = {**dict.fromkeys(inputs, "input"), **dict.fromkeys(outputs, "output")}
    prof = Profile(cols, rows=n, traffic=traffic, roles=roles)
    data = prof.to_bytes()
    row = {
        "t": WINDOW0,
        "id": "",
        "latency_ms": 18.3,
        "status": "ok",
        "error": None,
        "inputs": {k: (v[0] if isinstance(v, list) else round(float(v[0]), 6)) for k, v in inputs.items()},
        "outputs": {"score": round(float(score[0]), 6), "label": int(outputs["label"][0])},
        "stages": {"features": 1.7, "model": 6.2},
    }
    return {
        "profile": base64.b64encode(data).decode("ascii"),
        "format_version": prof.format_version,
        "rows": n,
        "columns": len(cols),
        "row": row,
        "row_bytes": len(json.dumps(row, separators=(",", ":"))),
    }


def make_batch(tpl: dict[str, Any], data: bytes, run_id: str, k: int, per_batch: int, samples: int) -> Any:
    """Batch ``k`` of a client: ``per_batch`` windows, each with its profile and ``samples`` sampled rows."""
    from watchkeeper.store import Batch, ProfileLog, SampleRows

    batch = Batch(id=uuid.uuid4().hex)
    row = tpl["row"]
    for j in range(per_batch):
        start = WINDOW0 + k * per_batch + j
        batch.profiles.append(
            ProfileLog(
                project=PROJECT,
                subject=SUBJECT,
                kind="window",
                window_start=start,
                window_end=start + 1.0,
                rows=tpl["rows"],
                data=data,
                format_version=tpl["format_version"],
                run_id=run_id,
            )
        )
        rows = [
            {**row, "t": start + (r + 0.5) / samples, "id": f"{run_id}-{k}-{j}-{r}", "latency_ms": 5.0 + r}
            for r in range(samples)
        ]
        batch.samples.append(
            SampleRows(project=PROJECT, key="samples/predict", t=start, rows=rows, run_id=run_id)
        )
    return batch


# --- a client (a subprocess) -------------------------------------------------------------------------------


def client_main(cfg: argparse.Namespace) -> None:
    import httpx

    from watchkeeper.sdk.http import HttpTransport
    from watchkeeper.store import Batch, RunStart

    class TimedHTTP(httpx.HTTPTransport):
        """The network transport, timing each exchange (request sent, response headers received)."""

        seconds = 0.0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            t0 = time.perf_counter()
            try:
                return super().handle_request(request)
            finally:
                self.seconds += time.perf_counter() - t0

    work = Path(cfg.work)
    i = cfg.client
    tpl = json.loads((work / "template.json").read_text())
    data = base64.b64decode(tpl["profile"])
    timer = TimedHTTP()
    transport = HttpTransport(cfg.url, spool_dir=work / f"spool-{i}", http_transport=timer)
    run_id = f"replica-{i}-{uuid.uuid4().hex[:10]}"
    transport.send(
        Batch(
            runs=[
                RunStart(
                    id=run_id,
                    project=PROJECT,
                    name=f"replica-{i}",
                    created_at=time.time(),
                    job_type="inference",
                    model=MODEL,
                    version=VERSION,
                    host=socket.gethostname(),
                    pid=os.getpid(),
                )
            ]
        )
    )
    make_batch(tpl, data, run_id, -1, cfg.profiles_per_batch, cfg.samples_per_profile)  # warm the imports
    (work / f"ready-{i}").touch()
    go = work / "go"
    while not go.exists():
        time.sleep(0.005)
    start = float(go.read_text())
    while time.time() < start:
        time.sleep(0.001)
    end = start + cfg.seconds
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    acked = spooled = 0
    send_s: list[float] = []
    http_s: list[float] = []
    last_ack = start
    k = 0
    while time.time() < end:
        batch = make_batch(tpl, data, run_id, k, cfg.profiles_per_batch, cfg.samples_per_profile)
        k += 1
        before = transport.spool.spooled
        timer.seconds = 0.0
        t0 = time.perf_counter()
        transport.send(batch)
        dt = time.perf_counter() - t0
        if transport.spool.spooled == before:
            acked += 1
            send_s.append(dt)
            http_s.append(timer.seconds)
            last_ack = time.time()
        else:
            spooled += 1
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    (work / f"done-{i}").touch()
    transport.close()  # resends what was spooled (for at most 30 s)
    left, _ = transport.spool.size()
    rejected = (
        len(list(transport.spool.rejected_dir.glob("*"))) if transport.spool.rejected_dir.exists() else 0
    )
    out = {
        "run_id": run_id,
        "batches": k,
        "acked": acked,
        "spooled": spooled,
        "resent": transport.resent,
        "left": left,
        "rejected": rejected,
        "start": start,
        "last_ack": last_ack,
        "cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "send_s": send_s,
        "http_s": http_s,
    }
    (work / f"client-{i}.json").write_text(json.dumps(out))


# --- the server and what it uses ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, from the parent ids in /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def usage(pids: list[int]) -> tuple[int, float]:
    """(RSS in bytes, CPU seconds) summed over ``pids`` (those still running)."""
    rss, cpu = 0, 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss += int(line.split()[1]) * 1024
        fields = stat.rsplit(")", 1)[1].split()
        cpu += (int(fields[11]) + int(fields[12])) / tick
    return rss, cpu


class Sampler:
    """(seconds since start, RSS bytes, CPU seconds) of a process tree every second, from a thread; and the
    CPU seconds of the database backends ``db_pids()`` names (PostgreSQL's, which do the database's share of
    each write), per backend, so that the CPU of a backend that has exited since is kept. A backend that
    lives less than a second between two samples is missed: ``db_backends`` counts the backends seen, and the
    database CPU is a lower bound."""

    def __init__(self, pid: int, db_pids: Any = None) -> None:
        self.pid = pid
        self.db_pids = db_pids
        self.samples: list[tuple[float, int, float, float]] = []
        self._db_first: dict[int, float] = {}  # backend pid -> CPU seconds when first seen (0 if new)
        self._db_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.t0 = 0.0

    @property
    def db_backends(self) -> int:
        return len(self._db_last)

    def start(self, t0: float) -> None:
        self.t0 = t0
        if self.db_pids is not None:  # backends open before the start count from their CPU then
            for pid in self.db_pids():
                self._db_first[pid] = usage([pid])[1]
        self._thread.start()

    def sample(self) -> None:
        rss, cpu = usage(process_tree(self.pid))
        if self.db_pids is not None:
            for pid in self.db_pids():
                self._db_last[pid] = usage([pid])[1]
                self._db_first.setdefault(pid, 0.0)
        db_cpu = sum(v - self._db_first[p] for p, v in self._db_last.items())
        self.samples.append((time.time() - self.t0, rss, cpu, db_cpu))

    def _run(self) -> None:
        if self._stop.wait(max(0.0, self.t0 - time.time())):
            return
        self.sample()
        while not self._stop.wait(1.0):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def watchkeeper_command() -> list[str]:
    script = Path(sys.executable).with_name("watchkeeper")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from watchkeeper.cli import main; main()"]


def no_monitor_option() -> list[str]:
    """``["--no-monitor"]`` where ``watchkeeper server`` runs monitors unless told not to: what is measured
    is ingest, and the monitors' own batches (the signals they derive from the windows) would add batch
    ids no client sent."""
    help_text = subprocess.run(
        [*watchkeeper_command(), "server", "--help"], capture_output=True, text=True, check=False
    ).stdout
    return ["--no-monitor"] if "--no-monitor" in help_text else []


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/api/v1/health", timeout=1.0) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(
        f"the server at {url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}"
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully, its workers too
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def pg_database(prefix: str = "wk_bench") -> Any:
    """A new PostgreSQL database, dropped afterwards; yields its URI."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def pg_backends(uri: str) -> Any:
    """A function listing the pids of the PostgreSQL backends connected to the database of ``uri``."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_size=1)
    name = sa.engine.make_url(uri).database

    def pids() -> list[int]:
        with admin.connect() as conn:
            q = sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :db")
            return [int(p) for p in conn.execute(q, {"db": name}).scalars()]

    def sessions() -> int:
        """Sessions ever opened on the database (counted by PostgreSQL when each one ends)."""
        time.sleep(0.5)  # the last backends to exit report their session a moment later
        with admin.connect() as conn:
            q = sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :db")
            return int(conn.execute(q, {"db": name}).scalar_one())

    pids.dispose = admin.dispose  # type: ignore[attr-defined]
    pids.sessions = sessions  # type: ignore[attr-defined]
    return pids


def pg_unreachable() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # no server, no driver, refused: all mean "not here"
        return f"{type(exc).__name__}: {str(exc)[:200]}"
    return None


@contextlib.contextmanager
def store_uri(kind: str, work: Path) -> Any:
    if kind == "sqlite":
        yield f"sqlite:///{work}/store/watchkeeper.db"
    else:
        with pg_database() as uri:
            yield uri


# --- one measurement ---------------------------------------------------------------------------------------


def create_project(uri: str) -> None:
    """Migrate the store and create the project (one batch, a run start) before the server starts: what is
    measured is ingest into an existing project, not the migration. (Before a fix in ``Store.write``, 8
    clients creating a project at once could fail one of them on PostgreSQL; ``tests/server/test_replicas.py``
    covers that case.)"""
    from watchkeeper.store import Batch, RunStart, Store

    with Store(uri) as store:
        store.write(Batch(runs=[RunStart("bench-setup", PROJECT, "setup", time.time())]))


def stored_counts(uri: str) -> dict[str, Any]:
    """Per run: window profiles, their summed rows, distinct window starts, sample rows, distinct sample
    positions; and the number of batch ids."""
    import sqlalchemy as sa

    from watchkeeper.store import Store
    from watchkeeper.store.schema import ingest_batches, profiles, samples

    out: dict[str, Any] = {}
    with Store(uri) as store, store.connect() as conn:
        q = sa.select(
            profiles.c.run_id,
            sa.func.count(),
            sa.func.sum(profiles.c.rows),
            sa.func.count(sa.distinct(profiles.c.window_start)),
        ).where(profiles.c.kind == "window")
        for run_id, n, rows, starts in conn.execute(q.group_by(profiles.c.run_id)):
            out.setdefault(run_id, {}).update(profiles=n, rows=int(rows), starts=starts)
        q = sa.select(samples.c.run_id, sa.func.count()).group_by(samples.c.run_id)
        for run_id, n in conn.execute(q):
            out.setdefault(run_id, {})["samples"] = n
        distinct = sa.select(samples.c.run_id, samples.c.t, samples.c.row_index).distinct().subquery()
        q = sa.select(distinct.c.run_id, sa.func.count()).group_by(distinct.c.run_id)
        for run_id, n in conn.execute(q):
            out.setdefault(run_id, {})["distinct_samples"] = n
        batches = conn.execute(sa.select(sa.func.count()).select_from(ingest_batches)).scalar_one()
    return {"runs": out, "batches": batches}


def verify(clients: list[dict[str, Any]], stored: dict[str, Any], cfg: argparse.Namespace) -> None:
    """Raise unless the store holds exactly what the clients had acknowledged, once."""
    problems = []
    for i, c in enumerate(clients):
        acked = c["acked"] + c["resent"]
        if c["left"] or c["rejected"] or c["resent"] != c["spooled"]:
            problems.append(
                f"client {i}: {c['spooled']} batches spooled, {c['resent']} resent, {c['left']} left in "
                f"the spool, {c['rejected']} rejected"
            )
        p = acked * cfg.profiles_per_batch
        want = {
            "profiles": p,
            "rows": p * cfg.window_rows,
            "starts": p,
            "samples": p * cfg.samples_per_profile,
            "distinct_samples": p * cfg.samples_per_profile,
        }
        got = {k: stored["runs"].get(c["run_id"], {}).get(k, 0) for k in want}
        if got != want:
            problems.append(f"client {i} (run {c['run_id']}): stored {got}, acknowledged {want}")
    batches = sum(c["acked"] + c["resent"] for c in clients) + len(clients) + 1  # + the run starts
    if stored["batches"] != batches:
        problems.append(f"ingest_batches holds {stored['batches']} ids, {batches} batches were acknowledged")
    extra = set(stored["runs"]) - {c["run_id"] for c in clients}
    if extra:
        problems.append(f"rows of runs no client made: {sorted(extra)}")
    if problems:
        raise RuntimeError("data loss or duplication:\n  " + "\n  ".join(problems))


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def measure(kind: str, workers: int, cfg: argparse.Namespace, work: Path) -> dict[str, Any]:
    for p in list(work.iterdir()):
        if p.name != "template.json":
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    env = {**os.environ}
    for var in ("WATCHKEEPER_URI", "WATCHKEEPER_TOKEN", "WATCHKEEPER_SPOOL_DIR"):
        env.pop(var, None)
    with store_uri(kind, work) as uri, contextlib.ExitStack() as files:
        create_project(uri)
        cmd = [*watchkeeper_command(), "server", "--host", "127.0.0.1", "--port", str(port), "--uri", uri]
        cmd += ["--no-auth", "--workers", str(workers), *no_monitor_option()]
        clients: list[subprocess.Popen[bytes]] = []
        logf = files.enter_context(open(log, "wb"))
        server = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=work)
        db_pids = pg_backends(uri) if kind == "postgresql" else None
        sessions = sessions0 = db_pids.sessions() if db_pids is not None else 0
        try:
            wait_healthy(url, server, log)
            results, sampler, start = load(url, cfg, work, env, clients, files, server.pid, db_pids)
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
                    c.wait()
            stop(server)
            if db_pids is not None:
                sessions = db_pids.sessions() - sessions0
                db_pids.dispose()
        stored = stored_counts(uri)
    verify(results, stored, cfg)
    duration = max(c["last_ack"] for c in results) - start
    acked = sum(c["acked"] for c in results)
    profiles = acked * cfg.profiles_per_batch
    samples = sampler.samples
    mid = min(samples, key=lambda s: abs(s[0] - duration / 2))
    cpu_server = samples[-1][2] - samples[0][2]
    cpu_db = samples[-1][3] - samples[0][3]
    return {
        "kind": kind,
        "workers": workers,
        "duration": duration,
        "batches": acked,
        "profiles_s": profiles / duration,
        "rows_s": profiles * cfg.samples_per_profile / duration,
        "events_s": profiles * cfg.window_rows / duration,
        "send_p50_ms": percentile([x for c in results for x in c["send_s"]], 0.5) * 1e3,
        "send_p99_ms": percentile([x for c in results for x in c["send_s"]], 0.99) * 1e3,
        "http_p50_ms": percentile([x for c in results for x in c["http_s"]], 0.5) * 1e3,
        "http_p99_ms": percentile([x for c in results for x in c["http_s"]], 0.99) * 1e3,
        "rss": [(t, rss) for t, rss, _, _ in samples],
        "rss_start": samples[0][1],
        "rss_mid": mid[1],
        "rss_mid_t": mid[0],
        "rss_end": samples[-1][1],
        "cpu_server": cpu_server,
        "cpu_db": cpu_db,
        "cpu_clients": sum(c["cpu_s"] for c in results),
        "spooled": sum(c["spooled"] for c in results),
        "server_ms_per_batch": (cpu_server + cpu_db) / max(acked, 1) * 1e3,
        "db_sessions": sessions,
    }


def load(
    url: str,
    cfg: argparse.Namespace,
    work: Path,
    env: dict[str, str],
    clients: list[subprocess.Popen[bytes]],
    files: contextlib.ExitStack,
    server_pid: int,
    db_pids: Any,
) -> tuple[list[dict[str, Any]], Sampler, float]:
    """Start the clients (appended to ``clients``), let them send, sample the server; (the clients'
    results, the sampler, the common start time)."""
    me = [sys.executable, str(Path(__file__).resolve()), "--work", str(work), "--url", url]
    me += ["--seconds", str(cfg.seconds), "--window-rows", str(cfg.window_rows)]
    me += ["--profiles-per-batch", str(cfg.profiles_per_batch)]
    me += ["--samples-per-profile", str(cfg.samples_per_profile)]

    def check(i: int, c: subprocess.Popen[bytes]) -> None:
        if c.poll() is not None and (c.returncode != 0 or not (work / f"done-{i}").exists()):
            raise RuntimeError(f"client {i} exited {c.returncode}:\n{_tail(work / f'client-{i}.err')}")

    for i in range(cfg.clients):
        err = files.enter_context(open(work / f"client-{i}.err", "wb"))  # noqa: SIM115 - closed by files
        clients.append(subprocess.Popen([*me, "--client", str(i)], env=env, stderr=err))
    deadline = time.monotonic() + 120
    while not all((work / f"ready-{i}").exists() for i in range(cfg.clients)):
        for i, c in enumerate(clients):
            check(i, c)
        if time.monotonic() > deadline:
            raise RuntimeError("the clients did not start within 120 s")
        time.sleep(0.05)
    start = time.time() + 0.5
    sampler = Sampler(server_pid, db_pids)
    sampler.start(start)
    (work / "go.tmp").write_text(repr(start))
    os.replace(work / "go.tmp", work / "go")
    while not all((work / f"done-{i}").exists() for i in range(cfg.clients)):
        for i, c in enumerate(clients):
            check(i, c)
        time.sleep(0.05)
    sampler.stop()
    for i, c in enumerate(clients):
        c.wait(120)
        check(i, c)
    return [json.loads((work / f"client-{i}.json").read_text()) for i in range(cfg.clients)], sampler, start


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        return path.read_text(errors="replace")[-3000:]
    return ""


def flatness(r: dict[str, Any]) -> tuple[bool, float]:
    """(flat, slope of RSS over the second half in MiB/min)."""
    half = [(t, rss) for t, rss in r["rss"] if t >= r["rss_mid_t"]]
    slope = 0.0
    if len(half) >= 3:
        ts = [t for t, _ in half]
        ys = [rss / MIB for _, rss in half]
        tm, ym = statistics.fmean(ts), statistics.fmean(ys)
        var = sum((t - tm) ** 2 for t in ts)
        if var:
            slope = sum((t - tm) * (y - ym) for t, y in zip(ts, ys, strict=True)) / var * 60
    growth = r["rss_end"] - r["rss_mid"]
    return growth <= min(FLAT_RATIO * r["rss_mid"], FLAT_MIB * MIB), slope


# --- where the time goes -----------------------------------------------------------------------------------


def breakdown(tpl: dict[str, Any], cfg: argparse.Namespace, kinds: list[str], work: Path) -> None:
    """Each step of the ingest path, in this process, on the batches the clients send, in both body forms;
    then the whole app in this process (no sockets); then a cProfile of the steps of the binary form."""
    with warnings.catch_warnings():  # starlette's TestClient warns about its own httpx use
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from watchkeeper.profile import Profile
    from watchkeeper.server import create_app
    from watchkeeper.server.schema import IngestBatch
    from watchkeeper.store import Batch, RunStart, Store, wire

    data = base64.b64decode(tpl["profile"])
    n = 8 if cfg.quick else 30
    per_batch = cfg.profiles_per_batch
    max_body = 64 * MIB

    def encode(batch: Any) -> bytes:  # the JSON form, as watchkeeper.sdk.http sends it without binary
        text = json.dumps(wire.to_json(batch), allow_nan=False, separators=(",", ":"))
        return gzip.compress(text.encode(), compresslevel=5, mtime=0)

    def read_binary(body: bytes) -> Any:  # ... and with a binary one
        header, payload = wire.split_binary(body, max_body)
        return IngestBatch.model_validate_json(header, context={"sizes": True}).to_batch(payload)

    def check_profiles(batch: Any) -> None:  # what the ingest route does before writing
        for log in batch.profiles:
            Profile.from_bytes(log.data)

    steps: dict[str, tuple[float, float]] = {}  # name -> (wall ms, CPU ms) per batch

    def timed(name: str, fn: Any, items: list[Any]) -> list[Any]:
        t0, c0 = time.perf_counter(), time.process_time()
        out = [fn(x) for x in items]
        steps[name] = (
            (time.perf_counter() - t0) / len(items) * 1e3,
            (time.process_time() - c0) / len(items) * 1e3,
        )
        return out

    def batches(run_id: str, first: int) -> list[Any]:
        return [
            make_batch(tpl, data, run_id, k, per_batch, cfg.samples_per_profile)
            for k in range(first, first + n)
        ]

    sizes: dict[str, float] = {}
    for kind in kinds:
        with store_uri(kind, work / f"breakdown-{kind}") as uri, Store(uri) as store:
            run_id = f"breakdown-{kind}"
            store.write(Batch(runs=[RunStart(run_id, PROJECT, run_id, time.time())]))
            if kind == kinds[0]:
                jsons = timed("client: JSON form (to_json, json.dumps, gzip 5)", encode, batches(run_id, 0))
                binaries = timed("client: binary form (wire.to_binary)", wire.to_binary, batches(run_id, 0))
                sizes = {"json": len(jsons[0]) / 1024, "binary": len(binaries[0]) / 1024}
                text = [gzip.decompress(b) for b in jsons]
                timed("server JSON: gunzip", gzip.decompress, jsons)
                docs = timed(
                    "server JSON: validation (base64 decoded once)", IngestBatch.model_validate_json, text
                )
                timed("server JSON: to_batch()", lambda m: m.to_batch(), docs)
                frames = timed(
                    "server binary: split_binary", lambda b: wire.split_binary(b, max_body), binaries
                )
                docs = timed(
                    "server binary: header validation",
                    lambda f: IngestBatch.model_validate_json(f[0], context={"sizes": True}),
                    frames,
                )
                decoded = timed(
                    "server binary: to_batch(payload)",
                    lambda x: x[0].to_batch(x[1][1]),
                    list(zip(docs, frames, strict=True)),
                )
                timed("server: Profile.from_bytes of each profile", check_profiles, decoded)
            else:
                decoded = [read_binary(wire.to_binary(b)) for b in batches(run_id, 0)]
            timed(f"server: Store.write ({kind})", store.write, decoded)
            # the whole app (body middleware, FastAPI, the route) in this process, without sockets
            with TestClient(create_app(store)) as client:
                for form, headers, enc, first in (
                    ("JSON", GZIP_JSON, encode, n),
                    ("binary", {"content-type": wire.BINARY_TYPE}, wire.to_binary, 2 * n),
                ):

                    def post(body: bytes, client: Any = client, headers: dict[str, str] = headers) -> None:
                        r = client.post("/api/v1/ingest", content=body, headers=headers)
                        if r.status_code != 200 or not r.json()["applied"]:
                            raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:500]}")

                    bodies = [enc(b) for b in batches(run_id, first)]
                    timed(f"whole app in process, {form}, TestClient ({kind})", post, bodies)
    print(
        f"\nWhere the time goes, per batch ({per_batch} profiles of {len(data) / 1024:.0f} KiB, "
        f"{per_batch * cfg.samples_per_profile} sample rows; body {sizes['json']:.0f} KiB as gzip JSON, "
        f"{sizes['binary']:.0f} KiB binary), in one process, mean of {n} batches:"
    )
    print(f"  {'':<58} {'wall ms':>8} {'CPU ms':>8} {'CPU ms/profile':>15}")
    for name, (wall, cpu) in steps.items():
        print(f"  {name:<58} {wall:8.1f} {cpu:8.1f} {cpu / per_batch:15.2f}")
    for form in ("JSON", "binary"):
        common = sum(
            cpu for name, (_, cpu) in steps.items() if name.startswith((f"server {form}:", "server: Profile"))
        )
        for kind in kinds:
            total = common + steps[f"server: Store.write ({kind})"][1]
            print(
                f"  server steps, {form} form, {kind}: {total:.1f} ms CPU per batch (PostgreSQL's own work "
                f"not counted), so one core takes at most {per_batch * 1e3 / total:,.0f} profiles/s "
                "without HTTP"
            )
    if "sqlite" in kinds:
        with store_uri("sqlite", work / "breakdown-profile") as uri, Store(uri) as store:
            run_id = "breakdown-cprofile"
            store.write(Batch(runs=[RunStart(run_id, PROJECT, run_id, time.time())]))
            bodies = [wire.to_binary(b) for b in batches(run_id, 0)]
            prof = cProfile.Profile()
            prof.enable()
            for body in bodies:
                batch = read_binary(body)
                check_profiles(batch)
                store.write(batch)
            prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        lines = [ln for ln in out.getvalue().splitlines() if ln.strip()]
        start = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
        print("\n  cProfile of the server steps (binary form, SQLite), by own time:")
        for ln in lines[start : start + 13]:
            print("  " + ln)


# --- the report --------------------------------------------------------------------------------------------


def report(results: dict[tuple[str, int], list[dict[str, Any]]], cfg: argparse.Namespace) -> None:
    def med(rs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rs)

    print(
        f"\n{cfg.clients} clients, {cfg.seconds:g} s per run, medians over {cfg.repeats} run(s); batch = "
        f"{cfg.profiles_per_batch} window profiles ({cfg.window_rows} events each) + "
        f"{cfg.profiles_per_batch * cfg.samples_per_profile} sample rows; {os.cpu_count()} cores shared by "
        "the server and the clients"
    )
    head = (
        f"{'store':<11}{'workers':>8}{'profiles/s':>11}{'rows/s':>8}{'events/s':>10}{'p50 ms':>8}"
        f"{'p99 ms':>8}{'http p99':>9}{'RSS MiB: start':>15}{'mid':>6}{'end':>6}{'MiB/min':>8}{'flat':>5}"
        f"{'CPU s: srv':>11}{'db':>6}{'cli':>6}{'ms/batch':>9}{'1 core':>8}{'spooled':>8}{'PG conns':>9}"
    )
    print(head)
    print("-" * len(head))
    for (kind, workers), rs in results.items():
        flats = [flatness(r) for r in rs]
        last = rs[-1]
        per_batch = med(rs, "server_ms_per_batch")
        print(
            f"{kind:<11}{workers:>8}{med(rs, 'profiles_s'):>11,.0f}{med(rs, 'rows_s'):>8,.0f}"
            f"{med(rs, 'events_s'):>10,.0f}{med(rs, 'send_p50_ms'):>8.0f}{med(rs, 'send_p99_ms'):>8.0f}"
            f"{med(rs, 'http_p99_ms'):>9.0f}{last['rss_start'] / MIB:>15.0f}{last['rss_mid'] / MIB:>6.0f}"
            f"{last['rss_end'] / MIB:>6.0f}{statistics.median(s for _, s in flats):>8.1f}"
            f"{'yes' if all(f for f, _ in flats) else 'NO':>5}{med(rs, 'cpu_server'):>11.1f}"
            f"{med(rs, 'cpu_db'):>6.1f}{med(rs, 'cpu_clients'):>6.1f}{per_batch:>9.1f}"
            f"{cfg.profiles_per_batch * 1e3 / per_batch:>8,.0f}{sum(r['spooled'] for r in rs):>8}"
            + (f"{med(rs, 'db_sessions'):>9.0f}" if kind == "postgresql" else f"{'-':>9}")
        )
    print(
        "profiles/s, rows/s, events/s: acknowledged, over the run. p50/p99: the whole send() per batch (the "
        "client's encoding included); http p99: the HTTP exchange alone.\nRSS: the server's process tree, "
        f"last run; MiB/min: slope over the second half; flat: end <= mid + min({FLAT_RATIO:.0%}, "
        f"{FLAT_MIB:.0f} MiB) in every run.\nCPU s over the run: srv the server's processes, db PostgreSQL's "
        "backends for the bench database, cli the 8 clients; ms/batch: (srv + db) CPU per batch; 1 core: "
        "the profiles/s one core would take at that cost (db: a lower bound, backends living < 1 s are "
        "missed).\nPG conns: PostgreSQL sessions opened during the run (SQLAlchemy's default pool keeps 5 "
        "per process and closes the overflow connections of more concurrent requests)."
    )
    print("\nZero loss: every run's store held exactly the acknowledged profiles and rows, each once.")
    by_store: dict[str, list[tuple[int, float, float]]] = {}
    for (kind, workers), rs in results.items():
        by_store.setdefault(kind, []).append((workers, med(rs, "profiles_s"), med(rs, "rows_s")))
    for kind, rows in by_store.items():
        workers, prof_s, rows_s = max(rows, key=lambda x: x[1])
        verdict = kind == "sqlite"
        bars = (("sample rows/s", rows_s, ROWS_BAR), ("window-profiles/s", prof_s, PROFILES_BAR))
        for what, got, bar in bars:
            if verdict:
                tag = "PASS" if got >= bar else "MISS"
                print(f"{tag:<9}{kind} --workers {workers}: {got:,.0f} {what} (bar: {bar:,.0f})")
            else:
                print(f"{'':<9}{kind} --workers {workers}: {got:,.0f} {what} (issue: more than SQLite)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run of 10 s per configuration")
    parser.add_argument("--seconds", type=float, help="load per run (default 60; quick 10)")
    parser.add_argument("--repeats", type=int, help="runs per configuration (default 2; quick 1)")
    parser.add_argument("--stores", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--workers", default="1,2", help="server worker counts to measure")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--window-rows", type=int, default=1000, help="events per window profile")
    parser.add_argument("--profiles-per-batch", type=int, default=4)
    parser.add_argument("--samples-per-profile", type=int, default=20)
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)
    cfg.seconds = cfg.seconds or (10.0 if cfg.quick else 60.0)
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 2)
    if cfg.client is not None:  # we are one of the clients
        client_main(cfg)
        return

    kinds = [k.strip() for k in cfg.stores.split(",") if k.strip()]
    if "postgresql" in kinds and (why := pg_unreachable()):
        print(f"PostgreSQL left out: not reachable at {PG_ADMIN}: {why}")
        kinds.remove("postgresql")
    workers = [int(w) for w in cfg.workers.split(",")]
    print(f"{os.cpu_count()} cores: the server (and its workers) and the {cfg.clients} clients share them")
    with tempfile.TemporaryDirectory(prefix="wk-bench-server-") as tmp:
        work = Path(tmp) / "load"
        work.mkdir()
        t0 = time.perf_counter()
        tpl = build_template(cfg.window_rows)
        (work / "template.json").write_text(json.dumps(tpl))
        size = len(base64.b64decode(tpl["profile"]))
        print(
            f"window profile: {tpl['columns']} columns over {tpl['rows']} events, {size / 1024:.0f} KiB "
            f"(built in {time.perf_counter() - t0:.1f} s); sample row: {tpl['row_bytes']} bytes of JSON"
        )
        results: dict[tuple[str, int], list[dict[str, Any]]] = {(k, w): [] for k in kinds for w in workers}
        for rep in range(cfg.repeats):
            for kind, w in results:
                print(f"run {rep + 1}/{cfg.repeats}: {kind}, --workers {w} ...", end=" ", flush=True)
                r = measure(kind, w, cfg, work)
                results[(kind, w)].append(r)
                print(
                    f"{r['profiles_s']:,.0f} profiles/s, {r['rows_s']:,.0f} rows/s, p99 "
                    f"{r['send_p99_ms']:.0f} ms, RSS {r['rss_start'] / MIB:.0f} -> "
                    f"{r['rss_end'] / MIB:.0f} MiB",
                    flush=True,
                )
        report(results, cfg)
        breakdown(tpl, cfg, kinds, Path(tmp))


if __name__ == "__main__":
    main()
