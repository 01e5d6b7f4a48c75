"""Rows/s of profiling 10M rows x 25 columns of Parquet: watchkeeper's local engine, watchkeeper on Spark in
local mode, and whylogs' Spark integration, on the same files in the same run.

Run: ``.venv/bin/python bench/bench_spark_profile.py`` (10M rows, 3 repeats: about 15 minutes on 2 cores,
most of it whylogs; the first run also writes the data, about 1.3 GB, and creates the whylogs venv). ``--rows
1000000`` or ``--quick`` (1M rows, 1 repeat) for a short run; ``--no-whylogs`` to time watchkeeper alone.
The exit code is 0 whatever the ratios; it is non-zero only when the benchmark itself fails: a worker
crashed, or the Spark profile disagrees with the local one, or whylogs' counts with the data.

The data: bench/bench_profile.py's 25 columns (20 numeric: normal, lognormal, Pareto and Student-t tails, a
float32, int64/int32/int8, an int column with NaN, columns with 2-20% NaN, 1% outliers; 5 strings of 3 to
1,000 levels, one with 2% missing), as 8 Parquet files of rows/8 rows each, every file from its own seed,
in row groups of 250,000 rows. It is written once per size under ``--data-dir`` (default
``/tmp/wk-bench-spark-profile``) and reused while its parameters are unchanged.

What is timed. Every measurement is a fresh subprocess of this file (``--worker``), tools alternating, after
one untimed run of each that fills the OS file cache:

- local: ``watchkeeper.profile.batch.profile_files(dir)`` (pyarrow reads the row groups, chunks of 1M rows
  are profiled and merged; one core), in the main venv.
- spark: ``watchkeeper.spark.session("local[N]")`` (N = ``--cores``, default 2; driver memory
  ``--driver-memory``, default 2g), then an untimed warm-up (the profile of a 1,000-row DataFrame, which
  starts the Python workers and imports watchkeeper in them), then ``watchkeeper.spark.profile_files(dir)``
  (files: each Spark task reads about 1M rows of row groups with pyarrow and profiles them), then
  ``watchkeeper.spark.profile(spark.read.parquet(dir))`` (reader: Spark's Parquet reader, rows handed to the
  Python workers as Arrow batches of 65,536 rows).
- whylogs: in ``bench/.venv-whylogs-spark`` (whylogs 1.6.4 with PySpark 3.5, pinned in
  ``bench/requirements-whylogs-spark.txt``: whylogs needs numpy<2, pandas<3 and pyspark<4), a session with the
  same settings as ``watchkeeper.spark.session`` (Arrow on, 65,536 rows per batch, UTC, the same cores and
  driver memory), the same kind of warm-up, then
  ``whylogs.api.pyspark.experimental.collect_dataset_profile_view(spark.read.parquet(dir))``: ``mapInPandas``
  with ``why.log`` on each batch, then a ``groupBy(column).applyInPandas`` merge.

Figures: ``start s`` is the session's creation and ``warm-up s`` the warm-up job; ``call s`` is the profiling
call alone (``time.perf_counter`` around it, which for Spark includes planning the job, reading, profiling in
the workers, collecting and merging on the driver), and rows/s is rows / call s; ``rows/s with start-up``
is rows / (start s + warm-up s + call s), what a one-off ``watchkeeper profile --engine spark`` pays.
``process s`` is the whole worker subprocess. Each is the median over the repeats. Ratios: local / spark
(what Spark's cores bring), and whylogs / watchkeeper on the same reader (Spark's Parquet reader).

Correctness, so that the comparison is honest: the Spark profiles (files and reader) against the local one
(rows, and for every column the counts, min, max, the frequent items of the string columns and their distinct
counts exactly; means to 1e-9 relative), and whylogs' row, null and NaN counts and mean of one column
against the local profile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from harness import JSON_MARK, PeakRSS, anchor_python, run_json_worker

BENCH_DIR = Path(__file__).resolve().parent
WHYLOGS_VENV = BENCH_DIR / ".venv-whylogs-spark"
WHYLOGS_REQUIREMENTS = BENCH_DIR / "requirements-whylogs-spark.txt"
FILES = 8
ROW_GROUP = 250_000
DATA_VERSION = 1
BATCH_ROWS = 65_536  # watchkeeper.spark.BATCH_ROWS: rows per Arrow batch handed to the Python workers
WARMUP_ROWS = 1_000
WARMUP_FILES_ROWS = 100_000
CHECKED_NUMERIC = ("num0", "num1", "num3", "num7", "num12", "num16", "num17")
WHYLOGS_CHECKED = "num1"
MEAN_RTOL = 1e-9


# --- the data ----------------------------------------------------------------------------------------------


def write_data(rows: int, root: Path) -> Path:
    """``FILES`` Parquet files of bench_profile's 25 columns, one seed each, cached under ``root``."""
    directory = root / f"rows-{rows}"
    params = {"rows": rows, "files": FILES, "row_group": ROW_GROUP, "version": DATA_VERSION}
    marker = directory / "_params.json"  # Spark skips files whose names start with "_"
    if marker.exists() and json.loads(marker.read_text()) == params:
        return directory
    import bench_profile
    import pyarrow.parquet as pq

    directory.mkdir(parents=True, exist_ok=True)
    for old in directory.glob("*.parquet"):
        old.unlink()
    base_seed = bench_profile.SEED
    try:
        for k in range(FILES):
            n = rows // FILES + (1 if k < rows % FILES else 0)
            print(f"  writing file {k + 1}/{FILES} ({n:,} rows) ...", flush=True)
            bench_profile.SEED = base_seed + 1000 * (k + 1)  # make_table's columns draw from [SEED, column]
            pq.write_table(
                bench_profile.make_table(n), directory / f"part-{k:02d}.parquet", row_group_size=ROW_GROUP
            )
    finally:
        bench_profile.SEED = base_seed
    marker.write_text(json.dumps(params))
    return directory


