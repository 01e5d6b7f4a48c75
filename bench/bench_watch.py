"""Cost of a ``run.watch``-decorated prediction function per call: the latency its caller sees, and the
whole-process CPU per call once the background aggregation is counted; memory over 10M calls; next to
prometheus_client and ``wandb.log`` (offline) timed the same way.

The bars (issue), per call with 20 numeric features and a score: at most 10 µs at the median and 30 µs at
p99 over 1M calls; latency-and-count alone within 2x of prometheus_client's labelled ``Histogram.observe``
+ ``Counter.inc``; at least 50x cheaper than ``wandb.log`` of the same fields; memory flat over 10M calls.

Run: ``.venv/bin/python bench/bench_watch.py`` (4 to 6 minutes on 2 cores, a third of it the 10M-call
memory run; ``--quick`` for a smoke run of about a minute: 100k calls, 1 repeat, memory up to 1M calls;
``--no-anchors`` to time watchkeeper alone, ``--no-memory`` to skip the memory run). The exit code is 0
whether or not a bar is met; it is non-zero only when the benchmark itself fails: a worker crashed, or the
stored window profiles do not account for every call (requests + dropped), or lack a feature column.

What is called: ``predict(x)``, where ``x`` is one of 1000 prebuilt dicts of 20 floats (seeded random
values, cycled through, so the aggregator sees varied data; building them is not timed) and the result is
the float 0.5. Three variants, each in a fresh subprocess of this file (``--worker``) with a fresh SQLite
store in a temporary directory:

- plain: the undecorated function. Its figures are the timing loop's own cost (two ``perf_counter_ns``
  reads, the call, an array store); ``timer alone`` is the bare ``perf_counter_ns`` pair.
- ping: ``@run.watch`` with no extractors, latency and count alone. It returns None: a dict result would
  be read as outputs without an extractor (20 output columns), which is not latency-and-count alone.
- predict: ``@run.watch(features=lambda x: x, outputs=lambda y: {"score": y})``.

The run is ``wk.init(project="bench", job_type="inference", model="m", version="1", window=60,
system_metrics=False)``; its writer thread aggregates the queued calls every 0.5 s (earlier when 20,000
wait) while the loop runs, as in real use, so its share of the GIL is in the figures.

- Per call: every call is timed on its own with ``time.perf_counter_ns`` around it, after 2,000 warm-up
  calls; median, p99, p99.9 and max per repeat, and the table shows the median over repeats of each.
  ``loop µs/call`` is the loop's wall time / calls: it also counts the time the caller waited for the GIL
  between two timed calls, so it is the throughput one thread gets.
- CPU per call: ``time.process_time()`` (all threads of the process) over the timed loop plus
  ``run.finish()``, which aggregates whatever is still queued and writes the window profiles, divided by
  the timed calls; ``added`` subtracts the plain function's figure (the loop itself).
- Dropped: past 500,000 waiting calls per endpoint the watcher drops new ones and counts them. After the
  run, the worker reads the window profiles back (``Store.profiles.windows``) and sums
  ``traffic.dropped`` and ``traffic.calls.requests``; requests + dropped must equal every call made, and
  for predict every feature and the score must be a column with one value per request, or the benchmark
  stops with an error. Any drop is printed in the table and under it: dropped calls are not aggregated, so
  the CPU per call is then an underestimate.
- Garbage collection: a ``gc.callbacks`` hook counts the collections during the timed loop and times
  them: full (generation 2) collections, the longest pause, and the total (as a share of the loop's wall
  time). A collection runs on the thread that allocated, often the caller's, so long pauses show up in
  p99.9 and max.
- Saturation: one more subprocess calls predict 3M times in a tight loop with no per-call timing and no
  pause, then ``finish()``: the rate offered, the calls aggregated and dropped, and the rate at which the
  aggregator kept up. This is the ceiling of one process, not a bar.
- Memory: one more subprocess calls predict 10M times (without per-call timing) and reads its RSS from
  ``/proc/self/status`` at 1M, 2M, 5M and 10M calls: once at that instant ("now", which includes the
  calls still waiting for the aggregator, printed as "queued"), and once after the loop pauses until the
  queue is empty ("settled", what the run keeps). The loop is paced (it waits while more than 200,000
  calls are queued, ``PACE_ABOVE``) so that every call is aggregated rather than dropped: unpaced it
  outruns the aggregator (see the saturation line). Flat means settled RSS at the last checkpoint within
  max(10%, 20 MB) of settled RSS at the first; the peak (``VmHWM``) over the loop is printed too, and,
  to tell the allocator's retention from live memory, the settled RSS after ``malloc_trim(0)`` (glibc),
  which returns the C heap's free pages to the system.

Anchors, in a subprocess of this file run by ``bench/.venv-anchors`` (created on first use from
``bench/requirements-anchors.txt``, pinned), each repeat a fresh process like watchkeeper's:

- prometheus_client: the plain function wrapped as a server instruments it: ``perf_counter`` before and
  after the call, then ``Histogram(..., ["model", "version"]).labels("m", "1").observe(dt)`` and
  ``Counter.labels("m", "1").inc()``, in their own registry; and, on a separate line, the same with the
  two children resolved once up front. Timed in the same loop on the same dicts. This is what watch's ping
  is compared with: both time the call and count it.
- wandb: ``wandb.init(mode="offline")`` in a temporary directory, then ``run.log(row)`` with the 20
  features and the score (one fresh dict per call, built before the loop); fewer calls (20,000) because
  it is slow. Nothing reaches the network (the environment is set as in ``bench_log.py``). Its CPU per call
  is the Python process's alone: wandb's own service process is not counted.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import JSON_MARK, anchor_python, run_json_worker, status_bytes, wandb_offline_env

BENCH_DIR = Path(__file__).resolve().parent
ANCHOR_VENV = BENCH_DIR / ".venv-anchors"
ANCHOR_REQUIREMENTS = BENCH_DIR / "requirements-anchors.txt"
ANCHOR_PROBE = "import wandb, prometheus_client"
SEED = 20240611
FEATURES = 20
DISTINCT_ROWS = 1000
PROJECT, MODEL, VERSION = "bench", "m", "1"
SUBJECT = f"model:{MODEL}@{VERSION}"
MB = 1e6

MEDIAN_BAR_US = 10.0
P99_BAR_US = 30.0
BAR_CALLS = 1_000_000
PROMETHEUS_BAR = 2.0  # watch ping median / prometheus labels().observe + .inc median, at most
WANDB_BAR = 50.0  # wandb.log median / watch predict median, at least
FLAT_FRACTION, FLAT_BYTES = 0.10, 20e6  # settled RSS at the last checkpoint vs the first, at most
PACE_EVERY, PACE_ABOVE = 10_000, 200_000  # the memory loop waits while more calls than this are queued

VARIANTS = ("plain", "ping", "predict")


def feature_rows() -> list[dict[str, float]]:
    rng = random.Random(SEED)
    return [{f"f{j}": rng.gauss(0.0, 1.0) for j in range(FEATURES)} for _ in range(DISTINCT_ROWS)]


def time_calls(fn: Callable[[Any], object], rows: list[Any], calls: int, warmup: int) -> tuple[array, float]:
    """(nanoseconds of each of ``calls`` calls ``fn(rows[i % len(rows)])``, the timed loop's wall seconds)."""
    pc = time.perf_counter_ns
    k = len(rows)
    for i in range(warmup):
        fn(rows[i % k])
    out = array("q", bytes(8 * calls))  # preallocated: no list growth or int objects kept in the loop
    w0 = time.perf_counter()
    for i in range(calls):
        x = rows[i % k]
        t0 = pc()
        fn(x)
        t1 = pc()
        out[i] = t1 - t0
    return out, time.perf_counter() - w0


class GCPauses:
    """Collections of the cyclic garbage collector inside a ``with`` block: per generation, how many, their
    total and longest time (they run on whichever thread allocated, often the caller's)."""

    def __init__(self) -> None:
        self.gens = {g: {"count": 0, "total_s": 0.0, "max_ms": 0.0} for g in (0, 1, 2)}
        self._t0 = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
            return
        dt = time.perf_counter() - self._t0
        g = self.gens[info["generation"]]
        g["count"] += 1
        g["total_s"] += dt
        g["max_ms"] = max(g["max_ms"], dt * 1e3)

    def __enter__(self) -> GCPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)


