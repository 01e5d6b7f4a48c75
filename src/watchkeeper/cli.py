"""``watchkeeper``: the command line. Reads go through the store's queries; every command takes ``--uri``
(default: ``WATCHKEEPER_URI`` or the embedded SQLite file under ``./.watchkeeper``).

The reading commands (``runs list``, ``runs show``, ``artifacts list``, ``traffic``) also take a server's URL
(``http://host:8080``) and then read through its query API with :class:`watchkeeper.client.Client` (token:
``--token`` or ``WATCHKEEPER_TOKEN``), printing the same rows; the commands that manage a database
(``db``, ``token``, ``server``) need a database URI and say so."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from watchkeeper.errors import StoreError, WatchkeeperError
from watchkeeper.store import Store, default_uri, migrate
from watchkeeper.store.engine import create_engine

if TYPE_CHECKING:
    from watchkeeper.client import Client
    from watchkeeper.store import ArtifactVersion, RunInfo
    from watchkeeper.store.profiles import ReferenceInfo
    from watchkeeper.store.samples import TableRef
    from watchkeeper.store.signals import SeriesSummary

app = typer.Typer(
    help="watchkeeper: self-hosted ML observability.", no_args_is_help=True, add_completion=False
)
runs_app = typer.Typer(help="Tracked runs.", no_args_is_help=True)
db_app = typer.Typer(help="The store's database schema.", no_args_is_help=True)
artifacts_app = typer.Typer(help="Artifacts logged by runs.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(db_app, name="db")
app.add_typer(artifacts_app, name="artifacts")

UriOption = Annotated[
    str | None, typer.Option("--uri", help="Store URI (default: WATCHKEEPER_URI or ./.watchkeeper).")
]
ProjectOption = Annotated[str | None, typer.Option("--project", "-p", help="Only this project.")]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token", help="Bearer token when --uri is a server's http(s):// URL (default: WATCHKEEPER_TOKEN)."
    ),
]

STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "crashed": "bold red"}


def _console() -> Console:
    return Console(highlight=False, soft_wrap=False, width=max(Console().width, 120))


def _open(uri: str | None) -> Store:
    try:
        return Store(uri or default_uri())
    except WatchkeeperError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(1) from exc


_TOKEN_HINT = "--token or WATCHKEEPER_TOKEN"


def _is_server(uri: str) -> bool:
    return uri.split(":", 1)[0].lower() in ("http", "https")


@contextlib.contextmanager
def _reader(uri: str | None, token: str | None) -> Iterator[Store | Client]:
    """The store of a database URI (as :func:`_open`), or a client of the server at an http(s):// URI whose
    errors (unreachable, token refused) are printed as ``error: ...`` with exit code 1."""
    target = uri or default_uri()
    if not _is_server(target):
        yield _open(uri)
        return
    from watchkeeper.client import Client

    err = Console(stderr=True, highlight=False, soft_wrap=True)  # a URL in the message stays whole
    try:
        client = Client(target, token or os.environ.get("WATCHKEEPER_TOKEN") or None, token_hint=_TOKEN_HINT)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from exc
    with client:
        try:
            yield client
        except StoreError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")  # the server's words are not markup
            raise typer.Exit(1) from exc


def _database_uri(uri: str | None, command: str) -> str:
    """``uri`` or the default, which must be a database: the command works on the store itself."""
    target = uri or default_uri()
    if _is_server(target):
        source = "--uri" if uri else "WATCHKEEPER_URI"
        Console(stderr=True, highlight=False, soft_wrap=True).print(
            f"error: watchkeeper {command} works on the database itself and needs a database URI "
            f"(sqlite:///... or postgresql+psycopg://...), but {source} is the server URL {target}: run it "
            "with --uri set to the database the server uses",
            markup=False,
        )
        raise typer.Exit(2)
    return target


def fmt_number(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return f"{v:.6g}"
    return str(v)


def fmt_value(v: Any) -> str:
    if isinstance(v, dict) and v.get("_type") == "table":
        return f"table ({v['rows']} rows, step {v['step']})"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str)
    return fmt_number(v)


def fmt_time(t: float | None) -> str:
    if t is None:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


@runs_app.command("list")
def runs_list(
    uri: UriOption = None,
    project: ProjectOption = None,
    status: Annotated[str | None, typer.Option(help="running, finished, failed or crashed.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many runs, newest first.")] = 50,
    token: TokenOption = None,
) -> None:
    """List runs, newest first."""
    with _reader(uri, token) as source:
        try:
            if isinstance(source, Store):
                source.runs.reap()
                runs = source.runs.list(project, status=status, limit=limit)
            else:
                runs = source.runs(project, status=status, limit=limit)
        except ValueError as exc:
            hint = "--limit" if str(exc).startswith("limit") else "--status"
            raise typer.BadParameter(str(exc), param_hint=hint) from exc
    table = RichTable(title=f"runs ({len(runs)})", title_justify="left")
    for col in ("id", "project", "name", "job type", "model", "status", "created", "duration", "steps"):
        table.add_column(col, no_wrap=col in ("id", "created"))
    for r in runs:
        model = f"{r.model}@{r.version}" if r.model and r.version else (r.model or "")
        style = STATUS_STYLE.get(r.status, "")
        table.add_row(
            r.id,
            r.project,
            r.name,
            r.job_type or "",
            model,
            f"[{style}]{r.status}[/{style}]" if style else r.status,
            fmt_time(r.created_at),
            fmt_duration(r.duration),
            "" if r.last_step is None else str(r.last_step + 1),
        )
    _console().print(table)


@runs_app.command("show")
def runs_show(
    run: Annotated[str, typer.Argument(help="Run id, or a run name that is unique.")],
    uri: UriOption = None,
    project: ProjectOption = None,
    token: TokenOption = None,
) -> None:
    """Show one run: its config, summary, the last value of every logged key, tables and artifacts."""
    with _reader(uri, token) as source:
        try:
            if isinstance(source, Store):
                source.runs.reap()
                info = source.runs.get(run, project)
                series = source.signals.summaries(info.id)
                tables = source.samples.tables(info.id)
                refs = [r for r in source.profiles.references(info.project) if r.run_id == info.id]
                arts = source.artifacts.list(run_id=info.id)
            else:
                d = source.run(run, project)
                info, series, tables, refs, arts = d.info, d.series, d.tables, d.references, d.artifacts
        except KeyError as exc:
            Console(stderr=True).print(f"[red]error:[/red] {exc.args[0]}")
            raise typer.Exit(1) from exc
    _print_run(info, series, tables, refs, arts)


def _print_run(
    info: RunInfo,
    series: list[SeriesSummary],
    tables: list[TableRef],
    refs: list[ReferenceInfo],
    arts: list[ArtifactVersion],
) -> None:
    console = _console()
    style = STATUS_STYLE.get(info.status, "")
    head = RichTable.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("run", f"{info.name} ({info.id})"),
        ("project", info.project),
        (
            "status",
            f"[{style}]{info.status}[/{style}]"
            + (f" (exit code {info.exit_code})" if info.exit_code else ""),
        ),
        ("job type", info.job_type or "-"),
        ("model", f"{info.model or '-'}" + (f" version {info.version}" if info.version else "")),
        ("group", info.group or "-"),
        ("tags", ", ".join(info.tags) or "-"),
        ("created", fmt_time(info.created_at)),
        ("duration", fmt_duration(info.duration)),
        ("host", f"{info.host or '-'} (pid {info.pid})"),
    ]
    if info.notes:
        rows.append(("notes", info.notes))
    if info.error:
        rows.append(("error", f"[red]{info.error}[/red]"))
    for k, v in rows:
        head.add_row(k, v)
    console.print(head)

    if info.config:
        t = RichTable(title="config", title_justify="left")
        t.add_column("key")
        t.add_column("value")
        for k, v in sorted(info.config.items()):
            t.add_row(k, fmt_value(v))
        console.print(t)

    logged = {s.name for s in series}
    extra = {k: v for k, v in info.summary.items() if k not in logged}
    if extra:
        t = RichTable(title="summary", title_justify="left")
        t.add_column("key")
        t.add_column("value")
        for k, v in sorted(extra.items()):
            t.add_row(k, fmt_value(v))
        console.print(t)

    if series:
        t = RichTable(title=f"logged keys ({len(series)})", title_justify="left")
        for col in ("key", "last", "step", "points", "min", "max"):
            t.add_column(col, justify="left" if col == "key" else "right")
        for s in series:
            t.add_row(
                s.name,
                fmt_number(s.last),
                "-" if s.step is None else str(s.step),
                str(s.count),
                fmt_number(s.min),
                fmt_number(s.max),
            )
        console.print(t)

    if tables:
        t = RichTable(title="tables", title_justify="left")
        for col in ("key", "step", "rows"):
            t.add_column(col)
        for ref in tables:
            t.add_row(ref.key, "-" if ref.step is None else str(ref.step), str(ref.rows))
        console.print(t)

    if refs:
        t = RichTable(title="reference profiles", title_justify="left")
        for col in ("model", "version", "name", "rows"):
            t.add_column(col)
        for r in refs:
            t.add_row(r.model, r.version, r.name, str(r.rows))
        console.print(t)

    if arts:
        t = RichTable(title="artifacts", title_justify="left")
        for col in ("artifact", "type", "files", "size", "digest"):
            t.add_column(col)
        for a in arts:
            t.add_row(a.ref, a.type, str(a.file_count), _fmt_bytes(a.size), a.digest[:12])
        console.print(t)


def _fmt_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@artifacts_app.command("list")
def artifacts_list(uri: UriOption = None, project: ProjectOption = None, token: TokenOption = None) -> None:
    """List artifact versions."""
    with _reader(uri, token) as source:
        found = source.artifacts.list(project) if isinstance(source, Store) else source.artifacts(project)
    table = RichTable(title="artifacts", title_justify="left")
    for col in ("project", "artifact", "type", "files", "size", "logged by", "created"):
        table.add_column(col)
    for a in found:
        table.add_row(
            a.project,
            a.ref,
            a.type,
            str(a.file_count),
            _fmt_bytes(a.size),
            a.created_by or "-",
            fmt_time(a.created_at),
        )
    _console().print(table)


@db_app.command("upgrade")
def db_upgrade(uri: UriOption = None) -> None:
    """Migrate the database to the schema this watchkeeper needs (creating it if it is empty)."""
    target = _database_uri(uri, "db upgrade")
    try:
        engine = create_engine(target)
        before = migrate.current(engine)
        migrate.upgrade(engine)
        after = migrate.current(engine)
    except WatchkeeperError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    if before == after:
        typer.echo(f"already at schema revision {after}")
    else:
        typer.echo(f"upgraded schema revision {before or 'none'} -> {after}")


@db_app.command("current")
def db_current(uri: UriOption = None) -> None:
    """Print the database's schema revision and the one this watchkeeper needs."""
    engine = create_engine(_database_uri(uri, "db current"))
    typer.echo(f"database: {migrate.current(engine) or 'none'}\nthis watchkeeper needs: {migrate.head()}")


