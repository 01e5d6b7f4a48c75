"""The load shape of docs/scale.md at 1/100: 10 models x 100 replicas (1,000 replica streams), each sending
one 60-s window profile per window (a replica at 1,000 requests/s, 25 features and 2 outputs) and its sampled
request rows through the SDK's ``HttpTransport`` to a real ``watchkeeper server --no-auth`` over PostgreSQL;
then the monitor runner over the stored windows. Printed beside what the sizing model needs at 1/100.

Run: ``.venv/bin/python bench/bench_scale.py`` (about 4 minutes: 2 windows of 1,000 profiles, then the monitor
runner over 20 windows of 100 replicas each and over the same 20 windows pre-merged; ``--quick``, 1 window and
the 60-s window alone in the sizes, about 2-3 minutes). ``--json FILE`` also writes every figure. The exit
code is 0 whatever the verdicts; it is non-zero only when the benchmark itself fails (no PostgreSQL, a server
or client that did not start, a monitor pass with errors, a store that does not hold exactly what the
clients had acknowledged).

**Sizes** (measured in this process before the load; docs/scale.md's model uses them):

* a replica's window as the SDK makes it: a ``watchkeeper.sdk.watcher.Watcher`` with one watched endpoint
  (``features=``, ``outputs=``, ``id=``, the default sampler) is handed the records of ``window x 1,000``
  calls (0.5% of them raising ``TimeoutError``) that completed inside one window, as ``run.watch``'s wrapper
  appends them, and drained: the window profile's bytes, the sampled rows kept, the predictions kept for
  label joins (all: the default ``keep_predictions=1.0`` with ``id=``) and the aggregator's CPU; for windows
  of 10, 60 and 300 s (60 s only with ``--quick``);
* a request as a raw event: one of those calls as a row in the sampled-row form, as JSON, and its share of a
  batch of 1,000 distinct rows as gzip JSON, in the binary form (``wire.to_binary``: the rows are in the
  zlib-compressed header) and as Parquet (zstd) of the window's 60,000 calls;
* merging: a 60-s profile's ``Profile.from_bytes`` + ``merge`` CPU, and the size of the merge of 100
  replicas (a pre-merged minute), of 60 of those (an hour roll-up) and of 24 hours (a day). The hour and the
  day merge copies of the same minutes, so the sketches see an hour's and a day's row counts but not its
  distinct values: KLL's size depends on the count alone, and the categorical sketches are bounded anyway.

**The load.** A pool of ``--pool`` distinct 60-s profiles (``watchkeeper.profile`` over 60,000 rows of the
same generator with the traffic section, the columns the watcher would make, in one vectorised step) is built
once; the 60-s window's 200 sampled rows are the sample template. ``--clients`` client processes share the
1,000 streams (stream ``s`` is replica ``s % 100`` of model ``s // 100``, sent by client ``s % clients``).
Each client starts its streams' runs (batches of 50 run starts), waits for the common start, then sends,
window after window, one batch per stream: the window profile (``pool[(7 s + w) % pool]``) and the 200
sampled rows with this stream's times and ids, which is what a replica's writer sends when a window closes.
One ``HttpTransport`` per client (binary body form, retries, on-disk spool): the server sees ``--clients``
connections, not 1,000, and the windows come as fast as it takes them rather than once a minute. The
server is ``watchkeeper server --no-auth --no-monitor --workers N`` on 127.0.0.1 over a new PostgreSQL
database (created and dropped; admin URI ``WATCHKEEPER_BENCH_PG_URI``, default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``), migrated, with both projects and the 10 model
versions' references (``train``, 100,000 rows) made before it starts. Measured: profiles, sampled rows and
body bytes per second acknowledged (from the common start to the last acknowledgement), the whole ``send``
per batch p50/p99, the CPU per batch of the server's processes and of the database's backends (a lower
bound: backends living under a second are missed), and the bytes a profile and a sampled row take as stored
(``pg_total_relation_size``: table, TOAST and indexes). The store must hold exactly what was acknowledged,
once; any difference stops the benchmark. Then, in this process, the whole app over the same database
through Starlette's ``TestClient`` (no sockets), wall time per batch of a profile alone, of the 200 rows
alone and of both; and the bytes of 20,000 stored prediction rows.

**The monitors.** A ``MonitorRunner`` (the default monitors, each timed) makes one pass in this process over
the stored windows, 10 models x ``--windows``, each the merge of 100 replicas' profiles, and writes their
signals to PostgreSQL. Then the pre-merged variant: an aggregator merges each (model, window)'s 100 profiles
into one (timed) and writes it to a second project, and a second pass processes those windows. Printed: the
pass's wall time and CPU per window (this process, and PostgreSQL's backends), the points per window (the
signals a window gives), each monitor's CPU, and the bytes a point and a roll-up row take as stored.

**Verdicts**: PASS when the measured rate is at least what the model needs at 1/100 (1,000 profiles per 60 s
= 16.7/s with their sampled rows; 10 windows per 60 s for the one runner), with the headroom (measured /
needed) beside it. Then the full load extrapolated linearly from the CPU per batch and per window.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

import bench_server as bs  # noqa: E402 - the server, PostgreSQL and CPU helpers of the ingest benchmark

PROJECT, PREMERGED = "scale", "scale-premerged"
MODELS, REPLICAS, RATE, WINDOW = 10, 100, 1000, 60.0
FULL_MODELS = 1000
ERROR_RATE = 0.005
REFERENCE_ROWS = 100_000
KIB, MIB = 1024, 1024 * 1024


# --- the data ----------------------------------------------------------------------------------------------


def sdk_window(window: float, seed: int) -> dict[str, Any]:
    """One replica's window at RATE requests/s through the SDK's aggregator (see the module docstring)."""
    import numpy as np

    from watchkeeper.sdk.watcher import Watcher

    rng = np.random.default_rng(seed)
    n = int(window * RATE)
    inputs, score = bs.columns(rng, n)  # the ingest benchmark's requests
    names = list(inputs)
    values = [v if isinstance(v, list) else v.tolist() for v in inputs.values()]
    calls = [
        (dict(zip(names, row, strict=True)), f"req-{seed}-{i:08d}")
        for i, row in enumerate(zip(*values, strict=True))
    ]
    latency_ns = (rng.lognormal(-4.0, 0.5, n) * 1e9).astype(np.int64)
    failed = rng.random(n) < ERROR_RATE
    watcher = Watcher(project=PROJECT, subject="model:m00@1", run_id="sizes", window=window, seed=seed)
    spec = Watcher.spec("predict", features=lambda c: c[0], outputs=lambda y: y, id=lambda c: c[1])
    queue = watcher._register(spec)  # what run.watch's wrapper appends to, one record per call
    offset = time.time_ns() - time.perf_counter_ns()
    start = (math.floor(time.time() / window) - 2) * window  # a closed window, clear of its edges below
    ends = ((start + 0.01 + np.sort(rng.random(n)) * (window - 0.02)) * 1e9 - offset).astype(np.int64)
    for i in range(n):
        t1 = int(ends[i])
        if failed[i]:
            queue.append(
                (t1 - int(latency_ns[i]), t1, TimeoutError("upstream timed out"), (calls[i],), None, None)
            )
        else:
            out = {"score": float(score[i]), "label": int(score[i] > 0.7)}
            queue.append((t1 - int(latency_ns[i]), t1, None, (calls[i],), None, out))
    c0 = time.process_time()
    drained = watcher.drain(final=True)
    cpu = time.process_time() - c0
    if len(drained.profiles) != 1 or drained.profiles[0].rows != n:
        raise RuntimeError(f"expected one window profile of {n} rows, got {drained.profiles}")
    return {
        "window": window,
        "requests": n,
        "profile": drained.profiles[0].data,
        "rows": [r for s in drained.samples for r in s.rows],
        "predictions": sum(len(p) for p in drained.predictions),
        "cpu": cpu,
        "raw": (inputs, score, latency_ns, failed),
    }


def pool_profile(seed: int, n: int) -> Any:
    """A 60-s window profile of one replica, made by ``watchkeeper.profile`` in one vectorised step."""
    import numpy as np

    from watchkeeper.profile import Profile, Traffic, profile

    rng = np.random.default_rng(seed)
    inputs, score = bs.columns(rng, n)  # the ingest benchmark's requests
    outputs = {"score": score, "label": (score > 0.7).astype(np.int64)}
    errors: list[str | None] = [None] * n
    for i in np.flatnonzero(rng.random(n) < ERROR_RATE):
        errors[int(i)] = "TimeoutError"
    traffic = Traffic()
    traffic.endpoint("predict").update(rng.lognormal(-4.0, 0.5, n), errors)
    cols = {**profile(inputs).columns, **profile(outputs).columns}
    roles = {**dict.fromkeys(inputs, "input"), **dict.fromkeys(outputs, "output")}
    return Profile(cols, rows=n, traffic=traffic, roles=roles)


def event_rows(win: dict[str, Any], k: int) -> list[dict[str, Any]]:
    """The window's first ``k`` requests as rows in the form of the SDK's sampled rows (distinct values)."""
    template = next(r for r in win["rows"] if r["status"] == "ok")
    inputs, score, latency_ns, failed = win["raw"]
    out = []
    for i in range(k):
        error = bool(failed[i])
        out.append(
            {
                **template,
                "t": template["t"] + i / RATE,
                "id": f"req-{i:08d}",
                "latency_ms": float(latency_ns[i] / 1e6),
                "status": "TimeoutError" if error else "ok",
                "error": "upstream timed out" if error else None,
                "inputs": {
                    name: (v[i] if isinstance(v, list) else float(v[i])) for name, v in inputs.items()
                },
                "outputs": None if error else {"score": float(score[i]), "label": int(score[i] > 0.7)},
            }
        )
    return out


def raw_event_sizes(win: dict[str, Any]) -> dict[str, float]:
    """Bytes per request as a raw event, in the forms of the module docstring."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from watchkeeper.store import Batch, SampleRows, wire

    ok = next(r for r in win["rows"] if r["status"] == "ok")
    inputs, score, latency_ns, failed = win["raw"]
    n = len(score)
    events = event_rows(win, 1000)
    batch = Batch(samples=[SampleRows(PROJECT, "samples/predict", ok["t"], events, run_id="r")])
    text = json.dumps(wire.to_json(batch), separators=(",", ":")).encode()
    table = pa.table(
        {
            "t": pa.array([ok["t"] + i / RATE for i in range(n)]),
            "id": pa.array([f"req-{i:08d}" for i in range(n)]),
            "latency_ms": pa.array(latency_ns / 1e6),
            "status": pa.array(["TimeoutError" if f else "ok" for f in failed]),
            **{k: pa.array(v) for k, v in inputs.items()},
            "score": pa.array(score),
            "label": pa.array((score > 0.7).astype("int64")),
        }
    )
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return {
        "json": statistics.fmean(len(json.dumps(e, separators=(",", ":"))) for e in events),
        "gzip_json": len(gzip.compress(text, compresslevel=5, mtime=0)) / len(events),
        "binary": len(wire.to_binary(batch)) / len(events),
        "parquet": buf.tell() / n,
    }


