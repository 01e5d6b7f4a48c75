"""Time and peak memory of ``watchkeeper.profile.profile(df)`` on a 25-column pandas frame, next to whylogs'
``why.log(df)`` on the same data in the same run.

The bar (issue): profiling 1M rows x 25 columns (20 numeric, 5 categorical) at least 10x faster than
whylogs, comparing whole-process times, with peak memory no more than twice the frame's own size.

Run: ``.venv/bin/python bench/bench_profile.py`` (about 2 minutes on 2 cores, plus some 20 s the first
time, to create the whylogs venv; ``--quick`` for a smoke run: 100k rows, 1 repeat; ``--no-whylogs`` to time
watchkeeper alone). The exit code is 0 whether or not a bar is met; it is non-zero only when the benchmark
itself fails: a worker crashed, or watchkeeper's profile or whylogs' counts disagree with the data.

The data: one seeded frame of 20 numeric columns (normal, lognormal, Pareto and Student-t tails, a float32,
int64/int32/int8 columns, an int column with NaN, columns with 2-20% NaN, a mixture with 1% outliers) and 5
string columns (3, 10, 50 and ~1000 levels, Zipf-like or uniform; one with 2% missing), written once per size
to a Parquet file in a temporary directory, so that both tools read the same bytes. The 100k frame is the
head of the 1M one.

What is timed, and how: every measurement is a fresh subprocess of this file (``--worker``), run with the
main venv's interpreter for watchkeeper and with ``bench/.venv-whylogs`` for whylogs, alternating, after one
untimed warm-up of each (which fills the OS file cache with both venvs and the Parquet files). A worker
imports pandas and the tool, reads the Parquet file into pandas (``pd.read_parquet``), profiles it, and
serialises the result (``Profile.to_bytes()``; whylogs' ``view().serialize()``) to a file.

- profile s: ``time.perf_counter`` around the profiling call alone; cpu s is ``time.process_time`` around
  it (all threads), so a tool that used both cores shows cpu s > profile s.
- process s: the parent's wall time of the whole subprocess (interpreter start-up, imports, reading,
  profiling, serialising, exit), less the worker's own bookkeeping afterwards (measuring the frame's size,
  extracting whylogs' counts for the check), which the worker times and reports. import s and read s are
  the parts of it that the worker timed itself.
- Each figure is the median over the repeats (3 by default); rows/s is rows / median profile s, and the
  ratios are whylogs' median / watchkeeper's median.

Peak memory, defined as: peak extra = (peak RSS during the profiling call) - (RSS just before it), compared
with the frame's own size, ``df.memory_usage(deep=True).sum()`` as that process's pandas holds it. The peak
is read from the kernel: before the call the worker writes ``5`` to ``/proc/self/clear_refs``, which resets
the process's high-water mark (VmHWM) to its current RSS, and reads ``VmHWM`` from ``/proc/self/status`` after
it; so nothing samples, and no short spike is missed. Where that write is refused, a thread samples
``/proc/self/statm`` every millisecond instead; the report says which was used. Linux only. Note that the
two frames differ in size: pandas 3 (main venv) holds strings Arrow-backed, pandas 2 (whylogs venv) as
Python objects, which is much larger, so each tool's peak is compared with its own frame.

Correctness, so that the comparison is honest: from watchkeeper's serialised profile (read back with
``Profile.from_bytes``), the row count and column count, the exact mean of 7 numeric columns against numpy
(relative 1e-9), p50 and p99 against the data (their rank within 1% of 0.5 and 0.99), the missing count, and
the top value of 3 string columns and its count against pandas' ``value_counts``; from whylogs, the row and
NaN counts and the mean of one column, which show it profiled every row. Any disagreement stops the
benchmark with an error after the table.

whylogs runs in its own venv, ``bench/.venv-whylogs``, created on first use from
``bench/requirements-whylogs.txt`` (every package pinned): whylogs needs numpy<2 and pandas<3, the project's
venv has numpy 2 and pandas 3. Its usage telemetry is turned off (``WHYLOGS_NO_ANALYTICS``), so that it
does not try to reach the network.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import JSON_MARK, PeakRSS, anchor_python, run_json_worker

BENCH_DIR = Path(__file__).resolve().parent
WHYLOGS_VENV = BENCH_DIR / ".venv-whylogs"
WHYLOGS_REQUIREMENTS = BENCH_DIR / "requirements-whylogs.txt"
SEED = 20240611
MB = 1e6

SPEED_BAR = 10.0  # whylogs time / watchkeeper time, at least
MEMORY_BAR = 2.0  # watchkeeper's peak extra memory / frame size, at most
BAR_ROWS = 1_000_000

MEAN_RTOL = 1e-9
RANK_TOL = 0.01
CHECKED_NUMERIC = ("num1", "num3", "num7", "num8", "num12", "num14", "num16")
CHECKED_STRINGS = ("cat0", "cat2", "cat3")
WHYLOGS_CHECKED = "num1"


# --- the data ----------------------------------------------------------------------------------------------


def make_table(rows: int) -> Any:
    """The seeded 25-column table: num0..num19, cat0..cat4. Each column has its own generator."""
    import numpy as np
    import pyarrow as pa

    def rng(i: int) -> Any:
        return np.random.default_rng([SEED, i])

    def with_nan(x: Any, i: int, frac: float) -> Any:
        x = x.astype(np.float64)
        x[rng(100 + i).random(rows) < frac] = np.nan
        return x

    outliers = rng(18).normal(0.0, 1.0, rows)
    outliers[rng(118).random(rows) < 0.01] = 1e9
    numeric = [
        rng(0).normal(0.0, 1.0, rows),
        with_nan(rng(1).normal(100.0, 15.0, rows), 1, 0.05),
        rng(2).normal(-3.0, 0.01, rows),
        rng(3).normal(1e6, 1e3, rows),
        rng(4).normal(0.0, 1.0, rows).astype(np.float32),
        with_nan(rng(5).normal(50.0, 10.0, rows), 5, 0.20),
        rng(6).lognormal(0.0, 1.0, rows),
        with_nan(rng(7).lognormal(3.0, 2.0, rows), 7, 0.02),
        rng(8).pareto(1.5, rows) + 1.0,
        rng(9).standard_t(2.0, rows),
        rng(10).exponential(1000.0, rows),
        rng(11).random(rows),
        rng(12).integers(0, 1000, rows),
        rng(13).poisson(3.0, rows),
        rng(14).integers(0, 2**40, rows),
        rng(15).integers(-50, 50, rows).astype(np.int32),
        with_nan(rng(16).integers(0, 100, rows), 16, 0.10),  # an int column with NaN, as pandas holds it
        rng(17).integers(0, 2, rows).astype(np.int8),
        outliers,
        np.round(rng(19).normal(0.0, 1.0, rows), 2),  # many ties
    ]

    def zipf(n: int, s: float) -> Any:
        w = 1.0 / np.arange(1, n + 1) ** s
        return w / w.sum()

    countries = ["united-kingdom", "germany", "france", "netherlands", "spain", "italy", "poland", "sweden"]
    countries += ["portugal", "ireland"]
    strings = [  # (levels, probabilities or None for uniform, missing fraction)
        ([f"colour_{k}" for k in range(10)], zipf(10, 1.0), 0.0),
        (["train", "valid", "test"], np.array([0.8, 0.1, 0.1]), 0.0),
        ([f"sku_{k:05d}" for k in range(1000)], zipf(1000, 1.1), 0.0),
        ([f"region_{k:02d}" for k in range(50)], None, 0.02),
        (countries, None, 0.0),
    ]
    columns = {f"num{i}": pa.array(x) for i, x in enumerate(numeric)}
    for i, (levels, p, missing) in enumerate(strings):
        codes = rng(50 + i).choice(len(levels), size=rows, p=p).astype(np.int32)
        mask = rng(150 + i).random(rows) < missing if missing else None
        dict_arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), pa.array(levels))
        columns[f"cat{i}"] = dict_arr.dictionary_decode()
    return pa.table(columns)


def write_frames(sizes: list[int], directory: Path) -> dict[int, Path]:
    import pyarrow.parquet as pq

    table = make_table(max(sizes))
    paths = {}
    for n in sizes:
        paths[n] = directory / f"frame-{n}.parquet"
        pq.write_table(table.slice(0, n), paths[n])
    return paths


# --- the worker (a subprocess: watchkeeper in the main venv, whylogs in its own) ---------------------------


def _number(v: Any) -> Any:
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


def worker(tool: str, parquet: str, out: str) -> dict[str, Any]:
    """Import, read, profile, serialise; the timings and sizes as a dict (printed as JSON by ``main``)."""
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    import pyarrow.parquet  # noqa: F401 - read_parquet's engine: imported here so that it counts in import s

    if tool == "watchkeeper":
        import watchkeeper
        from watchkeeper.profile import profile as run_profile

        version = watchkeeper.__version__
    else:
        import whylogs as why

        run_profile = why.log
        version = why.__version__
    t1 = time.perf_counter()
    df = pd.read_parquet(parquet)
    t2 = time.perf_counter()
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        t3 = time.perf_counter()
        result = run_profile(df)
        t4 = time.perf_counter()
    cpu = time.process_time() - cpu0
    blob = result.to_bytes() if tool == "watchkeeper" else result.view().serialize()
    Path(out).write_bytes(blob)
    t5 = time.perf_counter()

    # bookkeeping: not part of what is compared (subtracted from the whole-process time)
    report: dict[str, Any] = {
        "tool": tool,
        "version": version,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "string_dtype": str(df["cat0"].dtype),
        "rows": len(df),
        "frame_bytes": int(df.memory_usage(deep=True).sum()),
        "import_s": t1 - t0,
        "read_s": t2 - t1,
        "profile_s": t4 - t3,
        "cpu_s": cpu,
        "serialise_s": t5 - t4,
        "profile_bytes": len(blob),
        "rss_before": mem.before,
        "rss_peak": mem.peak,
        "memory_method": mem.method,
    }
    if tool == "whylogs":
        summary = result.view().get_column(WHYLOGS_CHECKED).to_summary_dict()
        keys = ("counts/n", "counts/null", "counts/nan", "distribution/n", "distribution/mean")
        report["checked"] = {k: _number(summary.get(k)) for k in keys}
    report["bookkeeping_s"] = time.perf_counter() - t5
    return report


# --- running the workers -----------------------------------------------------------------------------------


def whylogs_python() -> str:
    """bench/.venv-whylogs' interpreter, creating the venv from the pinned requirements if need be."""
    env = {**os.environ, "WHYLOGS_NO_ANALYTICS": "1"}
    return anchor_python(WHYLOGS_VENV, WHYLOGS_REQUIREMENTS, "import whylogs, pandas, pyarrow.parquet", env)


