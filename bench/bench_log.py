"""Cost of ``run.log({5 scalars})`` on the caller's thread, and the rate at which the writer persists points
into SQLite, next to ``wandb.log`` (offline) and prometheus_client on the same loop.

The bar (issue): ``run.log`` at most 5 µs per call at the median, and at least 200,000 points/s written.

Run: ``.venv/bin/python bench/bench_log.py`` (about 2 minutes on 2 cores; ``--quick`` for a smoke run of a
few seconds, ``--no-anchors`` to time watchkeeper alone). The exit code is 0 whether or not a bar is met;
it is non-zero only when the benchmark itself fails, e.g. when points are missing from the store.

What is timed, and how:

- Per call: every call is timed on its own with ``time.perf_counter_ns`` around it, after a warm-up; the
  dict of 5 scalars (4 floats, 1 int, values changing every step) is built outside the timed region. Each
  repeat is a fresh run in a fresh temporary directory; the table shows the median over repeats of each
  repeat's median and of each repeat's p99. watchkeeper's writer thread drains the queue while the loop
  runs, as in real use, so its GIL share is in these figures. ``timer alone`` is the cost of the empty
  ``perf_counter_ns`` pair: subtract it to get a call's own cost.
- Writer throughput: log ``steps`` x 5 keys as fast as a loop can, then ``run.finish()``; points/s is
  all points / (time from the first ``log`` until ``finish()`` returns). Afterwards
  ``Store.signals.summaries`` must show every point (count, min, max and last of each key), or the
  benchmark stops with an error. Median of the repeats.
- wandb: ``wandb.init(mode="offline")`` in a temporary directory, then ``wandb.log`` with the same dicts.
  Nothing reaches the network: WANDB_MODE=offline, error reporting (Sentry) off, git and code saving off,
  every wandb directory in the temporary one; this has been checked to finish inside a network namespace
  with no network at all (``unshare -n``). System-metrics sampling is left on, as a user would have it.
- prometheus_client: a Histogram and a Counter labelled (model, route) in their own registry; each call
  is ``.labels(...).observe(x)`` plus ``.labels(...).inc()``, as typical code does, and, separately, the
  same on children resolved once up front. The two statements sit in a small function, whose call
  (~0.05 µs) is in its figure.

Where the anchors run: in a subprocess of this same file (``--anchor wandb|prometheus``, printing JSON),
with an interpreter that has both packages: this one if it does, else ``bench/.venv-anchors``, which is
created on first use from ``bench/requirements-anchors.txt`` (pinned). This is cleaner than installing
them into the project's venv: wandb brings ~20 packages (protobuf, pydantic, sentry-sdk, gitpython, ...)
that would then be importable in the test suite and could hide a dependency watchkeeper forgot to declare;
and in a subprocess wandb's service process and threads, and prometheus' module state, do not share a
process or the GIL with the watchkeeper measurement.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import anchor_python as harness_anchor_python
from harness import wandb_offline_env

BENCH_DIR = Path(__file__).resolve().parent
ANCHOR_VENV = BENCH_DIR / ".venv-anchors"
ANCHOR_REQUIREMENTS = BENCH_DIR / "requirements-anchors.txt"
ANCHOR_MODULES = ("wandb", "prometheus_client")
JSON_MARK = "BENCH_JSON "

LOG_BAR_US = 5.0
WRITE_BAR_POINTS_PER_S = 200_000
KEYS = ("loss", "acc", "batch", "lr", "grad_norm")


def make_row(i: int) -> dict[str, Any]:
    """Step i's 5 scalars; "batch" is i itself, so the store's min, max and last of it can be checked."""
    return {"loss": 1.0 / (i + 1), "acc": i * 1e-7, "batch": i, "lr": 1e-3, "grad_norm": 0.5 + (i % 7) * 0.1}


def time_calls(call: Callable[[dict[str, Any]], object], n: int, warmup: int) -> list[int]:
    """Nanoseconds of each of ``n`` calls ``call(make_row(i))``, after ``warmup`` untimed-in-result calls."""
    pc = time.perf_counter_ns
    out: list[int] = []
    append = out.append
    for i in range(warmup + n):
        row = make_row(i)
        t0 = pc()
        call(row)
        t1 = pc()
        if i >= warmup:
            append(t1 - t0)
    return out


def timer_overhead(n: int) -> list[int]:
    pc = time.perf_counter_ns
    out: list[int] = []
    append = out.append
    for _ in range(n):
        t0 = pc()
        t1 = pc()
        append(t1 - t0)
    return out


def median_p99_us(ns: list[int]) -> tuple[float, float]:
    s = sorted(ns)
    return s[len(s) // 2] / 1e3, s[int(0.99 * (len(s) - 1))] / 1e3


def summarise(per_repeat: list[tuple[float, float]]) -> dict[str, Any]:
    """Median over repeats of the per-repeat median and p99, in µs."""
    return {
        "median_us": statistics.median(m for m, _ in per_repeat),
        "p99_us": statistics.median(p for _, p in per_repeat),
        "repeat_medians_us": [round(m, 3) for m, _ in per_repeat],
    }


# --- watchkeeper -------------------------------------------------------------------------------------------


def check_stored(uri: str, run_id: str, steps: int) -> None:
    """Fail loudly unless the store holds all ``steps`` points of every key, with the right values."""
    import watchkeeper as wk

    summaries = {s.name: s for s in wk.Store(uri).signals.summaries(run_id)}
    problems = []
    if set(summaries) != set(KEYS):
        problems.append(f"keys: expected {sorted(KEYS)}, got {sorted(summaries)}")
    for key, s in summaries.items():
        if s.count != steps:
            problems.append(f"{key}: expected {steps} points, got {s.count}")
        if s.step != steps - 1:
            problems.append(f"{key}: expected last step {steps - 1}, got {s.step}")
    last = make_row(steps - 1)
    for key, lo, hi in (("batch", 0, steps - 1), ("loss", last["loss"], 1.0)):
        s = summaries.get(key)
        if s is not None and (s.min != lo or s.max != hi or s.last != last[key]):
            problems.append(
                f"{key}: expected min {lo}, max {hi}, last {last[key]}; got {s.min}, {s.max}, {s.last}"
            )
    if problems:
        raise RuntimeError(f"run {run_id}: points missing or wrong in {uri}: " + "; ".join(problems))


def wk_per_call(calls: int, warmup: int, repeats: int) -> dict[str, Any]:
    import watchkeeper as wk

    results = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
            uri = f"sqlite:///{tmp}/wk.db"
            run = wk.init(project="bench", uri=uri, flush_interval=0.5)
            ns = time_calls(run.log, calls, warmup)
            run.finish()
            check_stored(uri, run.id, warmup + calls)
        results.append(median_p99_us(ns))
    return summarise(results)


def wk_throughput(steps: int, repeats: int) -> dict[str, Any]:
    import watchkeeper as wk

    rates, log_s, finish_s = [], [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
            uri = f"sqlite:///{tmp}/wk.db"
            run = wk.init(project="bench", uri=uri, flush_interval=0.5)
            log = run.log
            t0 = time.perf_counter()
            for i in range(steps):
                log(make_row(i))
            t1 = time.perf_counter()
            run.finish()
            t2 = time.perf_counter()
            check_stored(uri, run.id, steps)
        rates.append(steps * len(KEYS) / (t2 - t0))
        log_s.append(t1 - t0)
        finish_s.append(t2 - t1)
    return {
        "points": steps * len(KEYS),
        "points_per_s": statistics.median(rates),
        "repeat_points_per_s": [round(r) for r in rates],
        "log_loop_s": statistics.median(log_s),
        "finish_s": statistics.median(finish_s),
    }


# --- anchors (run in a subprocess; see the module docstring) -----------------------------------------------


def anchor_wandb(calls: int, warmup: int, repeats: int) -> dict[str, Any]:
    results = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-wandb-") as tmp:
        os.environ.update(wandb_offline_env(tmp))  # before the import: wandb reads some when imported
        import wandb

        for _ in range(repeats):
            run = wandb.init(mode="offline", project="bench", dir=tmp)
            ns = time_calls(run.log, calls, warmup)
            run.finish()
            results.append(median_p99_us(ns))
        version = wandb.__version__
    return {"version": version, "log": summarise(results)}


def anchor_prometheus(calls: int, warmup: int, repeats: int) -> dict[str, Any]:
    from importlib.metadata import version

    pairs = [prometheus_once(calls, warmup) for _ in range(repeats)]
    return {
        "version": version("prometheus-client"),
        "labels": summarise([labelled for labelled, _ in pairs]),
        "child": summarise([child for _, child in pairs]),
    }


def prometheus_once(calls: int, warmup: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(median, p99) µs of labels() on every call, and of children resolved once, on fresh metrics."""
    import prometheus_client as prom

    registry = prom.CollectorRegistry()
    latency = prom.Histogram("bench_latency_seconds", "Latency.", ["model", "route"], registry=registry)
    requests = prom.Counter("bench_requests", "Requests.", ["model", "route"], registry=registry)

    def by_labels(row: dict[str, Any]) -> None:
        latency.labels("resnet", "/predict").observe(row["loss"])
        requests.labels("resnet", "/predict").inc()

    latency_child = latency.labels("resnet", "/predict")
    requests_child = requests.labels("resnet", "/predict")

    def by_child(row: dict[str, Any]) -> None:
        latency_child.observe(row["loss"])
        requests_child.inc()

    labelled = median_p99_us(time_calls(by_labels, calls, warmup))
    return labelled, median_p99_us(time_calls(by_child, calls, warmup))