def merge_sizes(pool: list[bytes]) -> dict[str, float]:
    """Merge cost per profile, and the sizes of a pre-merged minute, an hour and a day (see the docstring)."""
    from watchkeeper.profile import Profile

    t0, c0 = time.perf_counter(), time.process_time()
    minute = None
    for i in range(REPLICAS):
        p = Profile.from_bytes(pool[i % len(pool)])
        minute = p if minute is None else minute.merge(p)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert minute is not None
    minute_b = minute.to_bytes()
    hour = Profile.from_bytes(minute_b)
    for _ in range(59):
        hour = hour.merge(Profile.from_bytes(minute_b))
    hour_b = hour.to_bytes()
    day = Profile.from_bytes(hour_b)
    for _ in range(23):
        day = day.merge(Profile.from_bytes(hour_b))
    return {
        "merge_ms": cpu / REPLICAS * 1e3,
        "merge_wall_ms": wall / REPLICAS * 1e3,
        "minute": len(minute_b),
        "hour": len(hour_b),
        "day": len(day.to_bytes()),
        "day_rows": day.rows,
    }


# --- a client (a subprocess) -------------------------------------------------------------------------------


def stream_run(s: int, tag: str) -> tuple[str, str, int, int]:
    """(run id, model, model index, replica index) of stream ``s``."""
    m, r = divmod(s, REPLICAS)
    return f"m{m:02d}-r{r:02d}-{tag}", f"m{m:02d}", m, r


