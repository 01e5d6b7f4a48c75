"""The demo behind ``watchkeeper demo``: a simulated deployment under a real server, with the default alert
rules firing into a local webhook sink, populated within a minute or two of the first command.

What :func:`run_demo` does, in order:

1. makes the demo directory (default ``./.watchkeeper-demo``) with a fresh SQLite store inside;
2. starts a :class:`NotificationSink` on 127.0.0.1: a webhook receiver that appends every notification to
   ``notifications.jsonl`` and prints one line for it;
3. writes ``alerts.yml``: the default rules (:mod:`watchkeeper.alerting.defaults`) with a ``webhook``
   notifier pointing at the sink and a route to it;
4. starts :class:`LiveTraffic`: requests scored by the simulated fraud model through the real SDK
   (``wk.init(uri=...)`` and ``run.watch``), one run per model version, so a new window of each version
   lands every minute (started first, so the live windows follow the simulated ones without a gap);
5. simulates the last ``hours`` (:func:`watchkeeper.simulate.simulate` with :func:`demo_scenario`: two
   training runs with references, traffic of two versions with an incident and a drift, late labels), runs
   the monitors over it and steps the alert engine through it, so signals and alert history exist;
6. starts the real server (``create_app``) under uvicorn on 127.0.0.1 (``port``, or a free one if it is
   taken) with the monitors and the rules running in-process, as ``watchkeeper server --rules`` does;
7. prints the dashboard's address and what to look at, then serves until Ctrl-C or ``open_for`` seconds.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import json
import math
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from watchkeeper.simulate import (
    Scenario,
    Simulated,
    input_error,
    model_logit,
    plain,
    sigmoid,
    transactions,
    true_logit,
)

DEFAULT_DIR = Path(".watchkeeper-demo")
DEFAULT_PORT = 8765
DEFAULT_HOURS = 2.0
"""Hours of history: 2 h simulate in about 45 s on a 2-core machine (the monitors re-scoring windows as
late labels arrive are most of it), 3 h in about 75 s."""
MIN_HOURS = 0.5
MAX_HOURS = 48.0
INCIDENT_MINUTES = 12.0
"""The latency incident lasts at least this long: the latency and error rules wait 5 minutes before they
fire, and the history's alert engine looks every 5 minutes."""
SINK_FILE = "notifications.jsonl"
_RANGES = (("1h", 3600.0), ("6h", 6 * 3600.0), ("24h", 86400.0), ("7d", 7 * 86400.0), ("30d", 30 * 86400.0))
"""The dashboard's preset time ranges (``RANGES`` of its ``app.js``)."""
RULES_FILE = "alerts.yml"
STORE_FILE = "watchkeeper.db"


# -- the story -----------------------------------------------------------------------------------------------


def demo_scenario(now: float, hours: float = DEFAULT_HOURS, seed: int = 0) -> Scenario:
    """The demo's deployment over the ``hours`` before ``now``: the incident starts at a quarter of the range
    and lasts at least :data:`INCIDENT_MINUTES`, the drift starts after it."""
    if not (isinstance(hours, int | float) and MIN_HOURS <= hours <= MAX_HOURS):
        raise ValueError(f"hours: expected between {MIN_HOURS} and {MAX_HOURS:g}, got {hours!r}")
    span = hours * 3600.0
    length = max(0.06 * span, INCIDENT_MINUTES * 60.0) / span
    incident = (0.25, 0.25 + length)
    return Scenario(
        start=now - span, end=now, incident=incident, drift_at=max(0.45, incident[1] + 0.05), seed=seed
    )


# -- the webhook sink ----------------------------------------------------------------------------------------


class NotificationSink:
    """A webhook receiver on 127.0.0.1 (a free port): every JSON body POSTed to it is appended as one line to
    ``path`` and handed to ``on_notification``. A body that is not a JSON object is answered 400."""

    def __init__(self, path: Path, on_notification: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.path = Path(path)
        self.on_notification = on_notification
        self.received = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                    if not isinstance(payload, dict):
                        raise ValueError("not an object")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                sink._receive(payload)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:  # quiet: the sink prints its own line
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="watchkeeper-demo-sink", daemon=True
        )

    def start(self) -> NotificationSink:
        self._thread.start()
        return self

    def _receive(self, payload: dict[str, Any]) -> None:
        with self._lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(payload, sort_keys=True) + "\n")
            self.received += 1
        if self.on_notification is not None:
            with contextlib.suppress(Exception):  # printing must never fail a delivery
                self.on_notification(payload)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def describe(payload: dict[str, Any]) -> str:
    """One line for a notification: status, rule, deployment, the first alert's summary, and when it
    started (local time; the history's alerts started in the simulated past)."""
    alerts = payload.get("alerts") or [{}]
    first = alerts[0] if isinstance(alerts[0], dict) else {}
    labels = first.get("labels") or {}
    name = (payload.get("groupLabels") or {}).get("alertname") or labels.get("alertname", "?")
    where = (
        f"{labels['model']}@{labels.get('version', '?')}" if "model" in labels else labels.get("project", "")
    )
    summary = (first.get("annotations") or {}).get("summary", "")
    more = f" (+{len(alerts) - 1} more)" if len(alerts) > 1 else ""
    status = str(payload.get("status", "?")).upper()
    # a resolved alert says when it ended, a firing one since when it fires
    stamp = first.get("endsAt") if status == "RESOLVED" else first.get("startsAt")
    when = ""
    if stamp and not str(stamp).startswith("0001-"):
        with contextlib.suppress(ValueError):
            t = dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")).astimezone()
            when = f" {'at' if status == 'RESOLVED' else 'since'} {t.strftime('%H:%M')}"
    return f"{status} {name} {where}{when}: {summary}{more}".replace("  ", " ")


