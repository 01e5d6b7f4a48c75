"""Requests per second of a FastAPI app served by uvicorn, with watchkeeper's ASGI middleware off and on,
under load from a second process.

The bar (issue): an ASGI app served by uvicorn under load from a second process loses at most 5% of its
requests per second with the middleware on versus off.

Run: ``.venv/bin/python bench/bench_asgi.py`` (about 2 minutes; ``--quick`` for a smoke run of about 30
s: 1 repeat of 3 s). The exit code is 0 whether or not the bar is met; it is non-zero only when the
benchmark itself fails: a server did not start, the load generator failed or saw errors, or the stored
window profiles hold fewer requests than the load generator had answered.

The app: one route, ``POST /predict``, whose JSON body (20 floats) FastAPI parses into ``dict[str, float]``
and which returns ``{"score": 0.5}`` from a plain function; and ``GET /health``, used to wait until the
server is up (not counted: the middleware leaves ``/health`` out by default). It is served by uvicorn in a
subprocess of this file (``--serve``) run by the project's venv: one worker, 127.0.0.1, a free port,
``access_log=False`` and ``log_level="warning"`` (a line per request to the terminal would cost more than
what is measured), whatever event loop and HTTP parser uvicorn picks (printed). Three configurations:

- off: the app alone.
- middleware: ``app.add_middleware(wk.integrations.fastapi.Middleware, run=run)``, with ``run =
  wk.init(project="bench", job_type="inference", model="m", version="1", window=60,
  system_metrics=False)`` on a fresh SQLite store; the run's writer thread aggregates and writes while the
  load runs, in the server's process.
- middleware + watch: the same, and the route's model function is ``run.watch(features=..., outputs=...)``.

The load: ``wrk`` (one thread, ``CONNECTIONS`` keep-alive connections, a Lua script that POSTs the same
JSON body and prints wrk's summary as JSON), or, where wrk is not installed, a load generator of this file
(``--load``) on httpx's async client with as many concurrent connections; the report says which. Each
measurement is a fresh server: start, wait for ``/health``, a warm-up load of ``WARMUP_S`` seconds, then
the measured load of ``--seconds`` (10 by default). Over the measured load, the server's CPU time is read
from ``/proc/<pid>/stat``, and that of watchkeeper's writer thread (aggregation, SQLite writes) from
``/proc/<pid>/task/<tid>/stat``, the server having written down the thread's id; over the server's whole
life, a ``gc.callbacks`` hook times the garbage collector's collections (they run in whichever thread
allocates, mostly the event loop's, and stall every request in flight). The configurations alternate
(off, middleware, watch, off, ...), 3 repeats each; requests/s is the median over repeats, and the loss
is 1 - median(on) / median(off).

The machine has 2 cores, shared with other work: uvicorn's process (its event loop and, when on,
watchkeeper's writer thread, which share one GIL) and the load generator compete for them, so absolute
figures are low and noisy; the ratio is what the bar reads.

After each server stops (SIGINT, so uvicorn shuts down and the run is finished), it reads its stored window
profiles: the HTTP requests counted (``traffic.http.requests``) plus those dropped must be at least every
request the load generator saw answered (warm-up included), or the benchmark stops with an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
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
from pathlib import Path
from typing import Any

from harness import JSON_MARK

BENCH_DIR = Path(__file__).resolve().parent
PROJECT, MODEL, VERSION = "bench", "m", "1"
SUBJECT = f"model:{MODEL}@{VERSION}"
FEATURES = 20
BODY = json.dumps({f"f{j}": 0.25 + j for j in range(FEATURES)})
CONNECTIONS = 32
WARMUP_S = 2
LOSS_BAR = 0.05  # 1 - rps(on) / rps(off), at most

MODES = {
    "off": "middleware off",
    "middleware": "middleware on",
    "watch": "middleware on + run.watch(model)",
}

WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [[BODY]]
wrk.headers["Content-Type"] = "application/json"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'MARK{"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
""".replace("BODY", BODY).replace("MARK", JSON_MARK)


# --- the server (a subprocess of the project's venv) -------------------------------------------------------


class GCPauses:
    """The garbage collector's collections while the server runs: full ones, total and longest time."""

    def __init__(self) -> None:
        self.full = 0
        self.total_s = 0.0
        self.max_ms = 0.0
        self._t0 = 0.0

    def callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        dt = time.perf_counter() - self._t0
        self.full += info["generation"] == 2
        self.total_s += dt
        self.max_ms = max(self.max_ms, dt * 1e3)