@db_app.command("leases")
def db_leases(uri: UriOption = None) -> None:
    """Who runs the monitors and alert rules: every lease (one per monitor shard), its holder
    (host:pid:random), how many times it changed hands, and when it expires by the database's clock."""
    store = _open(_database_uri(uri, "db leases"))
    try:
        now, held = store.leases.now(), store.leases.list()
    finally:
        store.close()
    table = RichTable(title=f"leases ({len(held)})", title_justify="left")
    for col in ("lease", "holder", "epoch", "held since", "state"):
        table.add_column(col)
    for lease in held:
        if not lease.holder:
            state = "never taken"
        elif lease.expires_at > now:
            state = f"[green]held[/green], expires in {fmt_duration(lease.expires_at - now)}"
        else:
            state = f"[yellow]free[/yellow] (expired or given up {fmt_duration(now - lease.expires_at)} ago)"
        table.add_row(
            escape(lease.name),
            escape(lease.holder or "-"),
            str(lease.epoch),
            fmt_time(lease.acquired_at) if lease.holder else "-",
            state,
        )
    _console().print(table)


@db_app.command("rollup")
def db_rollup(
    uri: UriOption = None,
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="AGE:SIZE levels: windows whose SIZE bucket ended more than AGE ago are merged into one "
            "roll-up per bucket ('none': no levels).",
        ),
    ] = "8d:1h,32d:1d",
    drop_after: Annotated[
        str | None,
        typer.Option("--drop-after", help="Also delete window and roll-up profiles older than this (180d)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be merged; read no profile, write nothing.")
    ] = False,
    project: ProjectOption = None,
    settings: Annotated[
        Path | None,
        typer.Option(
            "--settings",
            help="Monitor settings YAML: its label_horizon (default 7d) is the youngest age allowed.",
        ),
    ] = None,
) -> None:
    """Merge old window profiles into hourly and daily roll-ups (exact for what merges exactly)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from watchkeeper.cli_alerts import load_settings
    from watchkeeper.monitor.base import MonitorSettings
    from watchkeeper.monitor.retention import RetentionPolicy, RollupResult, rollup

    target = _database_uri(uri, "db rollup")
    horizon = (load_settings(settings) or MonitorSettings()).label_horizon
    try:
        parsed = RetentionPolicy.parse(policy, drop_after=drop_after, min_age=horizon)
    except ValueError as exc:
        hint = "--drop-after" if "drop_after" in str(exc) else "--policy"
        raise typer.BadParameter(str(exc), param_hint=hint) from None
    err = Console(stderr=True)
    with (
        _open(target) as store,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("subjects", total=None)

        def step(done: int, total: int, so_far: RollupResult) -> None:
            bar.update(task, completed=done, total=total, description=f"{so_far.buckets:,} buckets")

        try:
            result = rollup(store, parsed, project=project, dry_run=dry_run, progress=step)
        except StoreError as exc:
            err.print(f"[red]error:[/red] {escape(str(exc))}")
            raise typer.Exit(1) from exc
    title = f"roll-up {parsed}" + (" (dry run: nothing written)" if dry_run else "")
    table = RichTable(title=title, title_justify="left")
    for col in ("step", "buckets", "profiles merged", "deleted", "roll-ups", "before", "after"):
        table.add_column(col, justify="left" if col == "step" else "right")
    for s in [*result.steps, result]:
        table.add_row(
            getattr(s, "name", "total"),
            f"{s.buckets:,}",
            f"{s.profiles_read:,}",
            f"{s.profiles_deleted:,}",
            f"{s.rollups_written:,}",
            _fmt_bytes(s.bytes_before),
            "-" if dry_run else _fmt_bytes(s.bytes_after),
        )
    console = _console()
    console.print(table)
    notes = [f"{result.subjects} subject" + ("" if result.subjects == 1 else "s")]
    if result.skipped:
        notes.append(f"{result.skipped} buckets changed meanwhile, left for the next run")
    if result.unreadable:
        notes.append(f"{result.unreadable} unreadable profiles left as they were")
    console.print("; ".join(notes))


_SINCE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _parse_since(text: str) -> float:
    """``90s``, ``15m``, ``2h``, ``7d``: a duration in seconds."""
    unit = text[-1:].lower()
    try:
        value = float(text[:-1])
    except ValueError:
        value = math.nan
    if unit not in _SINCE_UNITS or not (value > 0 and math.isfinite(value)):
        raise typer.BadParameter(
            f"expected a duration such as 15m, 2h or 7d, got {text!r}", param_hint="--since"
        )
    return value * _SINCE_UNITS[unit]


@app.command()
def traffic(
    deployment: Annotated[str, typer.Argument(help="MODEL@VERSION (or a run id for a run without a model).")],
    project: Annotated[str, typer.Option("--project", "-p", help="The project.")] = "uncategorized",
    since: Annotated[str, typer.Option("--since", help="How far back: 15m, 2h, 7d, ...")] = "1h",
    uri: UriOption = None,
    token: TokenOption = None,
) -> None:
    """Requests, errors and latency per endpoint and stage, token use and input problems of a deployment,
    from its window profiles merged over the range (percentiles of the merged sketches, exact counts)."""
    from watchkeeper.profile import Profile
    from watchkeeper.store.profiles import model_subject

    seconds = _parse_since(since)
    subject = deployment
    if "@" in deployment:
        model, _, version = deployment.rpartition("@")
        subject = model_subject(model, version)
    with _reader(uri, token) as source:
        now = dt.datetime.now().timestamp()
        if isinstance(source, Store):
            windows = source.profiles.windows(project, subject, now - seconds, None)
            count = len(windows)
            if windows:
                merged = Profile.from_bytes(windows[0].data)
                for w in windows[1:]:
                    merged = merged.merge(Profile.from_bytes(w.data))
                runs = len({w.run_id for w in windows})
                first, last = windows[0].window_start, windows[-1].window_end
        else:
            found = source.merged_profile(project, subject, now - seconds)
            count = found.windows
            if count:
                merged = Profile.from_bytes(found.data)
                runs = len(found.runs)
                first, last = found.window_start, found.window_end
    console = _console()
    if not count:
        console.print(f"no windows of {deployment} in project {project!r} in the last {since}")
        raise typer.Exit(1)
    t = merged.traffic
    console.print(
        f"[bold]{deployment}[/bold]  {count} windows from {runs} run(s), "
        f"{fmt_time(first)} to {fmt_time(last)}, "
        f"{merged.rows} predictions"
    )
    if t is None:
        console.print("(these windows carry no traffic section)")
        return
    table = RichTable(title="endpoints")
    for col in (
        "endpoint",
        "requests",
        "req/s",
        "errors",
        "error rate",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
    ):
        table.add_column(col, justify="left" if col == "endpoint" else "right")
    span = max(last - first, 1e-9)
    for name, ep in sorted(t.endpoints.items()):
        q = ep.latency.quantile([0.5, 0.95, 0.99]) * 1e3
        errors = ", ".join(f"{k} {v}" for k, v in sorted(ep.errors.items(), key=lambda kv: -kv[1])) or "0"
        table.add_row(
            f"{name} ({ep.kind})",
            str(ep.requests),
            f"{ep.requests / span:.3g}",
            errors,
            f"{ep.error_rate:.2%}" if ep.requests else "-",
            *(fmt_number(float(v)) for v in q),
            fmt_number(ep.latency.max * 1e3),
        )
    console.print(table)
    if t.stages:
        stages = RichTable(title="stages")
        for col in ("stage", "count", "p50 ms", "p95 ms", "p99 ms"):
            stages.add_column(col, justify="left" if col == "stage" else "right")
        for name, sk in sorted(t.stages.items()):
            q = sk.quantile([0.5, 0.95, 0.99]) * 1e3
            stages.add_row(name, str(sk.count), *(fmt_number(float(v)) for v in q))
        console.print(stages)
    if t.usage:
        usage = RichTable(title="usage")
        for col in ("model", "calls", "input tokens", "output tokens", "cost", "unpriced calls"):
            usage.add_column(col, justify="left" if col == "model" else "right")
        for name, u in sorted(t.usage.items()):
            usage.add_row(
                name,
                str(u.calls),
                str(u.input_tokens),
                str(u.output_tokens),
                f"{u.cost:.4f}",
                str(u.unpriced),
            )
        console.print(usage)
    if t.quality or t.dropped:
        console.print("[yellow]input problems[/yellow]")
        for k, v in sorted(t.quality.items()):
            console.print(f"  {k}: {v}", markup=False)
        if t.dropped:
            console.print(f"  calls dropped because the SDK's queue was full: {t.dropped}")


@app.command()
def report(
    reference: Annotated[
        str, typer.Argument(help="Reference data: a CSV/Parquet file or a directory of them.")
    ],
    current: Annotated[str, typer.Argument(help="Current data: a CSV/Parquet file or a directory of them.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write the HTML report.")
    ] = "drift.html",
    columns: Annotated[str | None, typer.Option(help="Only these columns, comma-separated.")] = None,
    alpha: Annotated[float, typer.Option(help="Family-wise error level of the per-column tests.")] = 0.01,
    drift_share: Annotated[float, typer.Option(help="Share of drifted columns for dataset drift.")] = 0.5,
) -> None:
    """Compare two datasets for drift and write a self-contained HTML report."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from watchkeeper.drift import drift
    from watchkeeper.profile.files import data_files, read_table

    err = Console(stderr=True)
    try:
        ref_files, cur_files = data_files(reference), data_files(current)
    except (FileNotFoundError, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err
    ) as bar:
        task = bar.add_task("reading reference", total=len(ref_files))
        ref = read_table(reference, on_file=lambda _: bar.advance(task))
        task = bar.add_task("reading current", total=len(cur_files))
        cur = read_table(current, on_file=lambda _: bar.advance(task))
        task = bar.add_task("comparing columns", total=None)

        def step(done: int, total: int, column: str) -> None:
            bar.update(task, completed=done, total=total, description=f"comparing {column[:30]}")

        try:
            result = drift(
                ref,
                cur,
                columns=columns.split(",") if columns else None,
                alpha=alpha,
                drift_share=drift_share,
                progress=step,
            )
        except (KeyError, ValueError) as exc:
            err.print(f"[red]error:[/red] {exc.args[0] if exc.args else exc}")
            raise typer.Exit(1) from exc
        bar.update(task, description="comparing columns")
    result.to_html(output, title=f"Drift: {Path(current).name} against {Path(reference).name}")
    verdict = "[red]DRIFT[/red]" if result.drifted else "[green]no drift[/green]"
    _console().print(
        f"{verdict}: {len(result.drifted_columns)} of {len(result.compared)} compared columns drifted"
        + (f" ({', '.join(result.drifted_columns[:8])})" if result.drifted_columns else "")
        + f"\nreport: {output}"
    )


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", help="The demo's directory: its store, rules and received notifications.")
    ] = Path(".watchkeeper-demo"),
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="The dashboard's port on 127.0.0.1 (a free one if taken).")
    ] = 8765,
    hours: Annotated[
        float, typer.Option(min=0.5, max=48, help="Hours of simulated history before now.")
    ] = 2.0,
    duration: Annotated[
        float | None,
        typer.Option(min=0, help="Stop after serving this many seconds (default: until Ctrl-C)."),
    ] = None,
    no_browser_hint: Annotated[
        bool, typer.Option("--no-browser-hint", help="Print only the dashboard's address, not the tour.")
    ] = False,
) -> None:
    """The full demo: a simulated fraud classifier (two versions, a latency incident, drifting traffic, late
    labels) under a real server with live traffic, the default alert rules notifying a local webhook sink,
    and the dashboard at http://127.0.0.1:PORT/. Earlier demo data in --dir is replaced."""
    from watchkeeper.demo import run_demo

    console = Console(highlight=False, soft_wrap=True)  # addresses stay whole, to be clicked or copied
    try:
        result = run_demo(
            directory,
            port,
            hours,
            live=True,
            open_for=duration,
            console=console,
            show_tour=not no_browser_hint,
        )
    except KeyboardInterrupt:
        console.print("stopped")
        raise typer.Exit(130) from None
    except (WatchkeeperError, RuntimeError, ValueError, OSError) as exc:
        Console(stderr=True, highlight=False).print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from exc
    console.print(
        f"stopped. {result.notifications} notification(s) in {result.directory / 'notifications.jsonl'}; "
        f"to look again: watchkeeper server --no-auth --uri {result.uri}",
        markup=False,
    )