# -- live traffic through the SDK ----------------------------------------------------------------------------


class UpstreamTimeout(Exception):
    """The feature store did not answer in time (what the simulated history's errors are called too)."""


@dataclass
class LiveTraffic:
    """Requests to the scenario's model, ``rate`` per second in all (default: the scenario's rate), split
    between its versions, each scored by a function watched with ``run.watch`` of a run started with
    ``wk.init(uri=uri)``: the SDK aggregates them into windows as in production. The traffic is the
    scenario's after its drift; labels are logged with ``run.log_label`` when their (late) time comes."""

    uri: str
    scenario: Scenario
    rate: float | None = None
    seed: int = 1
    calls: int = 0
    errors: int = 0
    labels: int = 0
    runs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._due: list[tuple[float, str, str, int]] = []  # (time, version, prediction id, label)
        self._predict: dict[str, Callable[..., dict[str, Any]]] = {}

    def start(self) -> LiveTraffic:
        import watchkeeper as wk

        sc = self.scenario
        for version in sc.versions:
            run = wk.init(
                project=sc.project,
                name=f"serve-{sc.model}-v{version}-live",
                job_type="serve",
                tags=["production", "live"],
                config={"replicas": 1, "route": "/predict", "traffic": "live (watchkeeper demo)"},
                model=sc.model,
                version=version,
                uri=self.uri,
                reinit="create_new",
            )
            self.runs[version] = run
            self._predict[version] = run.watch(
                self._model(version),
                name="predict",
                features=lambda request_id, inputs: inputs,
                id=lambda request_id, inputs: request_id,
            )
        self._thread = threading.Thread(target=self._loop, name="watchkeeper-demo-traffic", daemon=True)
        self._thread.start()
        return self

    def _model(self, version: str) -> Callable[[str, dict[str, Any]], dict[str, Any]]:
        """The scoring function of ``version``: the simulated model's score and label, its latency spent
        for real, and the history's rare errors."""
        rng = self._rng
        noise = 0.6 if version == "1" else 0.45
        base = 0.022 if version == "1" else 0.03

        def predict(request_id: str, inputs: dict[str, Any]) -> dict[str, Any]:
            time.sleep(float(rng.lognormal(math.log(base), 0.35)))
            if rng.random() < 0.003:
                if rng.random() < 0.2:
                    raise UpstreamTimeout("upstream feature store timed out after 2.0 s")
                raise ValueError(input_error(inputs))
            cols = {k: np.asarray([v]) for k, v in inputs.items()}
            score = float(sigmoid(model_logit(cols, 1) + rng.normal(0.0, noise, 1))[0])
            return {"score": score, "label": int(score >= 0.5)}

        return predict

    def _loop(self) -> None:
        sc = self.scenario
        rng = self._rng
        rate = self.rate or sc.requests_per_window / sc.window
        drift = float(np.clip((1.0 - sc.drift_at) / 0.08, 0.0, 1.0))  # where the history ended
        names = sc.feature_names
        wait = 0.0
        while not self._stop.wait(wait):
            started = time.monotonic()
            version = "2" if len(sc.versions) > 1 and rng.random() < sc.challenger_share else "1"
            cols = transactions(rng, 1, drift, names)
            inputs = {k: plain(v[0]) for k, v in cols.items()}
            self.calls += 1
            request_id = f"live-v{version}-{self.calls}"
            try:
                self._predict[version](request_id, inputs)
            except (UpstreamTimeout, ValueError):
                self.errors += 1  # counted by the SDK as the window's errors, by type
            else:
                if rng.random() < sc.label_share:
                    truth = int(rng.random() < sigmoid(true_logit(cols, 1, drift))[0])
                    heapq.heappush(
                        self._due, (time.time() + rng.uniform(*sc.label_delay), version, request_id, truth)
                    )
            now = time.time()
            while self._due and self._due[0][0] <= now:
                t, v, pid, truth = heapq.heappop(self._due)
                self.runs[v].log_label(pid, truth, t=t)
                self.labels += 1
            wait = max(0.0, float(rng.exponential(1.0 / rate)) - (time.monotonic() - started))

    def stop(self) -> None:
        """Stop the requests and finish the runs (which writes their open windows)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for run in self.runs.values():
            run.finish()


# -- the server ----------------------------------------------------------------------------------------------


def listen(port: int) -> socket.socket:
    """A socket bound to ``127.0.0.1:port``, or to a free port when that one is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a demo restarted at once gets its port back
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.bind(("127.0.0.1", 0))
    return sock


