"""The alerting commands of ``watchkeeper``: ``rules test|check``, ``monitor``, ``alerts``, ``silence``.

Kept apart from ``cli.py`` (which registers them) so that each file can be read in one sitting."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable

from watchkeeper.cli import ProjectOption, UriOption, _console, _database_uri, _open, app, fmt_time

if TYPE_CHECKING:
    from watchkeeper.monitor.base import MonitorSettings

rules_app = typer.Typer(help="Alert rule files: check them, and run their unit tests.", no_args_is_help=True)
silence_app = typer.Typer(
    help="Silences: alerts matching them are not notified until they end.", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")
app.add_typer(silence_app, name="silence")

RulesOption = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="An alert rules file (YAML); give several times for several files."),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option("--settings", help="A YAML file of monitor settings (reference, daily_budget, ...)."),
]
STATE_STYLE = {"firing": "bold red", "pending": "yellow", "resolved": "green", "inactive": "dim"}


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def load_settings(path: Path | None) -> MonitorSettings | None:
    """Monitor settings from a YAML file; a bad file stops the command with the key that is wrong."""
    if path is None:
        return None
    import yaml

    from watchkeeper.monitor.base import MonitorSettings

    try:
        return MonitorSettings.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")) or {}, str(path))
    except (OSError, yaml.YAMLError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--settings") from None


ShardOption = Annotated[
    str | None,
    typer.Option(
        help="K/N: monitor only shard K of N of the deployments (N processes share them; rules run with 0/N)."
    ),
]


def parse_shard_option(text: str | None) -> tuple[int, int]:
    from watchkeeper.monitor.runner import parse_shard

    if text is None:
        return (0, 1)
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--shard") from None


def _parse_duration(text: str, option: str) -> float:
    from watchkeeper.alerting.rules import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None


@rules_app.command("check")
def rules_check(
    files: Annotated[list[Path], typer.Argument(help="Rule files to check.")], uri: UriOption = None
) -> None:
    """Check rule files as the server would load them: syntax, functions, durations, templates, notifiers,
    and that every signal named exists in the store (``--uri``) or is produced by a monitor."""
    from watchkeeper.alerting.rules import RuleFileError, load_rules
    from watchkeeper.monitor.catalogue import SIGNAL_NAMES

    known = set(SIGNAL_NAMES)
    if uri is not None:
        from watchkeeper.alerting.source import StoreSource

        store = _open(uri)
        try:
            known |= StoreSource(store).names()
        finally:
            store.close()
    bad = 0
    for f in files:
        try:
            rs = load_rules(f, known_signals=known)
        except RuleFileError as exc:
            bad += 1
            _err().print(str(exc), markup=False)
            continue
        except OSError as exc:
            bad += 1
            _err().print(f"{f}: cannot read the file: {exc}", markup=False)
            continue
        typer.echo(f"{f}: {len(rs.rules)} rule(s), {len(rs.notifiers)} notifier(s): OK")
    raise typer.Exit(1 if bad else 0)


@rules_app.command("test")
def rules_test(
    files: Annotated[list[Path], typer.Argument(help="Rule test files (promtool's format).")],
) -> None:
    """Run rule unit tests: input series in the expanding notation and the alerts expected to fire at given
    times, evaluated on the engine's own clock (see watchkeeper.alerting.ruletest)."""
    from watchkeeper.alerting.ruletest import run_rule_tests

    failed = 0
    for f in files:
        result = run_rule_tests(f)
        for e in result.errors:
            _err().print(e, markup=False)
        for failure in result.failures:
            typer.echo(str(failure))
        status = "SUCCESS" if result.ok else "FAILED"
        typer.echo(f"{f}: {result.checks - len(result.failures)}/{result.checks} checks passed: {status}")
        failed += not result.ok
    raise typer.Exit(1 if failed else 0)


@app.command("monitor")
def monitor_command(
    uri: UriOption = None,
    rules: RulesOption = None,
    once: Annotated[
        bool, typer.Option("--once", help="One monitor pass and one rule evaluation, then exit.")
    ] = False,
    interval: Annotated[float, typer.Option(min=0.1, help="Seconds between monitor passes.")] = 10.0,
    eval_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between rule evaluations.")] = 15.0,
    settle: Annotated[float, typer.Option(min=0.0, help="Seconds a window waits for late replicas.")] = 30.0,
    settings: SettingsOption = None,
    shard: ShardOption = None,
) -> None:
    """Turn closed windows into signals and evaluate alert rules over the store, until stopped (Ctrl-C).
    SIGHUP reloads the rule files. The server does the same with ``watchkeeper server --rules``."""
    from watchkeeper.alerting.service import MonitoringService

    target = _database_uri(uri, "monitor")
    store = _open(target)
    service = MonitoringService(
        store,
        rules or [],
        settings=load_settings(settings),
        monitor_interval=interval,
        eval_interval=eval_interval,
        shard=parse_shard_option(shard),
    )
    service.runner.settle = settle
    if service.errors:
        for e in service.errors.values():
            _err().print(str(e), markup=False)
        store.close()
        raise typer.Exit(1)
    if once:
        ran = service.run_once()
        if ran is None:
            lease = store.leases.get(service.lease_name)
            holder = lease.holder if lease else "?"
            typer.echo(
                f"another process runs the monitors and rules now ({holder} holds the "
                f"{service.lease_name!r} lease): nothing done here"
            )
            service.stop()
            store.close()
            raise typer.Exit(0)
        done, ev = ran
        service.engine.flush(30)
        typer.echo(
            f"{done.windows} window(s) monitored, {done.points} signal point(s) written; "
            f"{len(service.engine.rules)} rule(s) evaluated, {len(ev.transitions)} transition(s), "
            f"{len(ev.notifications)} notification(s)"
        )
        service.stop()
        store.close()
        raise typer.Exit(1 if ev.errors or done.errors else 0)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: _reload(service))
    service.start()
    _err().print(
        f"monitoring {escape(target)}: {len(service.engine.rules)} rule(s), passes every {interval:g}s, "
        f"rules every {eval_interval:g}s; Ctrl-C stops, SIGHUP reloads the rules"
    )
    while not stop.wait(1.0):
        pass
    service.stop()
    store.close()