def make_batch(meta: dict[str, Any], pool: list[bytes], s: int, w: int, run_id: str, model: str) -> Any:
    from watchkeeper.store import Batch, ProfileLog, SampleRows

    start = meta["w0"] + w * WINDOW
    rows = meta["rows"]
    return Batch(
        profiles=[
            ProfileLog(
                project=PROJECT,
                subject=f"model:{model}@1",
                kind="window",
                window_start=start,
                window_end=start + WINDOW,
                rows=meta["requests"],
                data=pool[(7 * s + w) % len(pool)],
                format_version=meta["format_version"],
                run_id=run_id,
            )
        ],
        samples=[
            SampleRows(
                project=PROJECT,
                key="samples/predict",
                t=start,
                rows=[
                    {**r, "t": start + r["t"] % WINDOW, "id": f"{run_id}-{w}-{k}"} for k, r in enumerate(rows)
                ],
                run_id=run_id,
            )
        ],
    )


def client_main(cfg: argparse.Namespace) -> None:
    import httpx

    from watchkeeper.sdk.http import HttpTransport
    from watchkeeper.store import Batch, RunStart

    class CountingHTTP(httpx.HTTPTransport):
        """The network transport, timing each exchange and counting the request bodies' bytes."""

        seconds = 0.0
        sent = 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            self.sent += len(request.content)
            t0 = time.perf_counter()
            try:
                return super().handle_request(request)
            finally:
                self.seconds += time.perf_counter() - t0

    work, i = Path(cfg.work), cfg.client
    meta = json.loads((work / "meta.json").read_text())
    pool = [(work / f"pool-{k}.bin").read_bytes() for k in range(meta["pool"])]
    streams = [s for s in range(MODELS * REPLICAS) if s % cfg.clients == i]
    tag = uuid.uuid4().hex[:8]
    runs = {s: stream_run(s, tag) for s in streams}
    http = CountingHTTP()
    transport = HttpTransport(cfg.url, spool_dir=work / f"spool-{i}", http_transport=http)
    now = time.time()
    for j in range(0, len(streams), 50):
        starts = [
            RunStart(
                id=runs[s][0],
                project=PROJECT,
                name=f"{runs[s][1]}-replica-{runs[s][3]}",
                created_at=now,
                job_type="inference",
                model=runs[s][1],
                version="1",
                host=f"pod-{s}",
            )
            for s in streams[j : j + 50]
        ]
        transport.send(Batch(runs=starts))
    setup_batches = math.ceil(len(streams) / 50)
    (work / f"ready-{i}").touch()
    go = work / "go"
    while not go.exists():
        time.sleep(0.005)
    start = float(go.read_text())
    while time.time() < start:
        time.sleep(0.001)
    sent0 = http.sent
    cpu0 = os.times()
    acked = spooled = 0
    send_s: list[float] = []
    last_ack = start
    for w in range(meta["windows"]):
        for s in streams:
            run_id, model, _, _ = runs[s]
            batch = make_batch(meta, pool, s, w, run_id, model)
            before = transport.spool.spooled
            t0 = time.perf_counter()
            transport.send(batch)
            dt = time.perf_counter() - t0
            if transport.spool.spooled == before:
                acked += 1
                send_s.append(dt)
                last_ack = time.time()
            else:
                spooled += 1
    cpu1 = os.times()
    body_bytes = http.sent - sent0
    (work / f"done-{i}").touch()
    transport.close()  # resends what was spooled (for at most 30 s)
    left, _ = transport.spool.size()
    out = {
        "runs": [runs[s][0] for s in streams],
        "setup_batches": setup_batches,
        "acked": acked,
        "spooled": spooled,
        "resent": transport.resent,
        "left": left,
        "start": start,
        "last_ack": last_ack,
        "body_bytes": body_bytes,
        "cpu_s": (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system),
        "send_s": send_s,
    }
    (work / f"client-{i}.json").write_text(json.dumps(out))


