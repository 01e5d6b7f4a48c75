"""Time and peak memory of ``wk.drift(ref_df, cur_df)`` on two 25-column pandas frames, next to Evidently's
``Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)`` on the same data in the same run.

The bar (issue): on 100k and 1M rows x 25 columns (20 numeric, 5 categorical with 10 levels), ``wk.drift``
on raw frames at least 20x faster than Evidently's data-drift report, comparing whole-process times, and with
at most a quarter of its peak memory.

Run: ``.venv/bin/python bench/bench_drift.py`` (about 9 minutes on 2 cores, nearly all of it Evidently at
1M rows, plus about a minute the first time, to create the Evidently venv; ``--quick`` for a smoke run:
100k rows, 1 repeat; ``--no-evidently`` to time watchkeeper alone). The exit code is 0 whether or not a bar
is met; it is non-zero only when the benchmark itself fails: a worker crashed, watchkeeper missed a column
that was shifted, or Evidently did not compare every column.

The data: a seeded reference and a seeded current frame, 20 numeric columns (normal, lognormal, Pareto and
Student-t tails, a float32, int64/int32/int8 columns, a Poisson count, an int column with NaN, columns with
2-20% NaN, a mixture with 1% outliers) and 5 string columns of 10 levels each (Zipf-like, uniform, skewed;
one with 2% missing). The current frame is drawn afresh from the same distributions, except for 6 shifted
columns (``SHIFTED``): num0 (mean +0.25 sd), num5 (sd x1.3), num10 (exponential scale x1.15), num13
(Poisson mean 3 -> 3.5), cat0 (the top level's share +10 points) and cat3 (5 points moved from one level to
another). Each is written once per size to Parquet in a temporary directory, so both tools read the same
bytes; the 100k frames are the heads of the 1M ones.

What is timed, and how: every measurement is a fresh subprocess of this file (``--worker``), run with the
main venv's interpreter for watchkeeper and with ``bench/.venv-evidently`` for Evidently, alternating, after
one untimed warm-up of each (which fills the OS file cache with both venvs and the Parquet files). A worker
imports pandas and the tool, reads both Parquet files into pandas (``pd.read_parquet``), runs the drift
call, then writes the tool's HTML report (``res.to_html(path)``; Evidently's ``snapshot.save_html(path)``).

- call s: ``time.perf_counter`` around the drift call alone; cpu s is ``time.process_time`` around it (all
  threads).
- process s: the parent's wall time of the whole subprocess (interpreter start-up, imports, reading both
  files, the drift call, exit), less the HTML report and the worker's own bookkeeping afterwards (reading
  the verdicts out of the result, measuring the frames), which the worker times and reports. import s and
  read s are parts of it that the worker timed itself. html s is the report, timed on its own.
- Each figure is the median over the repeats (3 by default); the ratios are Evidently's median /
  watchkeeper's median. An Evidently run at a size that takes more than ``LONG_RUN_S`` is not repeated at
  that size: its single run is the figure, and the report says so.

Memory, two figures per tool, both from the kernel (Linux only):

- peak RSS: the absolute peak resident memory of the worker process from its start to the end of the drift
  call (interpreter, imports, both frames, the call), i.e. the larger of ``VmHWM`` just before the call and
  the peak during it. This is what the memory bar compares: watchkeeper's at most a quarter of Evidently's.
- extra: (peak RSS during the drift call) - (RSS just before it), the memory the call itself needed on top
  of the loaded frames. Printed with its own ratio, for information.

The peak during the call is read as in bench_profile.py: before it the worker writes ``5`` to
``/proc/self/clear_refs``, which resets the high-water mark (VmHWM) to the current RSS, and reads ``VmHWM``
after it; where that write is refused, a thread samples ``/proc/self/statm`` every millisecond instead; the
report says which was used. Neither tool leaves a child process alive after the call (the worker checks).
Note that the frames differ in size: pandas 3 (main venv) holds strings Arrow-backed, pandas 2 (Evidently's
venv) as Python objects, which is larger; that is what each tool's users get from ``pd.read_parquet``, and
it is in each tool's peak.

Sanity, printed: how many columns each tool flagged as drifted. They use different rules (watchkeeper: a
test at 1% family-wise error and an effect-size floor; Evidently: for samples over 1,000 rows, a normed
Wasserstein distance >= 0.1 for numeric columns and a Jensen-Shannon distance >= 0.1 for categorical ones),
so the counts need not agree. watchkeeper must flag every column in ``SHIFTED``, or the benchmark is not
valid; columns it flags beyond them are listed.

Evidently runs in its own venv, ``bench/.venv-evidently``, created on first use from
``bench/requirements-evidently.txt`` (every package pinned): Evidently needs pandas<3 (0.7.23 fails at
import under pandas 3.1: ``cannot import name 'infer_dtype_from_object'``), the project's venv has pandas 3.
Its usage telemetry is turned off (``DO_NOT_TRACK``), so that it does not try to reach the network.
"""