def serve(mode: str, port: int, store_dir: str) -> None:
    """Serve the app until SIGINT; then finish the run and print what its window profiles hold."""
    import fastapi
    import uvicorn

    def predict(x: dict[str, float]) -> dict[str, float]:
        return {"score": 0.5}

    app = fastapi.FastAPI()
    run = None
    if mode != "off":
        import watchkeeper as wk

        uri = f"sqlite:///{store_dir}/wk.db"
        run = wk.init(
            project=PROJECT,
            job_type="inference",
            model=MODEL,
            version=VERSION,
            uri=uri,
            window=60,
            system_metrics=False,
        )
        app.add_middleware(wk.integrations.fastapi.Middleware, run=run)
        writers = [t.native_id for t in threading.enumerate() if t.name.startswith("watchkeeper-writer")]
        Path(store_dir, "threads.json").write_text(json.dumps(writers))
        if mode == "watch":
            predict = run.watch(features=lambda x: x, outputs=lambda y: y)(predict)

    @app.post("/predict")
    async def predict_route(features: dict[str, float]) -> dict[str, float]:
        return predict(features)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, workers=1, access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    pauses = GCPauses()
    gc.callbacks.append(pauses.callback)
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down on SIGINT, then raises it again
        server.run()
    gc.callbacks.remove(pauses.callback)
    out: dict[str, Any] = {
        "gc_full": pauses.full,
        "gc_s": pauses.total_s,
        "gc_max_ms": pauses.max_ms,
        "uvicorn": uvicorn.__version__,
        "fastapi": fastapi.__version__,
        "loop": config.loop,
        "http": config.http,
        "loop_class": type(asyncio.new_event_loop()).__name__,
        "http_protocol": getattr(config.http_protocol_class, "__name__", str(config.http_protocol_class)),
    }
    if run is not None:
        run.finish()
        out.update(stored_traffic(uri))
        out["watchkeeper"] = wk.__version__
    print(JSON_MARK + json.dumps(out), flush=True)


def stored_traffic(uri: str) -> dict[str, Any]:
    import watchkeeper as wk

    with wk.Store(uri) as store:
        stored = store.profiles.windows(PROJECT, SUBJECT)
    profiles = [wk.Profile.from_bytes(p.data) for p in stored]
    return {
        "http_requests": sum(p.traffic.http.requests for p in profiles),
        "calls": sum(p.traffic.calls.requests for p in profiles),
        "dropped": sum(p.traffic.dropped for p in profiles),
        "http_5xx": sum(n for p in profiles for s, n in p.traffic.http.statuses.items() if s >= 500),
        "windows": len(stored),
    }


# --- the load generators -----------------------------------------------------------------------------------


def wrk_load(url: str, seconds: float, script: Path) -> dict[str, Any]:
    cmd = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith(JSON_MARK):
            r = json.loads(line[len(JSON_MARK) :])
            errors = sum(r[k] for k in ("connect", "read", "write", "status", "timeout"))
            return {
                "requests": r["requests"],
                "seconds": r["duration_us"] / 1e6,
                "errors": errors,
                "p50_ms": r["p50_us"] / 1e3,
                "p99_ms": r["p99_us"] / 1e3,
            }
    raise RuntimeError(f"wrk exited {done.returncode} with no summary:\n{done.stdout}\n{done.stderr[-2000:]}")