# --- the load ----------------------------------------------------------------------------------------------


def setup_store(uri: str, reference: Any) -> None:
    """Migrate, create both projects, and give each model version its reference (as a training run would)."""
    from watchkeeper.store import Batch, ProfileLog, RunStart, Store

    now = time.time()
    data = reference.to_bytes()
    with Store(uri) as store:
        for project in (PROJECT, PREMERGED):
            train = f"train-{project}"
            batch = Batch(runs=[RunStart(train, project, "training", now, job_type="train")])
            for m in range(MODELS):
                batch.profiles.append(
                    ProfileLog(
                        project=project,
                        subject=f"model:m{m:02d}@1",
                        kind="reference",
                        window_start=now,
                        window_end=now,
                        rows=reference.rows,
                        data=data,
                        format_version=reference.format_version,
                        run_id=train,
                        reference=(f"m{m:02d}", "1", "train"),
                    )
                )
            store.write(batch)


def run_load(cfg: argparse.Namespace, work: Path, uri: str) -> dict[str, Any]:
    """Start the server and the clients, send, stop; the clients' results and the server's CPU."""
    port = bs.free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "server.log"
    env = {k: v for k, v in os.environ.items() if k not in ("WATCHKEEPER_URI", "WATCHKEEPER_TOKEN")}
    cmd = [*bs.watchkeeper_command(), "server", "--host", "127.0.0.1", "--port", str(port), "--uri", uri]
    cmd += ["--no-auth", "--workers", str(cfg.workers), "--no-monitor"]
    me = [sys.executable, str(Path(__file__).resolve()), "--work", str(work), "--url", url]
    me += ["--clients", str(cfg.clients)]
    clients: list[subprocess.Popen[bytes]] = []
    with contextlib.ExitStack() as files:
        logf = files.enter_context(open(log, "wb"))
        server = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT, cwd=work)
        db_pids = bs.pg_backends(uri)
        try:
            bs.wait_healthy(url, server, log)

            def check(i: int, c: subprocess.Popen[bytes]) -> None:
                if c.poll() is not None and (c.returncode != 0 or not (work / f"done-{i}").exists()):
                    err = (work / f"client-{i}.err").read_text(errors="replace")[-3000:]
                    raise RuntimeError(f"client {i} exited {c.returncode}:\n{err}")

            for i in range(cfg.clients):
                err = files.enter_context(open(work / f"client-{i}.err", "wb"))
                clients.append(subprocess.Popen([*me, "--client", str(i)], env=env, stderr=err))
            deadline = time.monotonic() + 180
            while not all((work / f"ready-{i}").exists() for i in range(cfg.clients)):
                for i, c in enumerate(clients):
                    check(i, c)
                if time.monotonic() > deadline:
                    raise RuntimeError("the clients did not start within 180 s")
                time.sleep(0.05)
            start = time.time() + 0.5
            sampler = bs.Sampler(server.pid, db_pids)
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
        finally:
            for c in clients:
                if c.poll() is None:
                    c.kill()
                    c.wait()
            bs.stop(server)
            db_pids.dispose()
    results = [json.loads((work / f"client-{i}.json").read_text()) for i in range(cfg.clients)]
    samples = sampler.samples
    return {
        "clients": results,
        "start": start,
        "cpu_server": samples[-1][2] - samples[0][2],
        "cpu_db": samples[-1][3] - samples[0][3],
        "rss_end": samples[-1][1],
    }