from __future__ import annotations

import argparse
import contextlib
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

from harness import JSON_MARK, PeakRSS, anchor_python, run_json_worker, status_bytes

BENCH_DIR = Path(__file__).resolve().parent
EVIDENTLY_VENV = BENCH_DIR / ".venv-evidently"
EVIDENTLY_REQUIREMENTS = BENCH_DIR / "requirements-evidently.txt"
SEED = 20240917
MB = 1e6

SPEED_BAR = 20.0  # Evidently's time / watchkeeper's time, at least
MEMORY_BAR = 0.25  # watchkeeper's peak RSS / Evidently's peak RSS, at most
BAR_ROWS = (100_000, 1_000_000)
LONG_RUN_S = 300.0  # an Evidently run longer than this is not repeated at that size
COLUMNS = 25
SHIFTED = ("num0", "num5", "num10", "num13", "cat0", "cat3")


# --- the data ----------------------------------------------------------------------------------------------


def make_tables(rows: int) -> tuple[Any, Any]:
    """The seeded reference and current tables: num0..num19, cat0..cat4; ``SHIFTED`` columns move."""
    import numpy as np
    import pyarrow as pa

    def numeric(side: int, shift: bool) -> list[Any]:
        def rng(i: int) -> Any:
            return np.random.default_rng([SEED, side, i])

        def with_nan(x: Any, i: int, frac: float) -> Any:
            x = x.astype(np.float64)
            x[rng(100 + i).random(rows) < frac] = np.nan
            return x

        outliers = rng(18).normal(0.0, 1.0, rows)
        outliers[rng(118).random(rows) < 0.01] = 1e9
        return [
            rng(0).normal(0.25 if shift else 0.0, 1.0, rows),
            with_nan(rng(1).normal(100.0, 15.0, rows), 1, 0.05),
            rng(2).normal(-3.0, 0.01, rows),
            rng(3).normal(1e6, 1e3, rows),
            rng(4).normal(0.0, 1.0, rows).astype(np.float32),
            with_nan(rng(5).normal(50.0, 13.0 if shift else 10.0, rows), 5, 0.20),
            rng(6).lognormal(0.0, 1.0, rows),
            with_nan(rng(7).lognormal(3.0, 2.0, rows), 7, 0.02),
            rng(8).pareto(1.5, rows) + 1.0,
            rng(9).standard_t(2.0, rows),
            rng(10).exponential(1150.0 if shift else 1000.0, rows),
            rng(11).random(rows),
            rng(12).integers(0, 1000, rows),
            rng(13).poisson(3.5 if shift else 3.0, rows),
            rng(14).integers(0, 2**40, rows),
            rng(15).integers(-50, 50, rows).astype(np.int32),
            with_nan(rng(16).integers(0, 100, rows), 16, 0.10),  # an int column with NaN, as pandas holds it
            rng(17).integers(0, 2, rows).astype(np.int8),
            outliers,
            np.round(rng(19).normal(0.0, 1.0, rows), 2),  # many ties
        ]

    zipf = 1.0 / np.arange(1, 11)
    zipf /= zipf.sum()
    uniform = np.full(10, 0.1)
    skewed = np.array([0.3, 0.2, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02])
    zipf_shifted = np.concatenate(([zipf[0] + 0.10], zipf[1:] * (1 - zipf[0] - 0.10) / zipf[1:].sum()))
    skewed_shifted = skewed + np.array([0, -0.05, 0, 0, 0, 0, 0, 0, 0, 0.05])
    countries = ["united-kingdom", "germany", "france", "netherlands", "spain", "italy", "poland", "sweden"]
    countries += ["portugal", "ireland"]
    strings = [  # (levels, reference shares, current shares, missing fraction)
        ([f"colour_{k}" for k in range(10)], zipf, zipf_shifted, 0.0),
        ([f"segment_{k}" for k in range(10)], uniform, uniform, 0.0),
        ([f"region_{k:02d}" for k in range(10)], zipf, zipf, 0.02),
        ([f"plan_{k}" for k in range(10)], skewed, skewed_shifted, 0.0),
        (countries, uniform, uniform, 0.0),
    ]

    def table(side: int, shift: bool) -> Any:
        columns = {f"num{i}": pa.array(x) for i, x in enumerate(numeric(side, shift))}
        for i, (levels, p_ref, p_cur, missing) in enumerate(strings):
            rng = np.random.default_rng([SEED, side, 50 + i])
            codes = rng.choice(10, size=rows, p=p_cur if shift else p_ref).astype(np.int32)
            mask = rng.random(rows) < missing if missing else None
            dict_arr = pa.DictionaryArray.from_arrays(pa.array(codes, mask=mask), pa.array(levels))
            columns[f"cat{i}"] = dict_arr.dictionary_decode()
        return pa.table(columns)

    return table(0, False), table(1, True)