async def _httpx_load(url: str, seconds: float) -> dict[str, Any]:
    import httpx

    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    headers = {"Content-Type": "application/json"}
    body = BODY.encode()
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        t_end = time.perf_counter() + seconds

        async def user() -> None:
            nonlocal errors
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                try:
                    r = await client.post(url, content=body, headers=headers)
                except httpx.HTTPError:
                    errors += 1
                    continue
                if r.status_code != 200:
                    errors += 1
                else:
                    latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(user() for _ in range(CONNECTIONS)))
        elapsed = time.perf_counter() - t0
    latencies.sort()
    n = len(latencies) - 1
    return {
        "requests": len(latencies) + errors,
        "seconds": elapsed,
        "errors": errors,
        "p50_ms": latencies[n // 2] * 1e3 if latencies else float("nan"),
        "p99_ms": latencies[int(0.99 * n)] * 1e3 if latencies else float("nan"),
    }


def httpx_load(url: str, seconds: float, cwd: Path) -> dict[str, Any]:
    """The httpx load generator, in its own process (``--load``), so it does not share the parent's GIL."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--load", url, "--seconds", str(seconds)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, cwd=cwd)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :])
    raise RuntimeError(f"the httpx load generator exited {done.returncode}:\n{done.stderr[-2000:]}")


# --- one measurement ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(stat: str) -> float:
    """utime + stime from the text of a /proc/.../stat file."""
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int, threads: list[int]) -> tuple[float, float]:
    """(CPU seconds of the whole process, of the threads ``threads`` in it), from /proc."""
    total = cpu_seconds(Path(f"/proc/{pid}/stat").read_text())
    part = sum(cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat").read_text()) for tid in threads)
    return total, part


def wait_healthy(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited {proc.returncode} before it answered")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1.0) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not answer /health within {timeout:.0f} s")


def measure(mode: str, seconds: float, tmp: Path, tool: str, script: Path) -> dict[str, Any]:
    """Start a server in ``mode``, load it (warm-up, then ``seconds``), stop it; the figures of the run."""
    port = free_port()
    store = Path(tempfile.mkdtemp(prefix=f"store-{mode}-", dir=tmp))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", mode, "--port", str(port)]
    cmd += ["--store", str(store)]
    out_path, err_path = store / "stdout.txt", store / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=tmp)
        try:
            wait_healthy(port, proc)
            url = f"http://127.0.0.1:{port}/predict"

            def load(duration: float) -> dict[str, Any]:
                if tool == "wrk":
                    return wrk_load(url, duration, script)
                return httpx_load(url, duration, tmp)

            warm = load(WARMUP_S)
            # the writer's thread ids, which the server wrote down (Python 3.11 does not name OS threads)
            writers = json.loads((store / "threads.json").read_text()) if mode != "off" else []
            cpu0, writer0 = server_cpu(proc.pid, writers)
            result = load(seconds)
            cpu1, writer1 = server_cpu(proc.pid, writers)
            result["server_cpu_s"], result["writer_cpu_s"] = cpu1 - cpu0, writer1 - writer0
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    server: dict[str, Any] | None = None
    for line in reversed(out_path.read_text().splitlines()):
        if line.startswith(JSON_MARK):
            server = json.loads(line[len(JSON_MARK) :])
            break
    if server is None:
        raise RuntimeError(
            f"the {mode} server exited {proc.returncode} with no result:\n{err_path.read_text()[-3000:]}"
        )
    if warm["errors"] or result["errors"]:
        raise RuntimeError(f"{mode}: the load generator saw errors: warm-up {warm}, measured {result}")
    answered = warm["requests"] + result["requests"]
    if mode != "off":
        recorded = server["http_requests"] + server["dropped"]
        if recorded < answered:
            raise RuntimeError(
                f"{mode}: the store holds {recorded:,} requests, the load saw {answered:,} answered"
            )
        if mode == "watch" and server["calls"] + server["dropped"] < answered:
            raise RuntimeError(
                f"{mode}: the store holds {server['calls']:,} watched calls for {answered:,} requests"
            )
    shutil.rmtree(store, ignore_errors=True)
    return {**result, "rps": result["requests"] / result["seconds"], "answered": answered, "server": server}


# --- report ------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(cfg: argparse.Namespace, tool: str, runs: dict[str, list[dict[str, Any]]]) -> None:
    first = {mode: r[0]["server"] for mode, r in runs.items()}
    s = first["off"]
    print()
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, shared by the server and the load "
        f"generator (and other work on this machine): figures are low and noisy; read the ratio"
    )
    print(
        f"uvicorn {s['uvicorn']} (1 worker, loop {s['loop']} -> {s['loop_class']}, http {s['http']} -> "
        f"{s['http_protocol']}), FastAPI {s['fastapi']}, watchkeeper {first['middleware']['watchkeeper']}"
    )
    load = "wrk -t1" if tool == "wrk" else "httpx.AsyncClient in a separate process (wrk not installed)"
    print(
        f"load: {load}, {CONNECTIONS} connections, POST /predict with {FEATURES} floats; {WARMUP_S} s "
        f"warm-up then {cfg.seconds:g} s measured, per run; {cfg.repeats} run(s) per configuration, "
        "alternating, each a fresh server; medians over runs"
    )
    width = max(len(v) for v in MODES.values()) + 2
    print(
        f"{'configuration':<{width}}{'req/s':>9}{'vs off':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'server CPU µs/req':>19}{'writer':>8}{'GC µs/req':>10}{'GC max ms':>10}{'recorded':>11}"
        f"{'dropped':>9}   req/s of each run"
    )
    off = statistics.median(r["rps"] for r in runs["off"])
    for mode, label in MODES.items():
        rs = runs[mode]
        rps = statistics.median(r["rps"] for r in rs)
        p50 = statistics.median(r["p50_ms"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        cpu = statistics.median(r["server_cpu_s"] / r["requests"] * 1e6 for r in rs)
        writer = statistics.median(r["writer_cpu_s"] / r["requests"] * 1e6 for r in rs)
        gc_us = statistics.median(r["server"]["gc_s"] / r["answered"] * 1e6 for r in rs)
        gc_max = statistics.median(r["server"]["gc_max_ms"] for r in rs)
        if mode == "off":
            recorded = dropped = "-"
        else:
            recorded = f"{sum(r['server']['http_requests'] for r in rs):,}"
            dropped = f"{sum(r['server']['dropped'] for r in rs):,}"
        print(
            f"{label:<{width}}{rps:>9,.0f}{rps / off - 1:>+9.1%}{p50:>8.2f}{p99:>8.2f}{cpu:>19.0f}"
            f"{writer:>8.0f}{gc_us:>10.1f}{gc_max:>10.1f}{recorded:>11}{dropped:>9}   "
            f"{[round(r['rps']) for r in rs]}"
        )
    print(
        "server CPU = utime + stime of the uvicorn process (all threads) over the measured load / requests, "
        "writer = of that, watchkeeper's writer thread (aggregation and SQLite writes); "
        "GC = the garbage collector's time in the server over its whole life / requests answered (warm-up "
        "included), and its longest pause; "
        "recorded = HTTP requests in the stored window profiles, summed over runs (warm-up included); "
        "dropped = requests the middleware dropped (queue bound), summed over runs"
    )
    if any(r["server"].get("dropped") for rs in runs.values() for r in rs):
        print(
            "WARNING: the middleware DROPPED requests (see the dropped column): they are not in the profiles"
        )

    print()
    for mode in ("middleware", "watch"):
        rps = statistics.median(r["rps"] for r in runs[mode])
        loss = 1 - rps / off
        line = f"{MODES[mode]} {rps:,.0f} req/s vs off {off:,.0f} req/s: loss {loss:.1%}"
        print(
            f"{mark(loss <= LOSS_BAR)}  {line} (bar: <= {LOSS_BAR:.0%})"
            if mode == "middleware"
            else f"      {line}, for information"
        )
    cpu = {m: statistics.median(r["server_cpu_s"] / r["requests"] for r in runs[m]) for m in MODES}
    print(
        "      less sensitive to the load on the machine, the server's CPU per request (a server that keeps "
        "a core busy serves 1 / CPU per request), for information:"
    )
    for m in ("middleware", "watch"):
        loss = 1 - cpu["off"] / cpu[m]
        print(
            f"        {MODES[m]} {cpu[m] * 1e6:.0f} µs vs off {cpu['off'] * 1e6:.0f} µs per request: "
            f"{loss:+.1%} throughput loss"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 run of 3 s per configuration: a smoke run")
    parser.add_argument("--seconds", type=float, help="measured load per run (default 10; quick 3)")
    parser.add_argument("--repeats", type=int, help="runs per configuration (default 3; quick 1)")
    parser.add_argument("--load-tool", choices=["wrk", "httpx"], help="default: wrk if installed, else httpx")
    parser.add_argument("--serve", choices=list(MODES), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)
    cfg.seconds = cfg.seconds or (3.0 if cfg.quick else 10.0)
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 3)

    if cfg.serve:  # we are the server
        serve(cfg.serve, cfg.port, cfg.store)
        return
    if cfg.load:  # we are the httpx load generator
        print(JSON_MARK + json.dumps(asyncio.run(_httpx_load(cfg.load, cfg.seconds))), flush=True)
        return

    tool = cfg.load_tool or ("wrk" if shutil.which("wrk") else "httpx")
    if tool == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install -y wrk), or use --load-tool httpx")
    if tool == "httpx" and not cfg.load_tool:
        print(
            "wrk is not installed (apt-get install -y wrk): using the httpx load generator", file=sys.stderr
        )
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    with tempfile.TemporaryDirectory(prefix="wk-bench-asgi-") as tmp:
        script = Path(tmp) / "post.lua"
        script.write_text(WRK_SCRIPT)
        for i in range(cfg.repeats):
            for mode in MODES:
                print(f"run {i + 1}/{cfg.repeats}: {MODES[mode]} ...", flush=True)
                runs[mode].append(measure(mode, cfg.seconds, Path(tmp), tool, script))
    report(cfg, tool, runs)


if __name__ == "__main__":
    main()