def verify_and_measure(uri: str, load: dict[str, Any], meta: dict[str, Any], before: int) -> dict[str, Any]:
    """Raise unless the store holds exactly the acknowledged profiles and rows, once; the bytes each takes."""
    import sqlalchemy as sa

    from watchkeeper.store import Store
    from watchkeeper.store.schema import ingest_batches, profiles, samples

    clients = load["clients"]
    problems = []
    for i, c in enumerate(clients):
        if c["left"] or c["resent"] != c["spooled"]:
            problems.append(f"client {i}: {c['spooled']} spooled, {c['resent']} resent, {c['left']} left")
    acked = sum(c["acked"] + c["resent"] for c in clients)
    rows_per = len(meta["rows"])
    runs = [r for c in clients for r in c["runs"]]
    with Store(uri) as store, store.connect() as conn:
        p = profiles.c
        n, rows, distinct = conn.execute(
            sa.select(
                sa.func.count(),
                sa.func.coalesce(sa.func.sum(p.rows), 0),
                sa.func.count(sa.distinct(sa.tuple_(p.run_id, p.window_start))),
            ).where(p.kind == "window", p.run_id.in_(runs))
        ).one()
        n_samples = conn.execute(
            sa.select(sa.func.count()).select_from(samples).where(samples.c.run_id.in_(runs))
        ).scalar_one()
        n_batches = conn.execute(sa.select(sa.func.count()).select_from(ingest_batches)).scalar_one()
        want = {
            "profiles": acked,
            "rows": acked * meta["requests"],
            "distinct": acked,
            "samples": acked * rows_per,
        }
        got = {"profiles": n, "rows": int(rows), "distinct": distinct, "samples": n_samples}
        if got != want:
            problems.append(f"stored {got}, acknowledged {want}")
        setup = sum(c["setup_batches"] for c in clients)
        if n_batches - before != acked + setup:
            problems.append(
                f"ingest_batches gained {n_batches - before} ids, {acked + setup} batches were acknowledged"
            )
        if problems:
            raise RuntimeError("data loss or duplication:\n  " + "\n  ".join(problems))
        conn.execute(sa.text("ANALYZE"))
        size = {
            t: conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
            for t in ("profiles", "samples")
        }
        col, raw = conn.execute(
            sa.select(
                sa.func.avg(sa.func.pg_column_size(p.data)), sa.func.avg(sa.func.octet_length(p.data))
            ).where(p.kind == "window")
        ).one()
        n_all = conn.execute(sa.select(sa.func.count()).select_from(profiles)).scalar_one()
    return {
        "profile_stored": size["profiles"] / n_all,
        "profile_column": float(col),
        "profile_raw": float(raw),
        "sample_stored": size["samples"] / n_samples,
        "acked": acked,
    }


# --- the monitors ------------------------------------------------------------------------------------------


def monitor_pass(uri: str) -> dict[str, Any]:
    """One MonitorRunner pass over everything pending, with each monitor timed."""
    from watchkeeper.monitor.runner import MonitorRunner, default_monitors
    from watchkeeper.store import Store

    spent: dict[str, float] = {}

    def timed(name: str, fn: Any) -> Any:
        def monitor(ctx: Any) -> list[Any]:
            c0 = time.process_time()
            try:
                return list(fn(ctx))
            finally:
                spent[name] = spent.get(name, 0.0) + time.process_time() - c0

        return monitor

    db_pids = bs.pg_backends(uri)
    sampler = bs.Sampler(os.getpid(), db_pids)
    with Store(uri) as store:
        runner = MonitorRunner(
            store, settle=30.0, monitors={n: timed(n, f) for n, f in default_monitors().items()}
        )
        sampler.start(time.time())
        t0, c0 = time.perf_counter(), time.process_time()
        result = runner.run_once()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        sampler.stop()
    db_pids.dispose()
    db_cpu = sampler.samples[-1][3] - sampler.samples[0][3]
    if result.errors or not result.windows:
        raise RuntimeError(f"the monitor pass processed {result.windows} windows with {result.errors} errors")
    return {
        "windows": result.windows,
        "points": result.points,
        "wall": wall,
        "cpu": cpu,
        "db_cpu": db_cpu,
        "monitors": spent,
    }


def premerge(uri: str, windows: int, w0: float) -> dict[str, Any]:
    """The aggregator: merge each (model, window)'s replica profiles into one, written to PREMERGED."""
    from watchkeeper.profile import Profile
    from watchkeeper.store import Batch, ProfileLog, RunStart, Store

    cpu = 0.0
    n = 0
    with Store(uri) as store:
        store.write(Batch(runs=[RunStart("aggregator", PREMERGED, "aggregator", time.time())]))
        for m in range(MODELS):
            subject = f"model:m{m:02d}@1"
            stored = store.profiles.windows(PROJECT, subject, w0, w0 + windows * WINDOW)
            by_start: dict[float, list[bytes]] = {}
            for sp in stored:
                by_start.setdefault(sp.window_start, []).append(sp.data)
            batch = Batch()
            for start, blobs in sorted(by_start.items()):
                c0 = time.process_time()
                merged = Profile.from_bytes(blobs[0])
                for b in blobs[1:]:
                    merged = merged.merge(Profile.from_bytes(b))
                data = merged.to_bytes()
                cpu += time.process_time() - c0
                n += len(blobs)
                batch.profiles.append(
                    ProfileLog(
                        PREMERGED,
                        subject,
                        "window",
                        start,
                        start + WINDOW,
                        merged.rows,
                        data,
                        merged.format_version,
                        "aggregator",
                    )
                )
            store.write(batch)
    return {"cpu": cpu, "profiles": n}


