"""``watchkeeper profile PATH``: profile a directory of Parquet or CSV files, on this machine or on Spark, and
store the result as a model version's reference or as window profiles of a deployment.

Kept apart from ``cli.py`` (which registers it) so that each file can be read in one sitting.

What is stored, and how a re-run behaves:

* ``--model M --version V`` (no ``--by-time``): one profile of every row, stored as the reference
  ``--reference`` (default ``train``) of that version; profiling again replaces it, as ``log_reference`` does.
* ``--by-time ts --window 1h``: one profile per window of column ``ts`` (UTC grid, see
  :mod:`watchkeeper.profile.batch`), stored as window profiles of ``model:M@V`` in one batch whose id is
  derived from the windows' contents, so profiling the same files again is acknowledged and stores nothing.
  The monitors (a server's, or ``watchkeeper monitor``) turn them into signals like live traffic's windows;
  ``watchkeeper monitor-batch`` does that at once.
* ``--output FILE``: the profile's bytes (``Profile.to_bytes()``) written to a file as well (whole profiles).

``--engine spark`` computes the same profiles with :mod:`watchkeeper.spark` (the ``spark`` extra).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from watchkeeper.cli import UriOption, _console, _open, app, fmt_number

ENGINES = ("local", "spark")


def _split(text: str | None) -> list[str]:
    return [p.strip() for p in (text or "").split(",") if p.strip()]


def _parse_schema(text: str | None) -> dict[str, str]:
    from watchkeeper.profile import KINDS

    out: dict[str, str] = {}
    for part in _split(text):
        name, eq, kind = part.partition("=")
        if not eq or not name.strip() or kind.strip() not in KINDS:
            raise typer.BadParameter(
                f"expected column=kind pairs with kinds {', '.join(KINDS)}, got {part!r}",
                param_hint="--schema",
            )
        out[name.strip()] = kind.strip()
    return out


def _rows_hint(path: Path) -> int | None:
    """Rows in the Parquet files at ``path`` from their footers (None when CSV files are among them)."""
    import pyarrow.parquet as pq

    from watchkeeper.profile.files import FORMATS, data_files

    total = 0
    for f in data_files(path):
        if FORMATS[f.suffix.lower()] != "parquet":
            return None
        total += pq.ParquetFile(f).metadata.num_rows
    return total


def _with_roles(p: Any, outputs: list[str]) -> Any:
    """``p`` with the ``outputs`` it holds marked as the model's outputs (a window may lack a column that
    other windows have)."""
    from watchkeeper.profile import Profile

    if not outputs:
        return p
    roles = {c: "output" for c in outputs if c in p.columns}
    return Profile(p.columns, rows=p.rows, traffic=p.traffic, roles=roles)


def windows_batch(
    project: str,
    subject: str,
    result: Any,
    outputs: list[str],
    source: str,
    key: str,
    run_job: str = "profile",
) -> Any:
    """One store batch of ``result``'s window profiles under ``subject``, in a run of its own; the ids of
    both are derived from ``key`` (the input's identity: see ``watchkeeper.profile.files.digest_files``),
    so the same input stored again is acknowledged and applied once."""
    from watchkeeper.store import Batch, ProfileLog, RunStart, RunUpdate

    logs = [(start, _with_roles(p, outputs)) for start, p in result.windows.items()]
    run_id = f"{run_job}-{key[:24]}"
    now = time.time()
    batch = Batch(id=f"{run_job}-{key[:48]}")
    model, _, version = subject[len("model:") :].rpartition("@")
    batch.runs.append(
        RunStart(
            id=run_id,
            project=project,
            name=f"{run_job} {Path(source).name}",
            job_type=run_job,
            created_at=now,
            config={"path": source, "window_seconds": result.window, "windows": len(logs)},
            model=model or None,
            version=version or None,
        )
    )
    for start, p in logs:
        batch.profiles.append(
            ProfileLog(
                project,
                subject,
                "window",
                float(start),
                float(start) + float(result.window),
                p.rows,
                p.to_bytes(),
                p.format_version,
                run_id=run_id,
            )
        )
    batch.run_updates.append(
        RunUpdate(
            id=run_id,
            status="finished",
            ended_at=now,
            summary={"rows": result.rows, "untimed": result.untimed},
        )
    )
    return batch


@app.command("profile")
def profile_command(
    path: Annotated[
        Path, typer.Argument(help="A Parquet or CSV file, or a directory of them (read recursively).")
    ],
    engine: Annotated[str, typer.Option(help="Where to compute: local (this machine) or spark.")] = "local",
    project: Annotated[str, typer.Option("--project", "-p", help="The project to store into.")] = "default",
    model: Annotated[str | None, typer.Option(help="The model whose version this profiles.")] = None,
    version: Annotated[str | None, typer.Option(help="The model version.")] = None,
    reference: Annotated[str, typer.Option(help="The reference's name (whole profiles).")] = "train",
    by_time: Annotated[
        str | None, typer.Option("--by-time", help="Profile by window of this time column.")
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="The windows' length with --by-time: 5m, 1h, 1d.")
    ] = None,
    columns: Annotated[str | None, typer.Option(help="Only these columns, comma-separated.")] = None,
    schema: Annotated[
        str | None, typer.Option(help="Kinds of named columns: zip=categorical,ts=datetime.")
    ] = None,
    outputs: Annotated[
        str | None, typer.Option(help="Columns that are the model's outputs (the rest are inputs).")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write the (whole) profile's bytes here.")
    ] = None,
    uri: UriOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Profile files in chunks (or on Spark) and store the profile as a reference, or as windows by time."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from watchkeeper.alerting.rules import parse_duration
    from watchkeeper.profile.files import digest_files
    from watchkeeper.store.profiles import model_subject

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if engine not in ENGINES:
        raise typer.BadParameter(
            f"expected one of {', '.join(ENGINES)}, got {engine!r}", param_hint="--engine"
        )
    if (by_time is None) != (window is None):
        raise typer.BadParameter("give both --by-time and --window (profiles by window) or neither")
    seconds = None
    if window is not None:
        try:
            seconds = parse_duration(window)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--window") from None
        if seconds <= 0:
            raise typer.BadParameter(f"expected a positive duration, got {window!r}", param_hint="--window")
    if (model is None) != (version is None):
        raise typer.BadParameter("give both --model and --version to store the profile, or neither")
    if by_time is not None and model is None:
        raise typer.BadParameter(
            "--by-time stores window profiles of a deployment: give --model and --version"
        )
    if by_time is not None and output is not None:
        raise typer.BadParameter(
            "--output writes a whole profile; leave out --by-time", param_hint="--output"
        )
    kinds = _parse_schema(schema)
    wanted = _split(columns) or None
    out_cols = _split(outputs)

    started = time.perf_counter()
    try:
        if engine == "local":
            from watchkeeper.profile.batch import profile_files

            total = _rows_hint(path)
            with Progress(
                SpinnerColumn(),
                TextColumn("profiling {task.description}"),
                BarColumn(),
                TextColumn("{task.completed:,} rows"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            ) as bar:
                task = bar.add_task(escape(path.name), total=total)
                result = profile_files(
                    path,
                    time=by_time,
                    window=seconds,
                    columns=wanted,
                    schema=kinds,
                    on_chunk=lambda n: bar.advance(task, n),
                )
        else:
            try:
                from watchkeeper import spark
            except ImportError as exc:  # pragma: no cover - the module imports pyspark lazily
                raise ValueError(f"--engine spark: {exc}") from exc
            with err.status(f"profiling {escape(path.name)} on Spark"):
                result = spark.profile_files(path, time=by_time, window=seconds, columns=wanted, schema=kinds)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    elapsed = time.perf_counter() - started

    summary: dict[str, Any] = {
        "path": str(path),
        "engine": engine,
        "rows": result.rows,
        "seconds": round(elapsed, 3),
        "rows_per_second": round(result.rows / elapsed) if elapsed > 0 else None,
    }
    parts = [result.whole] if result.whole is not None else list(result.windows.values())
    seen = sorted(set().union(*(p.columns for p in parts)))
    missing = [c for c in out_cols if c not in seen]
    if missing:
        err.print(
            f"[red]error:[/red] --outputs: no column(s) {missing} in the data (columns: {', '.join(seen)})"
        )
        raise typer.Exit(2)
    if result.whole is not None:
        whole = _with_roles(result.whole, out_cols)
        summary["columns"] = len(whole.columns)
        if output is not None:
            output.write_bytes(whole.to_bytes())
            summary["output"] = str(output)

    if model is not None and version is not None:
        from watchkeeper.store import Batch, ProfileLog

        subject = model_subject(model, version)
        store = _open(uri)
        try:
            if result.whole is not None:
                store.write(
                    Batch(
                        profiles=[
                            ProfileLog(
                                project,
                                subject,
                                "reference",
                                0.0,
                                0.0,
                                whole.rows,
                                whole.to_bytes(),
                                whole.format_version,
                                reference=(model, version, reference),
                            )
                        ]
                    )
                )
                summary["stored"] = f"reference {reference!r} of {model} {version} in project {project!r}"
            else:
                options = json.dumps([by_time, seconds, wanted, kinds, out_cols, engine != "local"])
                key = hashlib.sha256(f"{project}\0{subject}\0{options}\0{digest_files(path)}".encode())
                batch = windows_batch(project, subject, result, out_cols, str(path), key.hexdigest())
                applied = store.write(batch).applied
                summary.update(
                    windows=len(result.windows),
                    window_seconds=result.window,
                    untimed_rows=result.untimed,
                    stored=(
                        f"{len(result.windows)} window profile(s) of {subject} in project {project!r}"
                        if applied
                        else "nothing: these windows were stored before (same contents)"
                    ),
                )
        finally:
            store.close()
    elif result.whole is None:
        summary.update(windows=len(result.windows), window_seconds=result.window, untimed_rows=result.untimed)

    if as_json:
        typer.echo(json.dumps(summary))
        return
    table = RichTable(show_header=False, box=None)
    for k, v in summary.items():
        table.add_row(k.replace("_", " "), escape(fmt_number(v) if isinstance(v, int | float) else str(v)))
    _console().print(table)
    if result.whole is not None and model is None:
        _print_columns(result.whole)


SUMMARY_KEYS = ("kind", "count", "missing", "mean", "std", "min", "p50", "max", "distinct", "top")


def _print_columns(p: Any) -> None:
    from watchkeeper.cli import fmt_time

    table = RichTable("column", *SUMMARY_KEYS)
    for row in p.summary_rows():
        cells = []
        for k in SUMMARY_KEYS:
            v = row.get(k)
            if v is None or v != v:
                cells.append("")
            elif row["kind"] == "datetime" and k in ("mean", "min", "p50", "max"):
                cells.append(fmt_time(v))
            elif row["kind"] == "datetime" and k == "std":
                cells.append(f"{fmt_number(v)} s")
            else:
                cells.append(escape(fmt_number(v) if isinstance(v, int | float) else str(v)))
        table.add_row(escape(str(row["column"])), *cells)
    _console().print(table)