def run_worker(python: str, tool: str, parquet: Path, out: Path, timeout: float) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool, "--parquet", str(parquet)]
    cmd += ["--out", str(out)]
    env = {**os.environ, "WHYLOGS_NO_ANALYTICS": "1"}
    result, wall = run_json_worker(cmd, tool=tool, cwd=parquet.parent, env=env, timeout=timeout)
    result["process_s"] = wall - result["bookkeeping_s"]
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of the timings and memory; the rest from the first run."""
    out = dict(runs[0])
    for key in ("import_s", "read_s", "profile_s", "cpu_s", "process_s", "serialise_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["extra_bytes"] = statistics.median(r["rss_peak"] - r["rss_before"] for r in runs)
    out["rss_peak"] = statistics.median(r["rss_peak"] for r in runs)
    out["repeat_profile_s"] = [round(r["profile_s"], 3) for r in runs]
    return out


# --- correctness -------------------------------------------------------------------------------------------


def check_watchkeeper(parquet: Path, blob: Path) -> tuple[list[str], list[str]]:
    """(lines to print, problems) comparing watchkeeper's serialised profile with the data itself."""
    import numpy as np
    import pandas as pd

    from watchkeeper.profile import Profile

    df = pd.read_parquet(parquet)
    prof = Profile.from_bytes(blob.read_bytes())
    problems, lines = [], []
    if prof.rows != len(df) or len(prof) != len(df.columns):
        problems.append(f"expected {len(df)} rows, {len(df.columns)} columns; got {prof.rows}, {len(prof)}")
    worst_mean = worst_rank = 0.0
    for name in CHECKED_NUMERIC:
        col, values = prof[name], df[name].to_numpy(dtype=np.float64)
        x = np.sort(values[np.isfinite(values)])
        exact = float(x.mean())
        rel = abs(col.mean - exact) / abs(exact)
        worst_mean = max(worst_mean, rel)
        if rel > MEAN_RTOL:
            problems.append(f"{name}: mean {col.mean!r}, numpy {exact!r} (relative error {rel:.1e})")
        missing = int(np.isnan(values).sum())
        if col.count != len(df) or col.counts.nan + col.missing != missing:
            problems.append(
                f"{name}: expected {len(df)} rows with {missing} NaN; got {col.count}, "
                f"{col.counts.nan} NaN + {col.missing} missing"
            )
        for q, v in zip((0.5, 0.99), np.atleast_1d(col.quantile([0.5, 0.99])), strict=True):
            lo = np.searchsorted(x, v, "left") / x.size
            hi = np.searchsorted(x, v, "right") / x.size
            err = 0.0 if lo <= q <= hi else min(abs(q - lo), abs(q - hi))
            worst_rank = max(worst_rank, err)
            if err > RANK_TOL:
                problems.append(f"{name}: p{q * 100:g} = {v!r} has rank {lo:.4f}..{hi:.4f}")
    lines.append(
        f"  watchkeeper: {prof.rows:,} rows, {len(prof)} columns; mean of {len(CHECKED_NUMERIC)} numeric "
        f"columns within {worst_mean:.1e} of numpy (bar {MEAN_RTOL:g}), p50/p99 rank error at most "
        f"{worst_rank:.4f} (bar {RANK_TOL:g})"
    )
    tops = []
    for name in CHECKED_STRINGS:
        counts = df[name].value_counts()
        value, count = counts.index[0], int(counts.iloc[0])
        top = prof[name].top(1)[0]
        if top.value != value or not top.lower_bound <= count <= top.upper_bound:
            problems.append(f"{name}: top {top}, pandas value_counts says {value!r} x {count}")
        if prof[name].missing != int(df[name].isna().sum()):
            problems.append(f"{name}: {prof[name].missing} missing, pandas says {int(df[name].isna().sum())}")
        tops.append(f"{name} {top.value!r} x {top.count:,} (pandas {count:,})")
    lines.append("  watchkeeper top values: " + "; ".join(tops))
    return lines, problems