def anchor_python() -> str:
    """An interpreter that imports the anchors: this one, or bench/.venv-anchors (created if need be)."""
    if all(importlib.util.find_spec(m) is not None for m in ANCHOR_MODULES):
        return sys.executable
    return harness_anchor_python(ANCHOR_VENV, ANCHOR_REQUIREMENTS, "import " + ", ".join(ANCHOR_MODULES))


def run_anchor(python: str, name: str, sizes: tuple[int, int, int], timeout: float) -> dict[str, Any]:
    """Run one anchor in a subprocess of ``python``; ``sizes`` is (calls, warmup, repeats)."""
    calls, warmup, repeats = sizes
    cmd = [python, str(Path(__file__).resolve()), "--anchor", name]
    cmd += ["--calls", str(calls), "--warmup", str(warmup), "--repeats", str(repeats)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired as exc:
        msg = f"the {name} anchor did not finish in {timeout:.0f} s (is it waiting on a network?)"
        raise RuntimeError(msg) from exc
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(JSON_MARK):
            return json.loads(line[len(JSON_MARK) :])
    raise RuntimeError(f"the {name} anchor exited {done.returncode} with no result:\n{done.stderr[-2000:]}")


# --- report ------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(
    cfg: argparse.Namespace,
    timer: tuple[float, float],
    wk_log: dict[str, Any],
    wk_write: dict[str, Any],
    anchors: dict[str, Any],
) -> None:
    import watchkeeper as wk

    print()
    print(f"watchkeeper {wk.__version__}, Python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(
        f"per call: {cfg.calls:,} timed calls after {cfg.warmup:,} warm-up, {cfg.repeats} repeat(s) "
        f"(wandb: {cfg.wandb_calls:,} calls); median over repeats of each repeat's median and p99"
    )
    rows: list[tuple[str, float, float, str]] = [
        ("timer alone (perf_counter_ns pair)", *timer, ""),
    ]
    base = wk_log["median_us"]
    rows.append(("watchkeeper run.log({5 scalars})", wk_log["median_us"], wk_log["p99_us"], "1.0x"))
    for label, result in anchors.items():
        if isinstance(result, str):
            rows.append((label, float("nan"), float("nan"), result))
        else:
            rows.append((label, result["median_us"], result["p99_us"], f"{result['median_us'] / base:.1f}x"))
    width = max(len(r[0]) for r in rows) + 2
    print(f"{'tool':<{width}}{'median µs':>11}{'p99 µs':>11}   vs watchkeeper (median)")
    for label, med, p99, ratio in rows:
        print(f"{label:<{width}}{med:>11.2f}{p99:>11.2f}   {ratio}".rstrip())
    print(f"watchkeeper repeat medians (µs): {wk_log['repeat_medians_us']}")
    print()
    rate, points = wk_write["points_per_s"], wk_write["points"]
    print(
        f"writer: {points:,} points ({points // len(KEYS):,} steps x {len(KEYS)} keys) "
        f"-> {rate:,.0f} points/s persisted to SQLite, median of {cfg.write_repeats} "
        f"{wk_write['repeat_points_per_s']}; log loop {wk_write['log_loop_s']:.2f} s, "
        f"finish() {wk_write['finish_s']:.2f} s; every point verified in the store"
    )
    print()
    print(f"{mark(base <= LOG_BAR_US)}  run.log median {base:.2f} µs (bar: <= {LOG_BAR_US:g} µs)")
    bar = WRITE_BAR_POINTS_PER_S
    print(f"{mark(rate >= bar)}  writer {rate:,.0f} points/s (bar: >= {bar:,})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and 1 repeat: a smoke run")
    parser.add_argument("--no-anchors", action="store_true", help="time watchkeeper only")
    parser.add_argument("--anchor", choices=["wandb", "prometheus"], help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help="timed calls per repeat (default 200,000; quick 20,000)")
    parser.add_argument("--warmup", type=int, help="untimed-in-result calls first (default 2,000)")
    parser.add_argument("--repeats", type=int, help="per-call repeats (default 5; quick 1)")
    parser.add_argument("--wandb-calls", type=int, help="timed wandb.log calls (default 20,000; quick 2,000)")
    parser.add_argument("--steps", type=int, help="steps for throughput (default 400,000; quick 20,000)")
    parser.add_argument("--write-repeats", type=int, help="throughput repeats (default 3; quick 1)")
    cfg = parser.parse_args(argv)
    quick = cfg.quick
    cfg.calls = cfg.calls or (20_000 if quick else 200_000)
    cfg.warmup = cfg.warmup if cfg.warmup is not None else (500 if quick else 2_000)
    cfg.repeats = cfg.repeats or (1 if quick else 5)
    cfg.wandb_calls = cfg.wandb_calls or (2_000 if quick else 20_000)
    cfg.steps = cfg.steps or (20_000 if quick else 400_000)
    cfg.write_repeats = cfg.write_repeats or (1 if quick else 3)

    if cfg.anchor:  # we are the subprocess
        fn = anchor_wandb if cfg.anchor == "wandb" else anchor_prometheus
        print(JSON_MARK + json.dumps(fn(cfg.calls, cfg.warmup, cfg.repeats)), flush=True)
        return

    print("timing watchkeeper run.log ...", flush=True)
    timer = median_p99_us(timer_overhead(cfg.calls))
    wk_log = wk_per_call(cfg.calls, cfg.warmup, cfg.repeats)
    print("timing the writer ...", flush=True)
    wk_write = wk_throughput(cfg.steps, cfg.write_repeats)

    anchors: dict[str, Any] = {}
    if not cfg.no_anchors:
        timeout = 300 if quick else 900
        try:
            python = anchor_python()
            print("timing wandb (offline) ...", flush=True)
            wb = run_anchor(python, "wandb", (cfg.wandb_calls, min(cfg.warmup, 500), cfg.repeats), timeout)
            print("timing prometheus_client ...", flush=True)
            pm = run_anchor(python, "prometheus", (cfg.calls, cfg.warmup, cfg.repeats), timeout)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"anchors not measured: {exc}", file=sys.stderr)
            anchors["anchors (see stderr)"] = "not measured"
        else:
            anchors[f"wandb {wb['version']} log({{5 scalars}}), offline"] = wb["log"]
            anchors[f"prometheus_client {pm['version']} labels().observe + .inc"] = pm["labels"]
            anchors[f"prometheus_client {pm['version']} child.observe + .inc"] = pm["child"]
    report(cfg, timer, wk_log, wk_write, anchors)


if __name__ == "__main__":
    main()