def write_frames(sizes: list[int], directory: Path) -> dict[int, tuple[Path, Path]]:
    import pyarrow.parquet as pq

    ref, cur = make_tables(max(sizes))
    paths = {}
    for n in sizes:
        paths[n] = (directory / f"reference-{n}.parquet", directory / f"current-{n}.parquet")
        pq.write_table(ref.slice(0, n), paths[n][0])
        pq.write_table(cur.slice(0, n), paths[n][1])
    return paths


# --- the worker (a subprocess: watchkeeper in the main venv, Evidently in its own) -------------------------


def _children() -> int:
    """Live child processes of this process (every thread's), from /proc."""
    count = 0
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):  # the file needs CONFIG_PROC_CHILDREN
            count += len((task / "children").read_text().split())
    return count


def _evidently_verdicts(snapshot: Any) -> tuple[int, list[str], int]:
    """(Evidently's drifted-column count, the columns its per-column rules flag, columns it compared)."""
    count, flagged, compared = -1, [], 0
    for metric in snapshot.dict()["metrics"]:
        config, value = metric["config"], metric["value"]
        if config["type"].endswith(":DriftedColumnsCount"):
            count = int(value["count"])
        elif config["type"].endswith(":ValueDrift"):
            compared += 1
            # Evidently's own rule per method: a p-value below the threshold, a distance at or above it
            is_p_value = "p_value" in config["method"]
            if (value < config["threshold"]) if is_p_value else (value >= config["threshold"]):
                flagged.append(config["column"])
    return count, flagged, compared


def worker(tool: str, ref_path: str, cur_path: str, html: str) -> dict[str, Any]:
    """Import, read, compare, write the report; the timings and sizes as a dict (printed as JSON)."""
    t0 = time.perf_counter()
    import numpy as np
    import pandas as pd
    import pyarrow.parquet  # noqa: F401 - read_parquet's engine: imported here so that it counts in import s

    if tool == "watchkeeper":
        import watchkeeper as wk

        def run(ref: Any, cur: Any) -> Any:
            return wk.drift(ref, cur)

        def save(result: Any) -> None:
            result.to_html(html)

        version = wk.__version__
    else:
        import evidently
        from evidently import Report
        from evidently.presets import DataDriftPreset

        def run(ref: Any, cur: Any) -> Any:
            return Report([DataDriftPreset()]).run(reference_data=ref, current_data=cur)

        def save(result: Any) -> None:
            result.save_html(html)

        version = evidently.__version__
    t1 = time.perf_counter()
    ref = pd.read_parquet(ref_path)
    cur = pd.read_parquet(cur_path)
    t2 = time.perf_counter()
    peak_before = status_bytes("VmHWM")
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        t3 = time.perf_counter()
        result = run(ref, cur)
        t4 = time.perf_counter()
    cpu = time.process_time() - cpu0
    children = _children()
    with PeakRSS() as html_mem:
        t5 = time.perf_counter()
        save(result)
        t6 = time.perf_counter()

    # bookkeeping: not part of what is compared (subtracted from the whole-process time)
    report: dict[str, Any] = {
        "tool": tool,
        "version": version,
        "pandas": pd.__version__,
        "numpy": np.__version__,
        "string_dtype": str(ref["cat0"].dtype),
        "rows": len(ref),
        "frame_bytes": int(ref.memory_usage(deep=True).sum() + cur.memory_usage(deep=True).sum()),
        "import_s": t1 - t0,
        "read_s": t2 - t1,
        "call_s": t4 - t3,
        "cpu_s": cpu,
        "html_s": t6 - t5,
        "html_bytes": Path(html).stat().st_size,
        "html_extra": html_mem.peak - html_mem.before,
        "rss_before": mem.before,
        "rss_call_peak": mem.peak,
        "rss_peak": max(peak_before, mem.peak),
        "memory_method": mem.method,
        "children": children,
    }
    if tool == "watchkeeper":
        report["flagged"] = list(result.drifted_columns)
        report["compared"] = len(result.compared)
        report["dataset_drifted"] = bool(result.drifted)
        report["count"] = len(result.drifted_columns)
    else:
        report["count"], report["flagged"], report["compared"] = _evidently_verdicts(result)
    report["bookkeeping_s"] = time.perf_counter() - t6
    return report