def _reload(service: object) -> None:
    errors = service.reload()  # type: ignore[attr-defined]
    for e in errors.values():
        _err().print(f"reload refused a file, its earlier rules stay in force:\n{e}", markup=False)


@app.command("alerts")
def alerts_command(
    uri: UriOption = None,
    project: ProjectOption = None,
    state: Annotated[
        str | None, typer.Option(help="Only alerts in this state: pending, firing, resolved.")
    ] = None,
) -> None:
    """Alert instances and their states, as the engine last persisted them."""
    if state is not None and state not in ("pending", "firing", "resolved", "inactive"):
        raise typer.BadParameter(
            f"expected pending, firing, resolved or inactive, got {state!r}", param_hint="--state"
        )
    store = _open(uri)
    try:
        rows = store.alerts.instances(None if state is None else [state])
    finally:
        store.close()
    if project is not None:
        rows = [r for r in rows if r["owner"] == project]
    table = RichTable(title=f"{len(rows)} alert(s)")
    for col in ("rule", "state", "labels", "value", "since", "fired", "notified"):
        table.add_column(col)
    for r in rows:
        labels = {k: v for k, v in r["labels"].items() if k != "alertname"}
        style = STATE_STYLE.get(r["state"], "")
        table.add_row(
            escape(r["rule_name"]),
            f"[{style}]{r['state']}[/{style}]" if style else r["state"],
            escape(", ".join(f"{k}={v}" for k, v in sorted(labels.items()))),
            "" if r["last_value"] is None else f"{r['last_value']:.4g}",
            fmt_time(r["active_at"]),
            fmt_time(r["fired_at"]),
            fmt_time(r["last_notified_at"]),
        )
    _console().print(table)


@silence_app.command("add")
def silence_add(
    match: Annotated[
        list[str], typer.Option("--match", "-m", help="label=value, label!=value, label=~regex.")
    ],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 2h.")] = "1h",
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    author: Annotated[str, typer.Option(help="Who.")] = "",
    uri: UriOption = None,
    project: ProjectOption = None,
) -> None:
    """Silence the alerts whose labels match every --match until the duration ends."""
    import re

    matchers = []
    for m in match:
        found = re.fullmatch(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*(.*)", m)
        if not found:
            raise typer.BadParameter(f"expected label=value (or !=, =~, !~), got {m!r}", param_hint="--match")
        matchers.append(
            {"label": found.group(1), "op": found.group(2), "value": found.group(3).strip().strip('"')}
        )
    seconds = _parse_duration(duration, "--for")
    store = _open(uri)
    try:
        s = store.alerts.add_silence(
            matchers, time.time() + seconds, created_by=author, comment=comment, project=project
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--match") from None
    finally:
        store.close()
    typer.echo(f"silence {s.id} until {fmt_time(s.ends_at)}")


@silence_app.command("list")
def silence_list(
    uri: UriOption = None,
    all_: Annotated[bool, typer.Option("--all", help="Ended silences too.")] = False,
) -> None:
    """Active silences (with --all, ended ones too)."""
    store = _open(uri)
    try:
        rows = store.alerts.silences(active_at=None if all_ else time.time())
    finally:
        store.close()
    table = RichTable(title=f"{len(rows)} silence(s)")
    for col in ("id", "matchers", "starts", "ends", "by", "comment"):
        table.add_column(col)
    for s in rows:
        text = ", ".join(f"{m['label']}{m['op']}{m['value']}" for m in s.matchers)
        table.add_row(
            s.id,
            escape(text),
            fmt_time(s.starts_at),
            fmt_time(s.ends_at),
            escape(s.created_by),
            escape(s.comment),
        )
    _console().print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: Annotated[str, typer.Argument(help="The silence's id.")], uri: UriOption = None
) -> None:
    """End a silence now."""
    store = _open(uri)
    try:
        ok = store.alerts.expire_silence(silence_id)
    finally:
        store.close()
    if not ok:
        _err().print(f"no active silence {silence_id!r}", markup=False)
        raise typer.Exit(1)
    typer.echo(f"silence {silence_id} expired")