# -- API tokens and the server --------------------------------------------------------------------------

token_app = typer.Typer(
    help="API tokens for the server: one project, scope read or write.", no_args_is_help=True
)
app.add_typer(token_app, name="token")


def _token_error(exc: ValueError) -> typer.BadParameter:
    """The store's ValueError ("scope: expected ...") as a usage error on the option it names."""
    field = str(exc).partition(":")[0]
    hint = f"--{field}" if field in ("project", "scope", "description") else None
    return typer.BadParameter(str(exc), param_hint=hint)


@token_app.command("create")
def token_create(
    project: Annotated[str, typer.Option("--project", "-p", help="The one project the token may use.")],
    scope: Annotated[str, typer.Option("--scope", help="write (ingest, and read) or read.")],
    description: Annotated[str | None, typer.Option(help="What the token is for.")] = None,
    uri: UriOption = None,
) -> None:
    """Create a token and print it, once: the store keeps only its hash."""
    store = _open(_database_uri(uri, "token create"))
    try:
        info, token = store.tokens.create(project, scope, description)
    except ValueError as exc:
        raise _token_error(exc) from exc
    except WatchkeeperError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    finally:
        store.close()
    Console(stderr=True, highlight=False).print(
        f"created token {info.id} for project {info.project!r} with scope {info.scope}. "
        "It is shown this once; keep it now, e.g. in WATCHKEEPER_TOKEN:",
        markup=False,
    )
    typer.echo(token)  # alone on stdout, so that TOKEN=$(watchkeeper token create ...) works


