"""``watchkeeper monitor-batch``: logged predictions read from files go through the monitors and alert rules
of live traffic (the logic is :mod:`watchkeeper.monitor.batch`).

Kept apart from ``cli.py`` (which registers it) so that each file can be read in one sitting."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from watchkeeper.cli import UriOption, _console, _database_uri, _open, app
from watchkeeper.cli_alerts import RulesOption, SettingsOption, _parse_duration, load_settings

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from watchkeeper.monitor.batch import BatchMonitorResult

STAGES = {
    "hashing": "hashing files (bytes)",
    "profiling": "profiling rows",
    "predictions": "writing predictions",
    "monitoring": "monitoring windows",
    "alerting": "evaluating rules",
}
OPTION_OF = {
    "path": "PATH",
    "time": "--by-time",
    "window": "--window",
    "outputs": "--outputs",
    "id_column": "--id-column",
    "label_column": "--label-column",
    "columns": "--columns",
    "rules": "--rules",
    "eval_interval": "--eval-interval",
    "model": "--model",
    "version": "--version",
    "project": "--project",
}


def _names(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise typer.BadParameter(
            f"expected column names separated by commas, got {text!r}", param_hint=option
        )
    return names


class _Bars:
    """One rich progress bar per stage, on stderr, created when the stage first reports."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        task = self.tasks.get(stage)
        if task is None:
            task = self.tasks[stage] = self.progress.add_task(STAGES.get(stage, stage), total=total)
        self.progress.update(task, completed=done, total=total)


@app.command("monitor-batch")
def monitor_batch_command(
    path: Annotated[Path, typer.Argument(help="A Parquet/CSV file or a directory of them (a partition).")],
    model: Annotated[str, typer.Option("--model", help="The model's name.")],
    version: Annotated[str, typer.Option("--version", help="The model's version.")],
    by_time: Annotated[str, typer.Option("--by-time", help="The column of each prediction's time.")],
    window: Annotated[str, typer.Option("--window", help="Window length on the UTC grid, e.g. 1h.")] = "1h",
    project: Annotated[str, typer.Option("--project", "-p", help="The deployment's project.")] = "default",
    uri: UriOption = None,
    rules: RulesOption = None,
    settings: SettingsOption = None,
    outputs: Annotated[
        str | None,
        typer.Option(
            "--outputs",
            help="The model's output columns, comma-separated (default: prediction, score, proba, ... "
            "by name).",
        ),
    ] = None,
    id_column: Annotated[
        str | None, typer.Option("--id-column", help="Prediction ids: predictions are stored to join labels.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option("--label-column", help="Ground truth (needs --id-column): performance.")
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Only these input columns are profiled, comma-separated.")
    ] = None,
    partition: Annotated[
        str | None,
        typer.Option("--partition", help="The partition's name, when not its path: a re-run replaces it."),
    ] = None,
    eval_interval: Annotated[
        str, typer.Option("--eval-interval", help="Step of the rules' evaluation clock, e.g. 1m.")
    ] = "1m",
    force: Annotated[
        bool, typer.Option("--force", help="Run monitors and rules again on an already monitored partition.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Profile logged predictions from files by window of their time, and run them through the monitors
    and the alert rules of live traffic, as deployment MODEL@VERSION: window profiles, predictions and
    labels are stored as one run, signals written, rules evaluated at the windows' times (notifications go
    out as live). Running it again on the same content does nothing; on changed content it replaces what
    the partition wrote before."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from watchkeeper.monitor.batch import BatchInputError, monitor_batch

    if label_column is not None and id_column is None:
        raise typer.BadParameter(
            "labels are joined to predictions by id: give --id-column too", param_hint="--label-column"
        )
    seconds = _parse_duration(window, "--window")
    if seconds <= 0:
        raise typer.BadParameter(f"expected a duration above 0, got {window!r}", param_hint="--window")
    step = _parse_duration(eval_interval, "--eval-interval")
    if step <= 0:
        raise typer.BadParameter(
            f"expected a duration above 0, got {eval_interval!r}", param_hint="--eval-interval"
        )
    out_names = _names(outputs, "--outputs")
    input_names = _names(columns, "--columns")
    monitor_settings = load_settings(settings)
    store = _open(_database_uri(uri, "monitor-batch"))
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            result = monitor_batch(
                store,
                path,
                model=model,
                version=version,
                time_column=by_time,
                window=seconds,
                project=project,
                outputs=out_names,
                id_column=id_column,
                label_column=label_column,
                columns=input_names,
                partition=partition,
                rule_files=rules or [],
                settings=monitor_settings,
                eval_interval=step,
                force=force,
                progress=_Bars(progress),
            )
    except BatchInputError as exc:
        raise typer.BadParameter(str(exc), param_hint=OPTION_OF.get(exc.field, exc.field)) from None
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(result.to_dict(), sort_keys=True))
    else:
        _print_summary(result)
    raise typer.Exit(0 if result.ok else 1)


def _utc(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _print_summary(r: BatchMonitorResult) -> None:
    console = _console()
    if r.status == "already monitored":
        console.print(
            f"{escape(r.subject)}: already monitored by run {r.run_id} ({r.windows} windows, {r.rows} rows): "
            "nothing written, nothing notified (--force runs the monitors and rules again)"
        )
        return
    first = min(r.window_rows, default=None)
    last = max(r.window_rows, default=None)
    table = RichTable(title=f"monitor-batch {escape(r.subject)}, run {r.run_id}", show_header=False)
    table.add_column("")
    table.add_column("", justify="right")
    span = f"{_utc(first)} .. {_utc(last)}" if first is not None and last is not None else "-"
    for name, value in (
        ("files", r.files),
        ("windows", f"{r.windows} (starting {span})"),
        ("rows", r.rows),
        ("rows without a time (left out)", r.untimed),
        ("predictions stored", r.predictions),
        ("labels stored", r.labels),
        ("signal points written", r.points),
        ("rule evaluations", r.evaluations),
        ("alerts fired", r.alerts_fired),
        ("notifications", r.notifications),
        ("earlier runs replaced", ", ".join(r.replaced) or "-"),
        ("errors", r.errors + len(r.rule_errors)),
    ):
        table.add_row(name, str(value))
    console.print(table)
    for name, error in sorted(r.rule_errors.items()):
        console.print(f"[red]rule {escape(name)}:[/red] {escape(error)}")
    if r.errors:
        console.print(f"[red]{r.errors} monitor error(s): see the log[/red]")