def check_whylogs(parquet: Path, result: dict[str, Any]) -> tuple[list[str], list[str]]:
    import numpy as np
    import pyarrow.parquet as pq

    values = pq.read_table(parquet, columns=[WHYLOGS_CHECKED]).column(0).to_numpy()
    rows, nan = values.size, int(np.isnan(values).sum())
    exact = float(np.nanmean(values))
    c = result["checked"]
    problems = []
    # whylogs counts NaN as null too: in a float column without None, both are the NaN count
    if c["counts/n"] != rows or c["counts/nan"] != nan or c["distribution/n"] != rows - nan:
        problems.append(f"whylogs {WHYLOGS_CHECKED}: expected {rows} rows, {nan} NaN; got {c}")
    if abs(c["distribution/mean"] - exact) > 1e-6 * abs(exact):
        problems.append(f"whylogs {WHYLOGS_CHECKED}: mean {c['distribution/mean']}, numpy {exact}")
    line = (
        f"  whylogs {WHYLOGS_CHECKED}: counts/n {c['counts/n']:,.0f} (rows {rows:,}), counts/null "
        f"{c['counts/null']:,.0f}, counts/nan {c['counts/nan']:,.0f} (NaN {nan:,}), distribution/n "
        f"{c['distribution/n']:,.0f}, mean {c['distribution/mean']:.6f} (numpy {exact:.6f})"
    )
    return [line], problems