@token_app.command("list")
def token_list(uri: UriOption = None, project: ProjectOption = None) -> None:
    """List tokens (never their secrets), revoked ones too."""
    store = _open(_database_uri(uri, "token list"))
    try:
        found = store.tokens.list(project)
    finally:
        store.close()
    table = RichTable(title=f"tokens ({len(found)})", title_justify="left")
    for col in ("id", "project", "scope", "description", "created", "last used", "status"):
        table.add_column(col, no_wrap=col in ("id", "created", "last used"))
    for t in found:
        status = "[green]active[/green]" if t.active else f"[red]revoked {fmt_time(t.revoked_at)}[/red]"
        table.add_row(
            t.id,
            t.project,
            t.scope,
            t.description or "",
            fmt_time(t.created_at),
            fmt_time(t.last_used_at),
            status,
        )
    _console().print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="ID", help="The token's id (from token list).")],
    uri: UriOption = None,
) -> None:
    """Revoke a token. A running server refuses it within 30 seconds (it remembers verified tokens that
    long)."""
    from watchkeeper.store.tokens import CACHE_SECONDS, id_of

    store = _open(_database_uri(uri, "token revoke"))
    try:
        changed = store.tokens.revoke(token_id)
        info = store.tokens.get(id_of(token_id.strip()) or token_id.strip())
    finally:
        store.close()
    if info is None:
        Console(stderr=True).print(f"[red]error:[/red] no token with id {token_id.strip()!r:.40}")
        raise typer.Exit(1)
    if changed:
        typer.echo(
            f"revoked token {info.id} of project {info.project!r}; "
            f"running servers refuse it within {CACHE_SECONDS:.0f} s"
        )
    else:
        typer.echo(f"token {info.id} was revoked already, at {fmt_time(info.revoked_at)}")