# --- the workers -------------------------------------------------------------------------------------------


def spark_settings(cores: int, driver_memory: str) -> tuple[str, dict[str, str]]:
    """The master and the settings of ``watchkeeper.spark.session``, for the whylogs venv (no watchkeeper)."""
    return f"local[{cores}]", {
        "spark.app.name": "bench",
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(BATCH_ROWS),
        "spark.driver.memory": driver_memory,
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }


def worker_local(data: Path, out: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    import watchkeeper
    from watchkeeper.profile.batch import profile_files

    t1 = time.perf_counter()
    cpu0 = time.process_time()
    with PeakRSS() as mem:
        t2 = time.perf_counter()
        result = profile_files(data)
        t3 = time.perf_counter()
    cpu = time.process_time() - cpu0
    out.write_bytes(result.whole.to_bytes())
    return {
        "version": watchkeeper.__version__,
        "rows": result.rows,
        "import_s": t1 - t0,
        "call_s": t3 - t2,
        "cpu_s": cpu,
        "rss_peak": mem.peak,
        "memory_method": mem.method,
    }


def worker_spark(data: Path, out: Path, cores: int, driver_memory: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import pyspark

    import watchkeeper
    from watchkeeper import spark as wks

    t1 = time.perf_counter()
    spark = wks.session(f"local[{cores}]", driver_memory=driver_memory)
    spark.sparkContext.setLogLevel("ERROR")
    t2 = time.perf_counter()
    warm = wks.profile(spark.range(WARMUP_ROWS).selectExpr("id", "cast(id as string) as s"))
    t3 = time.perf_counter()
    files = wks.profile_files(data, spark=spark)
    t4 = time.perf_counter()
    df = spark.read.parquet(str(data))
    reader = wks.profile(df)
    t5 = time.perf_counter()
    out.write_bytes(files.whole.to_bytes())
    out.with_suffix(".reader").write_bytes(reader.to_bytes())
    partitions = df.rdd.getNumPartitions()
    spark.stop()
    return {
        "version": f"{watchkeeper.__version__}, PySpark {pyspark.__version__}",
        "rows": files.rows,
        "warmup_rows": warm.rows,
        "import_s": t1 - t0,
        "start_s": t2 - t1,
        "warmup_s": t3 - t2,
        "files_s": t4 - t3,
        "reader_s": t5 - t4,
        "reader_partitions": partitions,
    }


def worker_whylogs(data: Path, out: Path, cores: int, driver_memory: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    import pyspark
    import whylogs
    from pyspark.sql import SparkSession
    from whylogs.api.pyspark.experimental import collect_dataset_profile_view

    t1 = time.perf_counter()
    master, settings = spark_settings(cores, driver_memory)
    os.environ["PYSPARK_PYTHON"] = sys.executable
    builder = SparkSession.builder.master(master)
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    t2 = time.perf_counter()
    collect_dataset_profile_view(spark.range(WARMUP_ROWS).selectExpr("id", "cast(id as string) as s"))
    t3 = time.perf_counter()
    df = spark.read.parquet(str(data))
    view = collect_dataset_profile_view(df)
    t4 = time.perf_counter()
    out.write_bytes(view.serialize())
    summary = view.get_column(WHYLOGS_CHECKED).to_summary_dict()
    keys = ("counts/n", "counts/null", "counts/nan", "distribution/n", "distribution/mean")
    checked = {k: float(summary[k]) for k in keys}
    spark.stop()
    return {
        "version": f"whylogs {whylogs.__version__}, PySpark {pyspark.__version__}",
        "rows": int(checked["counts/n"]),
        "import_s": t1 - t0,
        "start_s": t2 - t1,
        "warmup_s": t3 - t2,
        "reader_s": t4 - t3,
        "checked": checked,
    }


# --- running them ------------------------------------------------------------------------------------------


def whylogs_python() -> str:
    env = {**os.environ, "WHYLOGS_NO_ANALYTICS": "1"}
    probe = "import whylogs.api.pyspark.experimental as x; x.collect_dataset_profile_view"
    return anchor_python(WHYLOGS_VENV, WHYLOGS_REQUIREMENTS, probe, env)


def run_worker(python: str, tool: str, cfg: argparse.Namespace, data: Path, out: Path) -> dict[str, Any]:
    cmd = [python, str(Path(__file__).resolve()), "--worker", tool, "--data", str(data), "--out", str(out)]
    cmd += ["--cores", str(cfg.cores), "--driver-memory", cfg.driver_memory]
    env = {**os.environ, "WHYLOGS_NO_ANALYTICS": "1", "PYTHONWARNINGS": "ignore::FutureWarning"}
    result, wall = run_json_worker(cmd, tool=tool, cwd=BENCH_DIR, env=env, timeout=cfg.timeout)
    result["process_s"] = wall
    return result


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


# --- correctness -------------------------------------------------------------------------------------------


def exact_parts(p: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"rows": p.rows, "columns": list(p.columns)}
    for name, col in p.columns.items():
        part = {"counts": col.counts.to_bytes(), "min": col.min, "max": col.max}
        if col.numeric is not None:
            part["n"] = col.numeric.moments.n
        if col.strings is not None:
            part["distinct"] = col.strings.distinct.estimate
            if col.strings.frequent.is_exact:
                part["frequent"] = {it.value: it.count for it in col.strings.frequent.top(10**6)}
        out[name] = part
    return out


def check(out_dir: Path, results: dict[str, list[dict[str, Any]]]) -> tuple[list[str], list[str]]:
    from watchkeeper.profile import Profile

    lines, problems = [], []
    ref = Profile.from_bytes((out_dir / "local-0.bin").read_bytes())
    ref_parts = exact_parts(ref)
    if "spark" in results:
        for kind, path in (("files", out_dir / "spark-0.bin"), ("reader", out_dir / "spark-0.reader")):
            got = Profile.from_bytes(path.read_bytes())
            diff = [k for k, v in exact_parts(got).items() if ref_parts.get(k) != v]
            worst = max(
                abs(got[c].mean - ref[c].mean) / abs(ref[c].mean) for c in CHECKED_NUMERIC if ref[c].mean
            )
            if diff:
                problems.append(f"spark {kind}: exact parts differ from the local profile in {diff}")
            if worst > MEAN_RTOL:
                problems.append(f"spark {kind}: a mean differs from the local one by {worst:.1e} relative")
            lines.append(
                f"  spark {kind} vs local: {got.rows:,} rows; exact parts of {len(got)} columns "
                f"{'equal' if not diff else 'DIFFER: ' + ', '.join(diff)}; means within {worst:.1e}"
            )
    if "whylogs" in results:
        c = results["whylogs"][0]["checked"]
        col = ref[WHYLOGS_CHECKED]
        nan = col.counts.nan + col.missing
        # whylogs counts NaN as null too
        if c["counts/n"] != ref.rows or c["counts/nan"] != nan or c["distribution/n"] != ref.rows - nan:
            problems.append(f"whylogs {WHYLOGS_CHECKED}: expected {ref.rows} rows, {nan} NaN; got {c}")
        if abs(c["distribution/mean"] - col.mean) > 1e-6 * abs(col.mean):
            problems.append(
                f"whylogs {WHYLOGS_CHECKED}: mean {c['distribution/mean']}, watchkeeper {col.mean}"
            )
        lines.append(
            f"  whylogs {WHYLOGS_CHECKED}: counts/n {c['counts/n']:,.0f} (rows {ref.rows:,}), counts/nan "
            f"{c['counts/nan']:,.0f} (NaN {nan:,}), mean {c['distribution/mean']:.6f} "
            f"(watchkeeper {col.mean:.6f})"
        )
    return lines, problems


# --- report ------------------------------------------------------------------------------------------------


def report(cfg: argparse.Namespace, rows: int, results: dict[str, list[dict[str, Any]]]) -> None:
    print()
    print(f"{rows:,} rows x 25 columns in {FILES} Parquet files; {cfg.repeats} repeat(s), medians")
    print(f"{os.cpu_count()} CPUs; Spark local[{cfg.cores}], driver memory {cfg.driver_memory}")
    for tool, runs in results.items():
        print(f"  {tool}: {runs[0]['version']}")
    lines: list[tuple[str, str, str]] = []  # label, tool, key of the call's time
    if "local" in results:
        lines.append(("watchkeeper local engine: profile_files", "local", "call_s"))
    if "spark" in results:
        lines.append(("watchkeeper.spark.profile_files", "spark", "files_s"))
        lines.append(("watchkeeper.spark.profile(spark.read)", "spark", "reader_s"))
    if "whylogs" in results:
        lines.append(("whylogs collect_dataset_profile_view(read)", "whylogs", "reader_s"))
    print(
        f"{'what':<44}{'call s':>8}{'rows/s':>9}{'start s':>9}{'warm-up s':>10}{'with start-up':>15}"
        f"{'process s':>11}"
    )
    for label, tool, key in lines:
        call = median(results[tool], key)
        start = median(results[tool], "start_s") if tool != "local" else 0.0
        warm = median(results[tool], "warmup_s") if tool != "local" else 0.0
        whole = rows / (call + start + warm) / 1e6
        process = median(results[tool], "process_s")
        print(
            f"{label:<44}{call:>8.2f}{rows / call / 1e6:>8.2f}M{start:>9.2f}{warm:>10.2f}{whole:>14.2f}M"
            f"{process:>11.1f}"
        )
    print("rows/s = rows / call s; with start-up = rows / (start s + warm-up s + call s)")
    if "local" in results:
        r = results["local"][0]
        cpu = median(results["local"], "cpu_s")
        print(f"local engine: cpu {cpu:.2f} s; peak RSS {r['rss_peak'] / 1e6:,.0f} MB ({r['memory_method']})")
    if "spark" in results:
        print(f"Spark's Parquet reader made {results['spark'][0]['reader_partitions']} partitions")
    print()
    if "local" in results and "spark" in results:
        loc, sp = median(results["local"], "call_s"), median(results["spark"], "files_s")
        whole = median(results["spark"], "start_s") + median(results["spark"], "warmup_s") + sp
        print(f"local / spark profile_files: {loc / sp:.2f}x ({cfg.cores} Spark cores, the local engine 1)")
        print(f"local / spark profile_files, session start-up and warm-up included: {loc / whole:.2f}x")
    if "whylogs" in results and "spark" in results:
        wl = median(results["whylogs"], "reader_s")
        wk, files = median(results["spark"], "reader_s"), median(results["spark"], "files_s")
        print(f"whylogs / watchkeeper on Spark, the same reader (spark.read.parquet): {wl / wk:.1f}x")
        print(f"whylogs / watchkeeper.spark.profile_files: {wl / files:.1f}x")
    for tool, runs in results.items():
        keys = [k for k in ("call_s", "files_s", "reader_s") if k in runs[0]]
        print(f"  {tool} each repeat: " + "; ".join(f"{k} {[round(r[k], 2) for r in runs]}" for k in keys))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, help="rows in all (default 10,000,000; --quick 1,000,000)")
    parser.add_argument("--quick", action="store_true", help="1M rows, 1 repeat")
    parser.add_argument("--repeats", type=int, help="subprocess runs per tool (default 3; --quick 1)")
    parser.add_argument("--no-whylogs", action="store_true", help="time watchkeeper only")
    parser.add_argument("--cores", type=int, default=2, help="Spark local[N] (default 2)")
    parser.add_argument("--driver-memory", default="2g", help="spark.driver.memory (default 2g)")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/wk-bench-spark-profile"))
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per worker")
    parser.add_argument("--worker", choices=["local", "spark", "whylogs"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    cfg = parser.parse_args(argv)

    if cfg.worker:  # we are the subprocess
        if cfg.worker == "local":
            result = worker_local(cfg.data, cfg.out)
        elif cfg.worker == "spark":
            result = worker_spark(cfg.data, cfg.out, cfg.cores, cfg.driver_memory)
        else:
            result = worker_whylogs(cfg.data, cfg.out, cfg.cores, cfg.driver_memory)
        print(JSON_MARK + json.dumps(result), flush=True)
        return

    rows = cfg.rows or (1_000_000 if cfg.quick else 10_000_000)
    cfg.repeats = cfg.repeats or (1 if cfg.quick else 3)
    tools = {"local": sys.executable, "spark": sys.executable}
    if not cfg.no_whylogs:
        try:
            tools["whylogs"] = whylogs_python()
        except (RuntimeError, OSError) as exc:
            print(f"whylogs not measured: it did not install: {exc}", file=sys.stderr)
    print(f"data: {rows:,} rows x 25 columns in {FILES} Parquet files under {cfg.data_dir} ...", flush=True)
    data = write_data(rows, cfg.data_dir)
    out_dir = cfg.data_dir / "out"
    out_dir.mkdir(exist_ok=True)

    # untimed: the local engine reads every file (the OS file cache), Spark and whylogs a small copy (their
    # jars and venvs)
    small = write_data(WARMUP_FILES_ROWS, cfg.data_dir) if rows > WARMUP_FILES_ROWS else data
    print("warm-up (untimed) ...", flush=True)
    for tool, python in list(tools.items()):
        try:
            run_worker(python, tool, cfg, data if tool == "local" else small, out_dir / f"warmup-{tool}.bin")
        except RuntimeError as exc:
            if tool != "whylogs":
                raise
            print(f"whylogs not measured: it did not run: {exc}", file=sys.stderr)
            del tools[tool]
    results: dict[str, list[dict[str, Any]]] = {tool: [] for tool in tools}
    for i in range(cfg.repeats):
        for tool, python in tools.items():
            print(f"{tool}, repeat {i + 1}/{cfg.repeats} ...", flush=True)
            results[tool].append(run_worker(python, tool, cfg, data, out_dir / f"{tool}-{i}.bin"))
    report(cfg, rows, results)
    lines, problems = check(out_dir, results)
    print()
    print("checks:")
    print("\n".join(lines))
    if problems:
        sys.exit("the benchmark is not valid, the profiles disagree:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    main()