# --- report ------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(cfg: argparse.Namespace, results: dict[int, dict[str, dict[str, Any]]]) -> None:
    first = next(iter(results.values()))
    print()
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {cfg.repeats} repeat(s), medians")
    for tool, r in first.items():
        print(
            f"{tool} {r['version']}: pandas {r['pandas']}, numpy {r['numpy']}, strings held as "
            f"{r['string_dtype']}; peak memory by {r['memory_method']}"
        )
    header = (
        f"{'rows':>9}  {'tool':<11}{'profile s':>10}{'rows/s':>9}{'cpu s':>7}{'process s':>10}{'import s':>9}"
        f"{'read s':>8}{'frame MB':>9}{'extra MB':>9}{'extra/frame':>12}{'peak RSS MB':>12}"
    )
    print(header)
    for n, by_tool in results.items():
        for tool, r in by_tool.items():
            print(
                f"{n:>9,}  {tool:<11}{r['profile_s']:>10.3f}{n / r['profile_s'] / 1e6:>8.2f}M"
                f"{r['cpu_s']:>7.2f}{r['process_s']:>10.2f}{r['import_s']:>9.2f}{r['read_s']:>8.2f}"
                f"{r['frame_bytes'] / MB:>9.1f}{r['extra_bytes'] / MB:>9.1f}"
                f"{r['extra_bytes'] / r['frame_bytes']:>11.2f}x{r['rss_peak'] / MB:>12.1f}"
            )
        if "whylogs" in by_tool:
            wk, wl = by_tool["watchkeeper"], by_tool["whylogs"]
            print(
                f"{'':>11}whylogs / watchkeeper: profiling {wl['profile_s'] / wk['profile_s']:.1f}x, "
                f"whole process {wl['process_s'] / wk['process_s']:.1f}x"
            )
    for n, by_tool in results.items():
        print(
            f"  {n:,} rows, profile s of each repeat: "
            + "; ".join(f"{tool} {r['repeat_profile_s']}" for tool, r in by_tool.items())
        )
    print(
        "MB = 10^6 bytes; extra = peak RSS during the profiling call - RSS just before it; frame = "
        "df.memory_usage(deep=True).sum() in that process"
    )

    n = BAR_ROWS if BAR_ROWS in results else max(results)
    wk = results[n]["watchkeeper"]
    print()
    if n != BAR_ROWS:
        print(f"(the bars are set at {BAR_ROWS:,} rows; this run measured at most {n:,})")
    if "whylogs" in results[n]:
        wl = results[n]["whylogs"]
        whole, inproc = wl["process_s"] / wk["process_s"], wl["profile_s"] / wk["profile_s"]
        print(
            f"{mark(whole >= SPEED_BAR)}  {n:,} rows, whole process: whylogs {wl['process_s']:.2f} s / "
            f"watchkeeper {wk['process_s']:.2f} s = {whole:.1f}x (bar: >= {SPEED_BAR:g}x)"
        )
        print(
            f"{mark(inproc >= SPEED_BAR)}  {n:,} rows, profiling call: whylogs {wl['profile_s']:.3f} s / "
            f"watchkeeper {wk['profile_s']:.3f} s = {inproc:.1f}x (bar: >= {SPEED_BAR:g}x)"
        )
    else:
        print("----  speed ratio not measured (whylogs not run)")
    ratio = wk["extra_bytes"] / wk["frame_bytes"]
    print(
        f"{mark(ratio <= MEMORY_BAR)}  {n:,} rows, watchkeeper peak extra memory "
        f"{wk['extra_bytes'] / MB:.1f} MB = {ratio:.2f}x the frame's {wk['frame_bytes'] / MB:.1f} MB "
        f"(bar: <= {MEMORY_BAR:g}x)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows and 1 repeat: a smoke run")
    parser.add_argument("--no-whylogs", action="store_true", help="time watchkeeper only")
    parser.add_argument("--rows", help="comma-separated frame sizes (default 100000,1000000; quick 100000)")
    parser.add_argument("--repeats", type=int, help="subprocess runs per tool and size (default 3; quick 1)")
    parser.add_argument("--worker", choices=["watchkeeper", "whylogs"], help=argparse.SUPPRESS)
    parser.add_argument("--parquet", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)

    if cfg.worker:  # we are the subprocess
        print(JSON_MARK + json.dumps(worker(cfg.worker, cfg.parquet, cfg.out)), flush=True)
        return

    sizes = [int(s) for s in (cfg.rows or ("100000" if cfg.quick else "100000,1000000")).split(",")]
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 3)
    timeout = 900.0
    tools = {"watchkeeper": sys.executable}
    if not cfg.no_whylogs:
        try:
            tools["whylogs"] = whylogs_python()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"whylogs not measured: {exc}", file=sys.stderr)

    results: dict[int, dict[str, dict[str, Any]]] = {}
    checks: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-profile-") as tmp:
        tmpdir = Path(tmp)
        print(f"writing the frames ({', '.join(f'{n:,}' for n in sizes)} rows x 25 columns) ...", flush=True)
        frames = write_frames(sizes, tmpdir)
        print("warm-up (untimed) ...", flush=True)
        for tool, python in list(tools.items()):
            try:
                run_worker(python, tool, frames[min(sizes)], tmpdir / f"warmup-{tool}.bin", timeout)
            except RuntimeError as exc:
                if tool == "watchkeeper":
                    raise
                print(f"whylogs not measured: {exc}", file=sys.stderr)
                del tools[tool]
        for n in sizes:
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            for i in range(cfg.repeats):
                for tool, python in tools.items():
                    print(f"{n:,} rows: {tool}, repeat {i + 1}/{cfg.repeats} ...", flush=True)
                    out = tmpdir / f"{tool}-{n}-{i}.bin"
                    try:
                        runs[tool].append(run_worker(python, tool, frames[n], out, timeout))
                    except RuntimeError as exc:
                        if tool == "watchkeeper":
                            raise
                        print(f"whylogs not measured: {exc}", file=sys.stderr)
            results[n] = {tool: summarise(r) for tool, r in runs.items() if r}
            lines, found = check_watchkeeper(frames[n], tmpdir / f"watchkeeper-{n}-0.bin")
            checks += [f"{n:,} rows:", *lines]
            problems += found
            if "whylogs" in results[n]:
                lines, found = check_whylogs(frames[n], results[n]["whylogs"])
                checks += lines
                problems += found
    report(cfg, results)
    print()
    print("checks against the data:")
    print("\n".join(checks))
    if problems:
        sys.exit(
            "the benchmark is not valid, the profiles disagree with the data:\n  " + "\n  ".join(problems)
        )


if __name__ == "__main__":
    main()