class _Server:
    """The watchkeeper app under uvicorn on a bound socket, in a thread (the main thread keeps Ctrl-C)."""

    def __init__(self, app: Any, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="watchkeeper-demo-server", daemon=True
        )

    def start(self, timeout: float = 30.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"the server on 127.0.0.1:{self.port} did not start")
            time.sleep(0.05)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)
        self.sock.close()


# -- the whole demo ------------------------------------------------------------------------------------------


@dataclass
class DemoResult:
    """What :func:`run_demo` did: where, the simulated history, and what happened while it served."""

    url: str
    directory: Path
    uri: str
    simulated: Simulated
    notifications: int  # received by the sink
    live_calls: int
    ready_after: float  # seconds from the start to the server answering
    live_runs: dict[str, str] = field(default_factory=dict)  # version -> run id


def _fresh(directory: Path) -> None:
    """The demo's own files from an earlier demo are removed (the story is written anew each time)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in (STORE_FILE, f"{STORE_FILE}-wal", f"{STORE_FILE}-shm", f"{STORE_FILE}-journal", SINK_FILE):
        (directory / name).unlink(missing_ok=True)
    shutil.rmtree(directory / "artifacts", ignore_errors=True)


@contextlib.contextmanager
def _progress(console: Console, hours: float) -> Iterator[Callable[[str, int, int], None]]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    titles = {
        "traffic": f"writing {hours:g} h of traffic (windows)",
        "monitors": "monitors and alert rules over it (steps)",
    }
    with Progress(*columns, console=console, transient=False) as bar:
        tasks: dict[str, Any] = {}

        def step(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(titles.get(stage, stage), total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield step


def tour(url: str, scenario: Scenario) -> list[tuple[str, str, str]]:
    """(page, address, what to look at) for the printed guide."""
    sc = scenario
    span = sc.end - sc.start

    def at(frac: float) -> str:
        return dt.datetime.fromtimestamp(sc.start + frac * span).strftime("%H:%M")

    # the dashboard's smallest time range holding the whole history (its default, 24 h, squeezes 2 h)
    shown = next((name for name, seconds in _RANGES if seconds >= span), "90d")
    deployment = f"{url}#/p/{sc.project}/m/{sc.model}/v/1"
    q = f"?range={shown}"
    pages = [
        ("Deployments", f"{url}#/p/{sc.project}{q}", f"{sc.model} versions 1 and 2, with their last hours"),
        (
            "Overview",
            f"{deployment}/overview{q}",
            f"the latency incident {at(sc.incident[0])}-{at(sc.incident[1])} (p99 and upstream timeouts)",
        ),
        (
            "Drift",
            f"{deployment}/drift{q}",
            f"amount, merchant_category, ... drifting since {at(sc.drift_at)}",
        ),
        (
            "Predictions",
            f"{deployment}/predictions{q}",
            "accuracy falling against the training baseline as late labels arrive",
        ),
        ("Samples", f"{deployment}/samples{q}", "request rows, every failed one kept"),
        (
            "Compare",
            f"{url}#/p/{sc.project}/m/{sc.model}/compare?a=1&b=2&range={shown}",
            "champion v1 against challenger v2",
        ),
        (
            "Runs",
            f"{url}#/runs?project={sc.project}&range={shown}",
            "the training runs: curves, config, reference profiles",
        ),
        (
            "Alerts",
            f"{url}#/alerts?project={sc.project}&range={shown}",
            "the default rules: fired, resolved, firing now",
        ),
    ]
    return pages


def run_demo(
    directory: Path | str = DEFAULT_DIR,
    port: int = DEFAULT_PORT,
    hours: float = DEFAULT_HOURS,
    live: bool = True,
    open_for: float | None = None,
    *,
    console: Console | None = None,
    show_tour: bool = True,
) -> DemoResult:
    """Run the demo (see the module docstring) and serve until Ctrl-C, or for ``open_for`` seconds after the
    server is ready. ``live``: keep requests flowing through the SDK while it serves."""
    from watchkeeper.alerting.defaults import default_rules_with
    from watchkeeper.simulate import simulate
    from watchkeeper.store import Store
    from watchkeeper.store.batch import Batch, RunUpdate

    began = time.monotonic()
    if open_for is not None and not (isinstance(open_for, int | float) and open_for >= 0):
        raise ValueError(f"open_for: expected a number of seconds of 0 or more, got {open_for!r}")
    if not (isinstance(port, int) and 0 <= port <= 65535):
        raise ValueError(f"port: expected a TCP port number (0 to 65535), got {port!r}")
    console = console or Console(highlight=False, soft_wrap=True)  # addresses stay whole
    scenario = demo_scenario(time.time(), hours)
    directory = Path(directory).resolve()
    _fresh(directory)
    uri = f"sqlite:///{directory / STORE_FILE}"
    console.print(f"watchkeeper demo in {directory}", markup=False)

    def show(payload: dict[str, Any]) -> None:
        console.print(f"  webhook <- {describe(payload)}", markup=False)

    sink = NotificationSink(directory / SINK_FILE, show).start()
    traffic: LiveTraffic | None = None
    server: _Server | None = None
    service = None
    stores: list[Any] = []
    try:
        rules = directory / RULES_FILE
        rules.write_text(
            default_rules_with(
                [{"name": "demo-sink", "type": "webhook", "url": sink.url}],
                {
                    "notifiers": ["demo-sink"],
                    "group_by": ["alertname", "project", "model", "version"],
                    "group_wait": "30s",
                    "group_interval": "5m",
                    "repeat_interval": "4h",
                },
            ),
            encoding="utf-8",
        )
        store = Store(uri)
        stores.append(store)
        if live:
            traffic = LiveTraffic(uri, scenario).start()
        span = scenario.end - scenario.start
        with _progress(console, hours) as step:
            simulated = simulate(
                store, scenario, rules=[rules], eval_every=60.0 if span <= 3600 else 300.0, progress=step
            )
        # the history's serving replicas ended where the live ones take over (else, silent for hours,
        # they would be reaped as crashed)
        end = math.floor(scenario.end / scenario.window) * scenario.window
        store.write(
            Batch(
                run_updates=[
                    RunUpdate(run_id, status="finished", ended_at=end, heartbeat_at=end)
                    for run_id in simulated.serving_runs.values()
                ]
            )
        )

        import uvicorn  # noqa: F401 - the server extra: fail here with its name, not deep in a thread

        from watchkeeper.alerting.service import MonitoringService
        from watchkeeper.server import create_app

        sock = listen(port)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        monitor_store = Store(uri)
        stores.append(monitor_store)
        service = MonitoringService(monitor_store, [rules], external_url=url.rstrip("/"))
        if service.errors:
            raise RuntimeError("; ".join(str(e) for e in service.errors.values()))
        service.start()
        server = _Server(create_app(store), sock)
        server.start()
        ready_after = time.monotonic() - began
        if port and sock.getsockname()[1] != port:
            console.print(f"port {port} is taken; serving on {sock.getsockname()[1]} instead", markup=False)
        console.print(
            f"\nthe dashboard is ready, {ready_after:.0f} s after the start: {url}\n",
            markup=False,
            style="bold",
        )
        if show_tour:
            width = max(len(p) for p, _, _ in tour(url, scenario))
            for page, address, what in tour(url, scenario):
                console.print(f"  {page:<{width}}  {what}\n  {'':<{width}}  {address}", markup=False)
            console.print(
                f"\n  live traffic: about {scenario.requests_per_window / scenario.window:g} requests/s "
                "through the SDK (wk.init + run.watch), a new window per version every minute\n"
                f"  alerts: the default rules ({rules}) notify the webhook sink, which writes "
                f"{directory / SINK_FILE}\n"
                f"  store: {uri}",
                markup=False,
            )
        console.print(
            "\nCtrl-C to stop." if open_for is None else f"\nserving for {open_for:g} s.", markup=False
        )
        deadline = math.inf if open_for is None else time.monotonic() + open_for
        try:
            while time.monotonic() < deadline and server.running:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        except KeyboardInterrupt:
            console.print("stopping ...", markup=False)
        result = DemoResult(
            url=url,
            directory=directory,
            uri=uri,
            simulated=simulated,
            notifications=0,
            live_calls=0,
            ready_after=ready_after,
            live_runs={v: r.id for v, r in traffic.runs.items()} if traffic else {},
        )
    finally:
        if server is not None:
            server.stop()
        if traffic is not None:
            traffic.stop()
        if service is not None:
            service.stop()
        sink.close()
        for s in stores:
            s.close()
    # counted once everything has stopped: the last notifications and calls are in
    result.notifications = sink.received
    result.live_calls = traffic.calls if traffic is not None else 0
    return result