@app.command("server")
def server_command(
    host: Annotated[str, typer.Option(help="The address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="The port to listen on.")] = 8080,
    uri: UriOption = None,
    no_auth: Annotated[
        bool,
        typer.Option("--no-auth", help="Accept requests without a token (a loopback --host only)."),
    ] = False,
    max_body_mb: Annotated[
        int, typer.Option(min=1, help="Largest request body, in MiB after decompression.")
    ] = 64,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", "-r", help="An alert rules file (YAML); repeat for several files."),
    ] = None,
    settings: Annotated[
        Path | None,
        typer.Option("--settings", help="A YAML file of monitor settings (reference, daily_budget, ...)."),
    ] = None,
    no_monitor: Annotated[
        bool,
        typer.Option(
            "--no-monitor",
            help="Do not run monitors and alert rules here (another replica or `watchkeeper monitor` does).",
        ),
    ] = False,
    lease_ttl: Annotated[
        float,
        typer.Option(
            min=1.0,
            help="Seconds the monitor lease lasts unrenewed: how soon a standby replica takes over from one "
            "that died.",
        ),
    ] = 30.0,
    monitor_interval: Annotated[
        float, typer.Option(min=0.1, help="Seconds between monitor passes (on the replica that runs them).")
    ] = 10.0,
    eval_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between rule evaluations.")] = 15.0,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: this replica's monitors take shard K of N of the deployments (the rules run with 0/N)."
        ),
    ] = None,
) -> None:
    """Run the server: ingest from SDKs over HTTP, with a token checked on every request. Unless
    --no-monitor, it also turns closed windows into signals and evaluates the --rules files (SIGHUP reloads
    them). Several replicas over one database all ingest; one of them at a time runs the monitors and rules
    (it holds a lease in the database; another takes over when it stops or dies)."""
    target = _database_uri(uri, "server")
    err = Console(stderr=True, highlight=False, soft_wrap=True)  # log lines stay whole
    try:
        import uvicorn

        from watchkeeper.server import create_app
        from watchkeeper.server.auth import is_loopback, token_verifier
    except ModuleNotFoundError as exc:
        err.print(
            f"error: the server needs its extra ({exc}): pip install 'watchkeeper[server]'", markup=False
        )
        raise typer.Exit(1) from exc
    if no_auth and not is_loopback(host):
        err.print(
            f"error: --no-auth is allowed on a loopback address only (127.0.0.1, ::1, localhost), "
            f"not on --host {host}: anyone who can reach the port could read and write every project. "
            "Create a token instead: watchkeeper token create --project P --scope write",
            markup=False,
        )
        raise typer.Exit(2)
    import sqlalchemy as sa

    store = _open(target)
    max_body = max_body_mb * 1024 * 1024
    shown = sa.engine.make_url(target).render_as_string(hide_password=True)
    if not no_auth and not any(t.active for t in store.tokens.list()):
        err.print(
            "no tokens yet, so every request will be refused. Create one with:\n"
            f"    watchkeeper token create --project P --scope write --uri '{shown}'",
            markup=False,
        )
    err.print(
        f"watchkeeper server on http://{host}:{port} ({workers} worker(s)), store {shown}, "
        + ("[yellow]no token checks (--no-auth)[/yellow]" if no_auth else "tokens required")
    )
    service = None
    if not no_monitor:
        from watchkeeper.alerting.service import MonitoringService
        from watchkeeper.cli_alerts import load_settings, parse_shard_option

        service = MonitoringService(
            Store(target),
            rules or [],
            settings=load_settings(settings),
            external_url=f"http://{host}:{port}",
            lease_ttl=lease_ttl,
            monitor_interval=monitor_interval,
            eval_interval=eval_interval,
            shard=parse_shard_option(shard),
        )
        if service.errors:
            for e in service.errors.values():
                err.print(str(e), markup=False)
            raise typer.Exit(1)
        service.start()
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, lambda *_: service.reload())
        err.print(
            f"monitors on, {len(service.engine.rules)} alert rule(s) from {len(rules or [])} file(s), run by "
            f"the replica holding the {service.lease_name!r} lease (this one is {service.holder})",
            markup=False,
        )
    # uvicorn shuts down on SIGTERM/SIGINT, then raises the signal again under the handler found before it
    # started: with Python's defaults, SIGTERM would end the process there, before the `finally` below gives
    # the monitor lease up (a standby would then wait for it to expire)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _exit_quietly)
    try:
        _serve(uvicorn, store, target, host, port, workers, no_auth, max_body, create_app, token_verifier)
    finally:
        if service is not None:
            service.stop()
            service.store.close()


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve(
    uvicorn: Any,
    store: Store,
    target: str,
    host: str,
    port: int,
    workers: int,
    no_auth: bool,
    max_body: int,
    create_app: Any,
    token_verifier: Any,
) -> None:
    from watchkeeper.server.auth import ENV_MAX_BODY, ENV_NO_AUTH

    if workers == 1:
        try:
            verify = None if no_auth else token_verifier(store.tokens)
            uvicorn.run(create_app(store, verify_token=verify, max_body=max_body), host=host, port=port)
        finally:
            store.close()
        return
    # several processes: uvicorn imports the app in each of them, and the options travel in the environment
    store.close()
    os.environ.update(
        {"WATCHKEEPER_URI": target, ENV_NO_AUTH: "1" if no_auth else "0", ENV_MAX_BODY: str(max_body)}
    )
    uvicorn.run("watchkeeper.server.auth:app_from_env", factory=True, host=host, port=port, workers=workers)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        from watchkeeper import __version__

        typer.echo(__version__)
        raise typer.Exit()


def main() -> None:
    app()


# the alerting and evaluation commands live in their own modules and register themselves on `app`
from watchkeeper import cli_alerts, cli_batch, cli_eval, cli_profile  # noqa: E402, F401