def timer_alone(calls: int) -> array:
    pc = time.perf_counter_ns
    out = array("q", bytes(8 * calls))
    for i in range(calls):
        t0 = pc()
        t1 = pc()
        out[i] = t1 - t0
    return out


def spread_us(ns: array) -> dict[str, float]:
    s = sorted(ns)
    n = len(s) - 1
    return {
        "median_us": s[n // 2] / 1e3,
        "p99_us": s[int(0.99 * n)] / 1e3,
        "p999_us": s[int(0.999 * n)] / 1e3,
        "max_us": s[-1] / 1e3,
    }


# --- workers (subprocesses; see the module docstring) -------------------------------------------------------


def predict(x: dict[str, float]) -> float:
    return 0.5


def ping(x: dict[str, float]) -> None:
    return None


def watched(uri: str, variant: str) -> tuple[Any, Callable[[Any], object]]:
    """(a fresh run on ``uri``, its watched ping or predict)."""
    import watchkeeper as wk

    run = wk.init(
        project=PROJECT,
        job_type="inference",
        model=MODEL,
        version=VERSION,
        uri=uri,
        window=60,
        system_metrics=False,
    )
    if variant == "ping":
        return run, run.watch(ping)
    return run, run.watch(features=lambda x: x, outputs=lambda y: {"score": y})(predict)


def watch_worker(variant: str, calls: int, warmup: int) -> dict[str, Any]:
    """One repeat of one variant: per-call times, CPU per call with finish(), and what the store holds."""
    rows = feature_rows()
    out: dict[str, Any] = {"variant": variant}
    if variant == "plain":
        out["timer"] = spread_us(timer_alone(calls))
        cpu0 = time.process_time()
        with GCPauses() as pauses:
            ns, loop_s = time_calls(predict, rows, calls, warmup)
        out.update(spread_us(ns), loop_s=loop_s, finish_s=0.0, cpu_s=time.process_time() - cpu0)
        out["gc"] = pauses.gens
        out.update(dropped=0, requests=warmup + calls)
        return out

    import watchkeeper as wk

    with tempfile.TemporaryDirectory(prefix="wk-bench-watch-") as tmp:
        uri = f"sqlite:///{tmp}/wk.db"
        run, fn = watched(uri, variant)
        cpu0 = time.process_time()
        with GCPauses() as pauses:
            ns, loop_s = time_calls(fn, rows, calls, warmup)
        out["gc"] = pauses.gens
        f0 = time.perf_counter()
        run.finish()
        out["finish_s"] = time.perf_counter() - f0
        out["cpu_s"] = time.process_time() - cpu0
        out.update(spread_us(ns), loop_s=loop_s, version=wk.__version__)
        out.update(stored_traffic(uri, warmup + calls, feature_columns=variant == "predict"))
    return out


def stored_traffic(uri: str, made: int, feature_columns: bool) -> dict[str, Any]:
    """Requests and drops summed over the stored window profiles; raises unless they account for ``made``."""
    import watchkeeper as wk

    with wk.Store(uri) as store:
        stored = store.profiles.windows(PROJECT, SUBJECT)
    profiles = [wk.Profile.from_bytes(p.data) for p in stored]
    requests = sum(p.traffic.calls.requests for p in profiles)
    dropped = sum(p.traffic.dropped for p in profiles)
    problems = []
    if requests + dropped != made:
        problems.append(
            f"expected {made:,} calls, the windows hold {requests:,} requests + {dropped:,} dropped"
        )
    if feature_columns:
        for name in [f"f{j}" for j in range(FEATURES)] + ["score"]:
            count = sum(p[name].count for p in profiles if name in p.columns)
            if count != requests:
                problems.append(f"column {name}: expected {requests:,} values, got {count:,}")
    if problems:
        raise RuntimeError(f"{uri}: " + "; ".join(problems))
    return {"requests": requests, "dropped": dropped, "windows": len(stored)}


def rss_worker(checkpoints: list[int]) -> dict[str, Any]:
    """RSS after each checkpoint's number of predict calls: at that instant, and once the queue is empty."""
    rows = feature_rows()
    k = len(rows)
    out: dict[str, Any] = {"checkpoints": [], "paused_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="wk-bench-watch-rss-") as tmp:
        uri = f"sqlite:///{tmp}/wk.db"
        run, fn = watched(uri, "predict")
        fn(rows[0])
        settle(run)
        out["rss_start"] = status_bytes("VmRSS")
        with open("/proc/self/clear_refs", "w") as f:  # reset VmHWM, so that the peak is the loop's
            f.write("5")
        t0 = time.perf_counter()
        done = 1
        for target in checkpoints:
            for i in range(done, target):
                fn(rows[i % k])
                if i % PACE_EVERY == 0 and waiting(run) > PACE_ABOVE:
                    p0 = time.perf_counter()
                    while waiting(run) > PACE_ABOVE // 2:
                        time.sleep(0.01)
                    out["paused_s"] += time.perf_counter() - p0
            done = target
            now, queued = status_bytes("VmRSS"), waiting(run)
            settle(run)
            settled = status_bytes("VmRSS")
            c0 = time.perf_counter()
            trimmed = rss_trimmed()
            out["paused_s"] += time.perf_counter() - c0
            out["checkpoints"].append(
                {
                    "calls": target,
                    "rss_now": now,
                    "queued": queued,
                    "rss_settled": settled,
                    "rss_trimmed": trimmed,
                }
            )
        out["peak"] = status_bytes("VmHWM")
        out["loop_s"] = time.perf_counter() - t0
        run.finish()
        out.update(stored_traffic(uri, done, feature_columns=False))
    return out


def rss_trimmed() -> int | None:
    """RSS after a full collection and glibc's ``malloc_trim(0)``; None where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        gc.collect()
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return None
    return status_bytes("VmRSS")


def saturation_worker(calls: int) -> dict[str, Any]:
    """predict called as fast as one thread can, with no pause: how many calls the aggregator keeps."""
    rows = feature_rows()
    k = len(rows)
    with tempfile.TemporaryDirectory(prefix="wk-bench-watch-sat-") as tmp:
        uri = f"sqlite:///{tmp}/wk.db"
        run, fn = watched(uri, "predict")
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        for i in range(calls):
            fn(rows[i % k])
        t1 = time.perf_counter()
        run.finish()
        t2 = time.perf_counter()
        out = {"loop_s": t1 - t0, "finish_s": t2 - t1, "cpu_s": time.process_time() - cpu0}
        out.update(stored_traffic(uri, calls, feature_columns=True))
    return out


def waiting(run: Any) -> int:
    """Calls queued for the aggregator (read from watchkeeper's internals; -1 if they have changed)."""
    watcher = getattr(run, "_watcher", None)
    try:
        return len(watcher._queue) + sum(len(s.queue) for s in watcher._specs.values())
    except AttributeError:
        return -1


def settle(run: Any, timeout: float = 60.0) -> None:
    """Wait until the aggregator has taken every queued call (or ``timeout`` passes), then one more flush."""
    deadline = time.monotonic() + timeout
    while waiting(run) > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.6)  # the batch being aggregated when the queue emptied


def prometheus_worker(calls: int, warmup: int) -> dict[str, Any]:
    from importlib.metadata import version

    import prometheus_client as prom

    registry = prom.CollectorRegistry()
    latency = prom.Histogram("predict_latency_seconds", "Latency.", ["model", "version"], registry=registry)
    requests = prom.Counter("predict_requests", "Requests.", ["model", "version"], registry=registry)
    perf_counter = time.perf_counter

    def by_labels(x: dict[str, float]) -> float:
        t0 = perf_counter()
        result = predict(x)
        latency.labels(MODEL, VERSION).observe(perf_counter() - t0)
        requests.labels(MODEL, VERSION).inc()
        return result

    latency_child, requests_child = latency.labels(MODEL, VERSION), requests.labels(MODEL, VERSION)

    def by_child(x: dict[str, float]) -> float:
        t0 = perf_counter()
        result = predict(x)
        latency_child.observe(perf_counter() - t0)
        requests_child.inc()
        return result

    rows = feature_rows()
    out: dict[str, Any] = {"version": version("prometheus-client")}
    for name, fn in (("labels", by_labels), ("child", by_child)):
        cpu0 = time.process_time()
        with GCPauses() as pauses:
            ns, loop_s = time_calls(fn, rows, calls, warmup)
        out[name] = {
            **spread_us(ns),
            "loop_s": loop_s,
            "cpu_s": time.process_time() - cpu0,
            "gc": pauses.gens,
        }
    count = requests.labels(MODEL, VERSION)._value.get()
    if count != 2 * (warmup + calls):
        raise RuntimeError(f"prometheus counter: expected {2 * (warmup + calls)}, got {count}")
    return out


def wandb_worker(calls: int, warmup: int) -> dict[str, Any]:
    rows = feature_rows()
    logged = [{**rows[i % len(rows)], "score": 0.5} for i in range(warmup + calls)]
    with tempfile.TemporaryDirectory(prefix="wk-bench-wandb-") as tmp:
        os.environ.update(wandb_offline_env(tmp))  # before the import: wandb reads some when imported
        import wandb

        run = wandb.init(mode="offline", project=PROJECT, dir=tmp)
        log = run.log
        for row in logged[:warmup]:
            log(row)
        pc = time.perf_counter_ns
        ns = array("q", bytes(8 * calls))
        cpu0 = time.process_time()
        w0 = time.perf_counter()
        for i in range(calls):
            row = logged[warmup + i]
            t0 = pc()
            log(row)
            t1 = pc()
            ns[i] = t1 - t0
        loop_s = time.perf_counter() - w0
        f0 = time.perf_counter()
        run.finish()
        finish_s = time.perf_counter() - f0
        cpu_s = time.process_time() - cpu0
        version = wandb.__version__
    return {"version": version, **spread_us(ns), "loop_s": loop_s, "finish_s": finish_s, "cpu_s": cpu_s}


# --- running the workers ------------------------------------------------------------------------------------


def run_worker(python: str, args: list[str], tool: str, cwd: Path, timeout: float) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--worker", *args]
    result, _ = run_json_worker(cmd, tool=tool, cwd=cwd, env=dict(os.environ), timeout=timeout)
    return result


def median_of(runs: list[dict[str, Any]], calls: int) -> dict[str, Any]:
    """Medians over repeats of each per-repeat figure; CPU and loop time per call in µs."""
    out = {k: statistics.median(r[k] for r in runs) for k in ("median_us", "p99_us", "p999_us", "max_us")}
    out["loop_us"] = statistics.median(r["loop_s"] for r in runs) / calls * 1e6
    out["cpu_us"] = statistics.median(r["cpu_s"] for r in runs) / calls * 1e6
    out["finish_s"] = statistics.median(r.get("finish_s", 0.0) for r in runs)
    out["dropped"] = [r.get("dropped", 0) for r in runs]
    if all("gc" in r for r in runs):
        out["gc_full"] = statistics.median(r["gc"]["2"]["count"] for r in runs)
        out["gc_full_max_ms"] = statistics.median(r["gc"]["2"]["max_ms"] for r in runs)
        out["gc_max_ms"] = statistics.median(max(g["max_ms"] for g in r["gc"].values()) for r in runs)
        out["gc_s"] = statistics.median(sum(g["total_s"] for g in r["gc"].values()) for r in runs)
        out["gc_share"] = statistics.median(
            sum(g["total_s"] for g in r["gc"].values()) / r["loop_s"] for r in runs
        )
    out["repeat_medians_us"] = [round(r["median_us"], 3) for r in runs]
    out["repeat_p99_us"] = [round(r["p99_us"], 2) for r in runs]
    return out


# --- report -------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    cfg: argparse.Namespace,
    wk_runs: dict[str, list[dict[str, Any]]],
    anchors: dict[str, Any],
    saturation: dict[str, Any],
    rss: dict[str, Any],
) -> None:
    watch = {v: median_of(runs, cfg.calls) for v, runs in wk_runs.items()}
    timer = {k: statistics.median(r["timer"][k] for r in wk_runs["plain"]) for k in ("median_us", "p99_us")}
    version = wk_runs["predict"][0]["version"]
    print()
    print(f"watchkeeper {version}, Python {platform.python_version()}, {os.cpu_count()} CPUs (shared, noisy)")
    print(
        f"per call: {cfg.calls:,} timed calls after {cfg.warmup:,} warm-up, {cfg.repeats} repeat(s), each a "
        f"fresh process (wandb: {cfg.wandb_calls:,} calls); x cycles through {DISTINCT_ROWS} prebuilt dicts "
        f"of {FEATURES} random floats; figures are medians over repeats of each repeat's figure"
    )
    rows: list[tuple[str, dict[str, Any] | None, str]] = []
    rows.append(("timer alone (perf_counter_ns pair)", {**timer, "p999_us": None}, ""))
    labels = {
        "plain": "plain function (undecorated)",
        "ping": "watch ping (no extractors)",
        "predict": f"watch predict ({FEATURES} features + score)",
    }
    for v in VARIANTS:
        rows.append((labels[v], watch[v], "" if v == "plain" else f"{sum(watch[v]['dropped']):,}"))
    prom = anchors.get("prometheus")
    if prom is not None:
        pv = prom["version"]
        rows.append((f"prometheus_client {pv} labels().observe + .inc", prom["labels"], "-"))
        rows.append((f"prometheus_client {pv} child.observe + .inc", prom["child"], "-"))
    wb = anchors.get("wandb")
    if wb is not None:
        rows.append((f"wandb {wb['version']} log({{{FEATURES} features + score}}), offline", wb, "-"))
    width = max(len(r[0]) for r in rows) + 2
    head = f"{'what':<{width}}{'median µs':>10}{'p99 µs':>9}{'p99.9 µs':>10}{'max µs':>10}"
    print(head + f"{'loop µs/call':>13}{'CPU µs/call':>12}{'added CPU':>10}{'dropped':>9}")
    base_cpu = watch["plain"]["cpu_us"]
    for label, r, dropped in rows:
        if r is None:
            continue
        cells = f"{label:<{width}}{r['median_us']:>10.2f}{r['p99_us']:>9.2f}"
        if r.get("p999_us") is None:
            print(cells)
            continue
        cells += f"{r['p999_us']:>10.1f}{r['max_us']:>10.0f}{r['loop_us']:>13.2f}{r['cpu_us']:>12.2f}"
        added = f"{r['cpu_us'] - base_cpu:.2f}" if label in (labels["ping"], labels["predict"]) else ""
        print((cells + f"{added:>10}{dropped:>9}").rstrip())
    print(
        "loop µs/call = the timed loop's wall time / calls (GIL waits between calls included); CPU µs/call = "
        "process_time of the loop + finish() / calls, all threads (wandb: its Python process only, not its "
        "service process); added CPU = minus the plain function's; dropped = summed over repeats"
    )
    for v in ("ping", "predict"):
        w = watch[v]
        print(
            f"  {v}: repeat medians {w['repeat_medians_us']} µs, p99s {w['repeat_p99_us']} µs, "
            f"finish() {w['finish_s']:.2f} s, window profiles per run {[r['windows'] for r in wk_runs[v]]}, "
            f"dropped per run {w['dropped']}"
        )
    print(
        "garbage collection inside the timed loops (median over repeats): full collections, the longest one, "
        "the longest of any generation, and the total time of all of them (share of the loop's wall time):"
    )
    gc_rows = [(labels[v], watch[v]) for v in VARIANTS]
    if prom is not None:
        gc_rows += [
            ("prometheus_client labels()", prom["labels"]),
            ("prometheus_client child", prom["child"]),
        ]
    for label, r in gc_rows:
        print(
            f"  {label:<{width - 2}}{r['gc_full']:>4.0f} full, longest {r['gc_full_max_ms']:7.1f} ms; "
            f"longest any {r['gc_max_ms']:7.1f} ms; total {r['gc_s']:6.2f} s ({r['gc_share']:.0%})"
        )
    drops = {v: sum(watch[v]["dropped"]) for v in ("ping", "predict")}
    for v, n in drops.items():
        if n:
            made = len(wk_runs[v]) * (cfg.calls + cfg.warmup)
            print(
                f"  WARNING: {n:,} of {made:,} {v} calls were DROPPED (queue bound reached): the "
                "aggregator fell behind; dropped calls skip the aggregation, so CPU per call is understated"
            )
    if not any(drops.values()):
        print("  no call was dropped: every call is in the stored window profiles")

    sat = saturation
    made = sat["requests"] + sat["dropped"]
    kept_rate = sat["requests"] / (sat["loop_s"] + sat["finish_s"])
    print()
    print(
        f"saturation: predict called {made:,} times in a tight loop, no per-call timing, no pause: "
        f"{made / sat['loop_s']:,.0f} calls/s offered for {sat['loop_s']:.1f} s, then finish() "
        f"{sat['finish_s']:.1f} s; {sat['requests']:,} aggregated, {sat['dropped']:,} DROPPED "
        f"({sat['dropped'] / made:.1%}); aggregated {kept_rate:,.0f} "
        f"calls/s until finish() returned; CPU {sat['cpu_s'] / made * 1e6:.2f} µs per call made"
    )
    if rss:
        print()
        print(
            f"memory, {FEATURES}-feature predict in a fresh process, paced (the loop waits while more than "
            f"{PACE_ABOVE:,} calls are queued: {rss['paused_s']:.1f} s in all); settled = after waiting "
            "until the queue is empty:"
        )
        print(f"  RSS after init and one call: {rss['rss_start'] / MB:.1f} MB")
        for c in rss["checkpoints"]:
            trimmed = "n/a" if c["rss_trimmed"] is None else f"{c['rss_trimmed'] / MB:.1f} MB"
            print(
                f"  after {c['calls']:>11,} calls: RSS now {c['rss_now'] / MB:6.1f} MB "
                f"({c['queued']:>7,} calls queued), settled {c['rss_settled'] / MB:6.1f} MB, "
                f"after malloc_trim {trimmed}"
            )
        print(
            f"  peak RSS (VmHWM) over the loop {rss['peak'] / MB:.1f} MB; loop {rss['loop_s']:.0f} s; "
            f"{rss['requests']:,} requests + {rss['dropped']:,} dropped in {rss['windows']} window profile(s)"
        )
        if rss["dropped"]:
            print(f"  WARNING: {rss['dropped']:,} calls were DROPPED in the memory run")

    print()
    short = (
        f" (the bar is over {BAR_CALLS:,} calls; this run timed {cfg.calls:,})"
        if cfg.calls < BAR_CALLS
        else ""
    )
    p = watch["predict"]
    print(
        f"{mark(p['median_us'] <= MEDIAN_BAR_US)}  watch predict median {p['median_us']:.2f} µs "
        f"(bar: <= {MEDIAN_BAR_US:g} µs){short}"
    )
    print(
        f"{mark(p['p99_us'] <= P99_BAR_US)}  watch predict p99 {p['p99_us']:.2f} µs "
        f"(bar: <= {P99_BAR_US:g} µs)"
    )
    if prom is not None:
        ratio = watch["ping"]["median_us"] / prom["labels"]["median_us"]
        print(
            f"{mark(ratio <= PROMETHEUS_BAR)}  watch ping median {watch['ping']['median_us']:.2f} µs / "
            f"prometheus_client labels().observe + .inc {prom['labels']['median_us']:.2f} µs = {ratio:.2f}x "
            f"(bar: <= {PROMETHEUS_BAR:g}x); vs pre-resolved children "
            f"{watch['ping']['median_us'] / prom['child']['median_us']:.2f}x"
        )
        cpu_ratio = watch["ping"]["cpu_us"] / prom["labels"]["cpu_us"]
        print(
            f"      total CPU per call with aggregation: ping {watch['ping']['cpu_us']:.2f} µs / prometheus "
            f"{prom['labels']['cpu_us']:.2f} µs = {cpu_ratio:.2f}x (for information)"
        )
    else:
        print("----  prometheus_client not measured")
    if wb is not None:
        ratio = wb["median_us"] / p["median_us"]
        print(
            f"{mark(ratio >= WANDB_BAR)}  wandb.log median {wb['median_us']:.1f} µs / watch predict median "
            f"{p['median_us']:.2f} µs = {ratio:.0f}x cheaper (bar: >= {WANDB_BAR:g}x); on total CPU per "
            f"call: {wb['cpu_us'] / p['cpu_us']:.0f}x (wandb's Python process only)"
        )
    else:
        print("----  wandb not measured")
    if rss:
        first, last = rss["checkpoints"][0], rss["checkpoints"][-1]
        grew = last["rss_settled"] - first["rss_settled"]
        allowed = max(FLAT_FRACTION * first["rss_settled"], FLAT_BYTES)
        print(
            f"{mark(grew <= allowed)}  memory flat: settled RSS {first['rss_settled'] / MB:.1f} MB at "
            f"{first['calls']:,} calls, {last['rss_settled'] / MB:.1f} MB at {last['calls']:,} "
            f"({last['rss_settled'] / first['rss_settled']:.3f}x, {grew / MB:+.1f} MB; bar: at most "
            f"+max({FLAT_FRACTION:.0%}, {FLAT_BYTES / MB:g} MB) = +{allowed / MB:.1f} MB)"
        )
        if len(rss["checkpoints"]) > 2:
            before = rss["checkpoints"][-2]
            print(
                f"      for information, the last stretch: {before['rss_settled'] / MB:.1f} MB at "
                f"{before['calls']:,} calls -> {last['rss_settled'] / MB:.1f} MB at {last['calls']:,} "
                f"({(last['rss_settled'] - before['rss_settled']) / MB:+.1f} MB)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k calls, 1 repeat, memory at 100k and 1M")
    parser.add_argument("--no-anchors", action="store_true", help="time watchkeeper only")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    parser.add_argument("--calls", type=int, help="timed calls per repeat (default 1,000,000; quick 100,000)")
    parser.add_argument("--warmup", type=int, default=2_000, help="untimed calls first (default 2,000)")
    parser.add_argument("--repeats", type=int, help="repeats of each variant (default 3; quick 1)")
    parser.add_argument("--wandb-calls", type=int, help="timed wandb.log calls (default 20,000; quick 2,000)")
    parser.add_argument(
        "--memory-calls", help="RSS checkpoints (default 1M,2M,5M,10M; quick 100k,200k,500k,1M)"
    )
    parser.add_argument(
        "--saturation-calls", type=int, help="unpaced predict calls (default 3,000,000; quick 500,000)"
    )
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)
    quick = cfg.quick
    cfg.calls = cfg.calls or (100_000 if quick else 1_000_000)
    cfg.repeats = cfg.repeats or (1 if quick else 3)
    cfg.wandb_calls = cfg.wandb_calls or (2_000 if quick else 20_000)
    cfg.saturation_calls = cfg.saturation_calls or (500_000 if quick else 3_000_000)
    checkpoints = [
        int(s)
        for s in (
            cfg.memory_calls
            or ("100000,200000,500000,1000000" if quick else "1000000,2000000,5000000,10000000")
        ).split(",")
    ]

    if cfg.worker:  # we are the subprocess
        kind, *rest = cfg.worker
        if kind == "watch":
            result = watch_worker(rest[0], cfg.calls, cfg.warmup)
        elif kind == "prometheus":
            result = prometheus_worker(cfg.calls, cfg.warmup)
        elif kind == "wandb":
            result = wandb_worker(cfg.wandb_calls, min(cfg.warmup, 500))
        elif kind == "saturation":
            result = saturation_worker(cfg.saturation_calls)
        else:
            result = rss_worker(checkpoints)
        print(JSON_MARK + json.dumps(result), flush=True)
        return

    timeout = 900.0
    anchor_py = None
    if not cfg.no_anchors:
        try:
            anchor_py = anchor_python(ANCHOR_VENV, ANCHOR_REQUIREMENTS, ANCHOR_PROBE)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"anchors not measured: {exc}", file=sys.stderr)
    sizes = ["--calls", str(cfg.calls), "--warmup", str(cfg.warmup), "--wandb-calls", str(cfg.wandb_calls)]
    wk_runs: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    prom_runs: list[dict[str, Any]] = []
    wandb_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-watch-") as tmp:
        cwd = Path(tmp)
        for i in range(cfg.repeats):
            for v in VARIANTS:
                print(f"repeat {i + 1}/{cfg.repeats}: {v} x {cfg.calls:,} ...", flush=True)
                wk_runs[v].append(run_worker(sys.executable, ["watch", v, *sizes], v, cwd, timeout))
            if anchor_py is not None:
                for name, calls, runs in (
                    ("prometheus", cfg.calls, prom_runs),
                    ("wandb", cfg.wandb_calls, wandb_runs),
                ):
                    print(f"repeat {i + 1}/{cfg.repeats}: {name} x {calls:,} ...", flush=True)
                    try:
                        runs.append(run_worker(anchor_py, [name, *sizes], name, cwd, timeout))
                    except RuntimeError as exc:
                        print(f"{name} not measured in this repeat: {exc}", file=sys.stderr)
        print(f"saturation: predict x {cfg.saturation_calls:,}, unpaced ...", flush=True)
        saturation = run_worker(
            sys.executable,
            ["saturation", "--saturation-calls", str(cfg.saturation_calls)],
            "saturation",
            cwd,
            timeout,
        )
        rss: dict[str, Any] = {}
        if not cfg.no_memory:
            print(f"memory: predict x {checkpoints[-1]:,} ...", flush=True)
            memory = ["rss", "--memory-calls", ",".join(map(str, checkpoints))]
            rss = run_worker(sys.executable, memory, "memory", cwd, 2400.0)
    anchors: dict[str, Any] = {}
    if prom_runs:
        anchors["prometheus"] = {
            "version": prom_runs[0]["version"],
            "labels": median_of([r["labels"] for r in prom_runs], cfg.calls),
            "child": median_of([r["child"] for r in prom_runs], cfg.calls),
        }
    if wandb_runs:
        anchors["wandb"] = {"version": wandb_runs[0]["version"], **median_of(wandb_runs, cfg.wandb_calls)}
    report(cfg, wk_runs, anchors, saturation, rss)


if __name__ == "__main__":
    main()