# --- running the workers -----------------------------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "DO_NOT_TRACK": "1"}


def evidently_python() -> str:
    """bench/.venv-evidently's interpreter, creating the venv from the pinned requirements if need be."""
    probe = "import evidently.presets, pandas, pyarrow.parquet"
    return anchor_python(EVIDENTLY_VENV, EVIDENTLY_REQUIREMENTS, probe, _env())


def run_worker(
    python: str, tool: str, frames: tuple[Path, Path], html: Path, timeout: float
) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool]
    cmd += ["--reference", str(frames[0]), "--current", str(frames[1]), "--html", str(html)]
    result, wall = run_json_worker(cmd, tool=tool, cwd=html.parent, env=_env(), timeout=timeout)
    result["process_s"] = wall - result["html_s"] - result["bookkeeping_s"]
    return result


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over repeats of the timings and memory; the rest from the first run."""
    out = dict(runs[0])
    for key in ("import_s", "read_s", "call_s", "cpu_s", "process_s", "html_s", "rss_peak", "html_extra"):
        out[key] = statistics.median(r[key] for r in runs)
    out["extra_bytes"] = statistics.median(r["rss_call_peak"] - r["rss_before"] for r in runs)
    out["repeat_call_s"] = [round(r["call_s"], 3) for r in runs]
    out["repeat_process_s"] = [round(r["process_s"], 2) for r in runs]
    out["repeats"] = len(runs)
    return out


def check(n: int, by_tool: dict[str, dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(lines to print, problems) from the two tools' verdicts at one size."""
    lines, problems = [], []
    wk = by_tool["watchkeeper"]
    missed = [c for c in SHIFTED if c not in wk["flagged"]]
    extra = [c for c in wk["flagged"] if c not in SHIFTED]
    lines.append(
        f"  watchkeeper flagged {wk['count']} of {wk['compared']} compared columns: "
        f"{', '.join(wk['flagged'])} (shifted: {', '.join(SHIFTED)}; dataset drifted: "
        f"{wk['dataset_drifted']})"
    )
    if wk["compared"] != COLUMNS:
        problems.append(f"{n:,} rows: watchkeeper compared {wk['compared']} columns, expected {COLUMNS}")
    if missed:
        problems.append(f"{n:,} rows: watchkeeper missed the shifted column(s) {', '.join(missed)}")
    if extra:
        lines.append(f"  note: watchkeeper also flagged {', '.join(extra)}, which were not shifted")
    if "evidently" in by_tool:
        ev = by_tool["evidently"]
        lines.append(
            f"  Evidently flagged {ev['count']} of {ev['compared']} compared columns (DriftedColumnsCount); "
            f"by its per-column rules: {', '.join(ev['flagged']) or 'none'}"
        )
        if ev["compared"] != COLUMNS:
            problems.append(f"{n:,} rows: Evidently compared {ev['compared']} columns, expected {COLUMNS}")
    for tool, r in by_tool.items():
        if r["children"]:
            problems.append(
                f"{n:,} rows: the {tool} worker had {r['children']} child process(es) after the call"
            )
    return lines, problems