def ingest_split(uri: str, meta: dict[str, Any], pool: list[bytes], n: int) -> dict[str, Any]:
    """The whole ingest app in this process (no sockets, Starlette's TestClient) over the bench database:
    wall time per batch of one profile alone, of the 200 sampled rows alone, and of both (binary form); then
    the bytes a stored prediction row takes (``n`` rows written with ``Store.write``)."""
    import warnings

    import sqlalchemy as sa

    from watchkeeper.profile import Profile
    from watchkeeper.server import create_app
    from watchkeeper.server.schema import IngestBatch
    from watchkeeper.store import Batch, PredictionRows, RunStart, Store, wire

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    out: dict[str, Any] = {}
    with Store(uri) as store:
        run_id = "split"
        store.write(Batch(runs=[RunStart(run_id, PROJECT, run_id, time.time(), model="m00", version="1")]))
        with TestClient(create_app(store)) as client:
            for what, keep in (("profile", "profiles"), ("rows", "samples"), ("both", None)):
                bodies = []
                for k in range(20):
                    b = make_batch(meta, pool, k, 1000 + k, run_id, "m00")
                    if keep == "profiles":
                        b.samples = []
                    elif keep == "samples":
                        b.profiles = []
                    bodies.append(wire.to_binary(b))
                t0 = time.perf_counter()
                for body in bodies:
                    r = client.post(
                        "/api/v1/ingest", content=body, headers={"content-type": wire.BINARY_TYPE}
                    )
                    if r.status_code != 200:
                        raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:300]}")
                out[what] = (time.perf_counter() - t0) / len(bodies) * 1e3
            # what an ingest replica does before the store's write (all a producer in front of a queue does)
            c0 = time.process_time()
            for body in bodies:
                header, payload = wire.split_binary(body, 64 * MIB)
                batch = IngestBatch.model_validate_json(header, context={"sizes": True}).to_batch(payload)
                for log in batch.profiles:
                    Profile.from_bytes(log.data)
            out["parse"] = (time.process_time() - c0) / len(bodies) * 1e3
            text = json.dumps(wire.to_json(batch), allow_nan=False, separators=(",", ":"))
            out["spool_bytes"] = len(gzip.compress(text.encode(), compresslevel=5, mtime=0))
        far = meta["w0"] - 30 * 86400.0  # outside every window the monitors look at
        ids = [f"pred-{i:08d}" for i in range(n)]
        values = [{"score": round(0.001 * (i % 1000), 3), "label": int(i % 10 > 6)} for i in range(n)]
        with store.connect() as conn:
            before = conn.execute(sa.text("SELECT pg_total_relation_size('predictions')")).scalar_one()
        t = [far + i / RATE for i in range(n)]
        store.write(
            Batch(predictions=[PredictionRows(PROJECT, "model:m00@1", ids, t, values, run_id=run_id)])
        )
        with store.connect() as conn:
            after = conn.execute(sa.text("SELECT pg_total_relation_size('predictions')")).scalar_one()
    out["prediction_stored"] = (after - before) / n
    return out


def count_batches(uri: str) -> int:
    import sqlalchemy as sa

    from watchkeeper.store import Store
    from watchkeeper.store.schema import ingest_batches

    with Store(uri) as store, store.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ingest_batches)).scalar_one()


def points_stored(uri: str) -> dict[str, float]:
    import sqlalchemy as sa

    from watchkeeper.store import Store

    with Store(uri) as store, store.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        n = conn.execute(sa.text("SELECT count(*) FROM points")).scalar_one()
        rollups = conn.execute(sa.text("SELECT count(*) FROM point_rollups")).scalar_one()
        size = {
            t: conn.execute(sa.text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
            for t in ("points", "point_rollups", "series")
        }
    return {
        "points": n,
        "rollups": rollups,
        "point_bytes": size["points"] / max(n, 1),
        "rollup_bytes": size["point_rollups"] / max(rollups, 1),
        "series_bytes": size["series"],
    }


# --- the report --------------------------------------------------------------------------------------------


def pct(xs: list[float], q: float) -> float:
    return bs.percentile(xs, q)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 window, sizes of the 60-s window only")
    parser.add_argument("--windows", type=int, help="windows each stream sends (default 2; quick 1)")
    parser.add_argument("--clients", type=int, default=4, help="client processes sharing the 1,000 streams")
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--pool", type=int, help="distinct window profiles (default 16; quick 6)")
    parser.add_argument("--json", help="also write every figure to this file")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)
    if cfg.client is not None:
        client_main(cfg)
        return
    cfg.windows = cfg.windows or (1 if cfg.quick else 2)
    cfg.pool = cfg.pool or (6 if cfg.quick else 16)
    if cfg.windows < 1 or cfg.clients < 1 or cfg.workers < 1 or cfg.pool < 1:
        parser.error("--windows, --clients, --workers and --pool must be at least 1")
    if why := bs.pg_unreachable():
        raise SystemExit(f"PostgreSQL is needed: not reachable at {bs.PG_ADMIN}: {why}")
    t_all = time.perf_counter()
    print(
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores shared by the server, its workers, PostgreSQL "
        f"and {cfg.clients} client processes"
    )
    fig: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "windows": cfg.windows, "clients": cfg.clients}

    # -- sizes
    print("\nSizes (in this process):")
    fig["sdk"] = {}
    sdk60: dict[str, Any] = {}
    for window in (60.0,) if cfg.quick else (10.0, 60.0, 300.0):
        win = sdk_window(window, seed=int(window))
        if window == 60.0:
            sdk60 = win
        fig["sdk"][f"{window:.0f}"] = {
            "profile": len(win["profile"]),
            "samples": len(win["rows"]),
            "errors_sampled": sum(r["status"] != "ok" for r in win["rows"]),
            "predictions": win["predictions"],
            "cpu": win["cpu"],
        }
        print(
            f"  {window:>4.0f}-s window, one replica at {RATE:,} req/s, the SDK's aggregator: profile "
            f"{len(win['profile']) / KIB:,.0f} KiB, {len(win['rows'])} sampled rows, "
            f"{win['predictions']:,} predictions kept (id=), {win['cpu']:.2f} s CPU"
        )
    raw = raw_event_sizes(sdk60)
    fig["raw"] = raw
    print(
        f"  a request as a raw event: {raw['json']:.0f} B of JSON; per row of a batch of 1,000: "
        f"{raw['gzip_json']:.0f} B gzip JSON, {raw['binary']:.0f} B binary form; Parquet (zstd): "
        f"{raw['parquet']:.0f} B"
    )
    t0 = time.perf_counter()
    n = int(WINDOW * RATE)
    reference = pool_profile(10_000, REFERENCE_ROWS)
    pool = [pool_profile(seed, n).to_bytes() for seed in range(cfg.pool)]
    mean_size = statistics.fmean(map(len, pool))
    print(
        f"  pool: {cfg.pool} distinct 60-s profiles, {mean_size / KIB:,.0f} KiB each (the SDK's: "
        f"{len(sdk60['profile']) / KIB:,.0f} KiB), built in {time.perf_counter() - t0:.1f} s"
    )
    merged = merge_sizes(pool)
    fig["merge"] = merged
    print(
        f"  merging: {merged['merge_ms']:.1f} ms CPU per 60-s profile (from_bytes + merge); merged: 100 "
        f"replicas' minute {merged['minute'] / KIB:,.0f} KiB, an hour {merged['hour'] / KIB:,.0f} KiB, a day "
        f"{merged['day'] / KIB:,.0f} KiB"
    )

    # -- the load
    with tempfile.TemporaryDirectory(prefix="wk-bench-scale-") as tmp, bs.pg_database("wk_scale") as uri:
        work = Path(tmp)
        w0 = (math.floor(time.time() / WINDOW) - cfg.windows - 2) * WINDOW
        for k, data in enumerate(pool):
            (work / f"pool-{k}.bin").write_bytes(data)
        meta = {
            "w0": w0,
            "windows": cfg.windows,
            "pool": cfg.pool,
            "requests": n,
            "rows": sdk60["rows"],
            "format_version": reference.format_version,
        }
        (work / "meta.json").write_text(json.dumps(meta))
        setup_store(uri, reference)
        batches_before = count_batches(uri)
        print(
            f"\nLoad at 1/100: {MODELS * REPLICAS:,} streams ({MODELS} models x {REPLICAS} replicas) x "
            f"{cfg.windows} window(s); a batch = 1 profile + {len(sdk60['rows'])} sampled rows; "
            f"watchkeeper server --workers {cfg.workers} over PostgreSQL ...",
            flush=True,
        )
        load = run_load(cfg, work, uri)
        stored = verify_and_measure(uri, load, meta, batches_before)
        clients = load["clients"]
        duration = max(c["last_ack"] for c in clients) - load["start"]
        acked = sum(c["acked"] for c in clients)
        send = [x for c in clients for x in c["send_s"]]
        body = sum(c["body_bytes"] for c in clients)
        got = {
            "duration": duration,
            "batches": acked,
            "spooled": sum(c["spooled"] for c in clients),
            "profiles_s": acked / duration,
            "rows_s": acked * len(sdk60["rows"]) / duration,
            "mb_s": body / duration / 1e6,
            "p50_ms": pct(send, 0.5) * 1e3,
            "p99_ms": pct(send, 0.99) * 1e3,
            "srv_ms": load["cpu_server"] / acked * 1e3,
            "db_ms": load["cpu_db"] / acked * 1e3,
            "cli_ms": sum(c["cpu_s"] for c in clients) / acked * 1e3,
            "body": body / acked,
            **stored,
        }
        print(
            f"  {acked:,} batches in {duration:.1f} s, {got['spooled']} spooled and resent; the store holds "
            f"exactly what was acknowledged. {got['body'] / KIB:,.0f} KiB per request body."
        )
        print(
            f"  CPU per batch: server {got['srv_ms']:.1f} ms, PostgreSQL {got['db_ms']:.1f} ms (a lower "
            "bound), "
            f"clients {got['cli_ms']:.1f} ms"
        )
        print(
            f"  as stored: a window profile {stored['profile_stored'] / KIB:,.0f} KiB with TOAST and index "
            f"(pglz: {stored['profile_raw'] / KIB:,.0f} -> {stored['profile_column'] / KIB:,.0f} KiB), "
            "a sampled "
            f"row {stored['sample_stored']:,.0f} B"
        )
        split = ingest_split(uri, meta, pool, 20_000)
        got["split"] = split
        print(
            f"  the app in process (no sockets), wall ms per batch: 1 profile {split['profile']:.1f}, "
            f"{len(sdk60['rows'])} rows {split['rows']:.1f}, both {split['both']:.1f}; "
            "a stored prediction row "
            f"{split['prediction_stored']:.0f} B"
        )
        print(
            f"  reading a batch before the write (split_binary, validation, to_batch, Profile.from_bytes): "
            f"{split['parse']:.1f} ms CPU; a batch in the spool's form (gzip JSON): "
            f"{split['spool_bytes'] / KIB:,.0f} KiB"
        )
        fig["ingest"] = got

        # -- the monitors
        print(f"\nMonitor runner, one pass over {MODELS} models x {cfg.windows} window(s) ...", flush=True)
        mon = monitor_pass(uri)
        pts = points_stored(uri)
        agg = premerge(uri, cfg.windows, w0)
        mon2 = monitor_pass(uri)
    fig.update(monitor=mon, premerged=mon2, aggregator=agg, points=pts)
    nw, nw2 = mon["windows"], mon2["windows"]
    per_window = mon["points"] / nw
    print(
        f"  100 replicas per window: {nw} windows in {mon['wall']:.1f} s, {mon['wall'] / nw:.2f} s per "
        f"window (CPU: runner {mon['cpu'] / nw:.2f} s, PostgreSQL {mon['db_cpu'] / nw:.2f} s); "
        f"{per_window:.0f} points "
        "per window"
    )
    by_cost = sorted(mon["monitors"].items(), key=lambda x: -x[1])
    print("  monitors' CPU per window: " + ", ".join(f"{k} {v / nw * 1e3:.0f} ms" for k, v in by_cost))
    print(
        f"  pre-merged: the aggregator merged {agg['profiles']:,} profiles, "
        f"{agg['cpu'] / agg['profiles'] * 1e3:.1f} ms CPU each; the runner: {mon2['wall'] / nw2:.2f} s per "
        f"window (CPU: runner {mon2['cpu'] / nw2:.2f} s, "
        f"PostgreSQL {mon2['db_cpu'] / nw2:.2f} s)"
    )
    print(
        f"  stored: {pts['point_bytes']:.0f} B per point, {pts['rollup_bytes']:.0f} B per roll-up row "
        f"({pts['rollups']:,} roll-up rows for {pts['points']:,} points: few windows per bucket here)"
    )

    # -- model vs measured
    need_profiles = MODELS * REPLICAS / WINDOW
    need_rows = need_profiles * len(sdk60["rows"])
    need_mb = need_profiles * got["body"] / 1e6
    need_windows = MODELS / WINDOW
    lines = [
        ("window profiles/s", need_profiles, got["profiles_s"], "{:,.1f}"),
        ("sampled rows/s", need_rows, got["rows_s"], "{:,.0f}"),
        ("MB/s of request bodies", need_mb, got["mb_s"], "{:,.1f}"),
        ("monitor windows/s, 100 replicas each", need_windows, nw / mon["wall"], "{:,.3f}"),
        ("monitor windows/s, pre-merged", need_windows, nw2 / mon2["wall"], "{:,.3f}"),
    ]
    print(
        f"\nModel vs measured at 1/100 ({MODELS} models x {REPLICAS} replicas x {RATE:,} req/s, "
        "60-s windows):"
    )
    head = f"  {'what':<40}{'model needs':>13}{'measured':>12}{'headroom':>10}  verdict"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for what, need, have, fmt in lines:
        verdict = "PASS" if have >= need else "MISS"
        print(f"  {what:<40}{fmt.format(need):>13}{fmt.format(have):>12}{have / need:>9.1f}x  {verdict}")
    print(f"  batch latency (the whole send): p50 {got['p50_ms']:.0f} ms, p99 {got['p99_ms']:.0f} ms")

    # -- the full load, extrapolated
    scale = FULL_MODELS / MODELS
    ingest_ms = got["srv_ms"] + got["db_ms"]
    full_profiles = need_profiles * scale
    full_windows = need_windows * scale
    win_cpu = (mon["cpu"] + mon["db_cpu"]) / nw
    win2_cpu = (mon2["cpu"] + mon2["db_cpu"]) / nw2
    db_mb = (full_profiles * stored["profile_stored"] + need_rows * scale * stored["sample_stored"]) / 1e6
    print(f"\nThe full load ({FULL_MODELS:,} models), extrapolated linearly from these figures:")
    print(
        f"  ingest: {full_profiles:,.0f} batches/s x {ingest_ms:.1f} ms CPU (server + PostgreSQL) = "
        f"{full_profiles * ingest_ms / 1e3:,.0f} cores; {need_rows * scale:,.0f} sampled rows/s; "
        f"{db_mb:,.0f} MB/s into PostgreSQL as stored"
    )
    print(
        f"  monitors: {full_windows:,.1f} windows/s x {win_cpu:.2f} s CPU = "
        f"{full_windows * win_cpu:,.0f} cores "
        f"with 100 replicas per window; pre-merged {win2_cpu:.2f} s = {full_windows * win2_cpu:,.0f} cores, "
        f"plus the aggregators' {full_profiles * agg['cpu'] / agg['profiles']:,.0f} cores"
    )
    print(f"\nTotal {time.perf_counter() - t_all:.0f} s")
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(fig, indent=1, default=float))


if __name__ == "__main__":
    main()