# --- report ------------------------------------------------------------------------------------------------


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(cfg: argparse.Namespace, results: dict[int, dict[str, dict[str, Any]]]) -> None:
    first = next(iter(results.values()))
    print()
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, up to {cfg.repeats} repeat(s), medians"
    )
    for tool, r in first.items():
        print(
            f"{tool} {r['version']}: pandas {r['pandas']}, numpy {r['numpy']}, strings held as "
            f"{r['string_dtype']}; peak memory by {r['memory_method']}"
        )
    header = (
        f"{'rows':>9}  {'tool':<12}{'call s':>9}{'cpu s':>8}{'process s':>10}{'import s':>9}{'read s':>8}"
        f"{'frames MB':>10}{'extra MB':>9}{'peak RSS MB':>12}{'html s':>8}{'flagged':>8}{'runs':>5}"
    )
    print(header)
    for n, by_tool in results.items():
        for tool, r in by_tool.items():
            print(
                f"{n:>9,}  {tool:<12}{r['call_s']:>9.3f}{r['cpu_s']:>8.2f}{r['process_s']:>10.2f}"
                f"{r['import_s']:>9.2f}{r['read_s']:>8.2f}{r['frame_bytes'] / MB:>10.1f}"
                f"{r['extra_bytes'] / MB:>9.1f}{r['rss_peak'] / MB:>12.1f}{r['html_s']:>8.3f}"
                f"{r['count']:>8}{r['repeats']:>5}"
            )
        if "evidently" in by_tool:
            wk, ev = by_tool["watchkeeper"], by_tool["evidently"]
            print(
                f"{'':>11}Evidently / watchkeeper: drift call {ev['call_s'] / wk['call_s']:.1f}x, "
                f"whole process {ev['process_s'] / wk['process_s']:.1f}x; watchkeeper / Evidently: peak RSS "
                f"{wk['rss_peak'] / ev['rss_peak']:.2f}, extra {wk['extra_bytes'] / ev['extra_bytes']:.2f}"
            )
    for n, by_tool in results.items():
        print(
            f"  {n:,} rows, call s of each repeat: "
            + "; ".join(f"{tool} {r['repeat_call_s']}" for tool, r in by_tool.items())
        )
        ev = by_tool.get("evidently")
        if ev is not None and ev["repeats"] < cfg.repeats:
            print(
                f"  {n:,} rows: Evidently ran {ev['repeats']} time(s), not {cfg.repeats}: its first run took "
                f"{ev['repeat_process_s'][0]:.0f} s (> {LONG_RUN_S:.0f} s)"
            )
    print(
        "MB = 10^6 bytes; peak RSS = the worker's peak resident memory from its start to the end of the "
        "drift call; extra = peak RSS during the call - RSS just before it; frames = both frames' "
        "df.memory_usage(deep=True) in that process; html s = writing the HTML report (not in process s)"
    )
    for n, by_tool in results.items():
        if "evidently" in by_tool:
            wk, ev = by_tool["watchkeeper"], by_tool["evidently"]
            print(
                f"  {n:,} rows, HTML report: Evidently save_html {ev['html_s']:.3f} s, "
                f"{ev['html_bytes'] / MB:.1f} MB, +{ev['html_extra'] / MB:.0f} MB RSS; watchkeeper to_html "
                f"{wk['html_s']:.3f} s, {wk['html_bytes'] / MB:.2f} MB, +{wk['html_extra'] / MB:.0f} MB RSS"
            )

    print()
    measured = [n for n in BAR_ROWS if n in results]
    if not measured:
        print(f"(the bars are set at {', '.join(f'{n:,}' for n in BAR_ROWS)} rows; this run measured none)")
        measured = [max(results)]
    if set(measured) != set(BAR_ROWS):
        print(
            f"(the bars are set at {' and '.join(f'{n:,}' for n in BAR_ROWS)} rows; this run measured "
            f"{' and '.join(f'{n:,}' for n in measured)})"
        )
    for n in measured:
        by_tool = results[n]
        if "evidently" not in by_tool:
            print(f"----  {n:,} rows: ratios not measured (Evidently not run)")
            continue
        wk, ev = by_tool["watchkeeper"], by_tool["evidently"]
        whole, inproc = ev["process_s"] / wk["process_s"], ev["call_s"] / wk["call_s"]
        peak, extra = wk["rss_peak"] / ev["rss_peak"], wk["extra_bytes"] / ev["extra_bytes"]
        print(
            f"{mark(whole >= SPEED_BAR)}  {n:,} rows, whole process: Evidently {ev['process_s']:.2f} s / "
            f"watchkeeper {wk['process_s']:.2f} s = {whole:.1f}x (bar: >= {SPEED_BAR:g}x)"
        )
        print(
            f"{mark(inproc >= SPEED_BAR)}  {n:,} rows, drift call: Evidently {ev['call_s']:.3f} s / "
            f"watchkeeper {wk['call_s']:.3f} s = {inproc:.1f}x (bar: >= {SPEED_BAR:g}x)"
        )
        print(
            f"{mark(peak <= MEMORY_BAR)}  {n:,} rows, peak RSS: watchkeeper {wk['rss_peak'] / MB:.0f} MB / "
            f"Evidently {ev['rss_peak'] / MB:.0f} MB = {peak:.2f} (bar: <= {MEMORY_BAR:g})"
        )
        print(
            f"{mark(extra <= MEMORY_BAR)}  {n:,} rows, extra memory during the call: watchkeeper "
            f"{wk['extra_bytes'] / MB:.0f} MB / Evidently {ev['extra_bytes'] / MB:.0f} MB = {extra:.2f} "
            f"(for information; the bar compares peak RSS)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows and 1 repeat: a smoke run")
    parser.add_argument("--no-evidently", action="store_true", help="time watchkeeper only")
    parser.add_argument("--rows", help="comma-separated frame sizes (default 100000,1000000; quick 100000)")
    parser.add_argument("--repeats", type=int, help="subprocess runs per tool and size (default 3; quick 1)")
    parser.add_argument("--worker", choices=["watchkeeper", "evidently"], help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    parser.add_argument("--current", help=argparse.SUPPRESS)
    parser.add_argument("--html", help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)

    if cfg.worker:  # we are the subprocess
        result = worker(cfg.worker, cfg.reference, cfg.current, cfg.html)
        print(JSON_MARK + json.dumps(result), flush=True)
        return

    sizes = [int(s) for s in (cfg.rows or ("100000" if cfg.quick else "100000,1000000")).split(",")]
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 3)
    timeout = 1800.0
    tools = {"watchkeeper": sys.executable}
    if not cfg.no_evidently:
        try:
            tools["evidently"] = evidently_python()
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            print(f"Evidently not measured: {exc}", file=sys.stderr)

    results: dict[int, dict[str, dict[str, Any]]] = {}
    checks: list[str] = []
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="wk-bench-drift-") as tmp:
        tmpdir = Path(tmp)
        print(
            f"writing the frames ({', '.join(f'{n:,}' for n in sizes)} rows x {COLUMNS} columns, reference "
            "and current) ...",
            flush=True,
        )
        frames = write_frames(sizes, tmpdir)
        print("warm-up (untimed) ...", flush=True)
        for tool, python in list(tools.items()):
            try:
                run_worker(python, tool, frames[min(sizes)], tmpdir / f"warmup-{tool}.html", timeout)
            except RuntimeError as exc:
                if tool == "watchkeeper":
                    raise
                print(f"Evidently not measured: {exc}", file=sys.stderr)
                del tools[tool]
        for n in sizes:
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
            for i in range(cfg.repeats):
                for tool, python in tools.items():
                    if runs[tool] and runs[tool][0]["process_s"] > LONG_RUN_S:
                        continue
                    print(f"{n:,} rows: {tool}, repeat {i + 1}/{cfg.repeats} ...", flush=True)
                    html = tmpdir / f"{tool}-{n}-{i}.html"
                    try:
                        runs[tool].append(run_worker(python, tool, frames[n], html, timeout))
                    except RuntimeError as exc:
                        if tool == "watchkeeper":
                            raise
                        print(f"Evidently not measured: {exc}", file=sys.stderr)
            results[n] = {tool: summarise(r) for tool, r in runs.items() if r}
            lines, found = check(n, results[n])
            checks += [f"{n:,} rows:", *lines]
            problems += found
    report(cfg, results)
    print()
    print("columns flagged as drifted:")
    print("\n".join(checks))
    if problems:
        sys.exit("the benchmark is not valid:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
