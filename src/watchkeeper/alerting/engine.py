"""The alert engine: evaluates rules over signals on a clock, moves each alert instance through
inactive → pending → firing → resolved, and hands groups of alerts to notifiers.

The semantics are Prometheus' for rules and Alertmanager's for notification, in one process:

* An instance is a rule and one label set of its expression's result (the sample's labels without
  ``__name__``, plus the rule's labels, ``alertname`` and ``severity``).
* It is *pending* from the first evaluation its condition holds, *firing* once it has held for the rule's
  ``for`` (at once when ``for`` is 0), and *resolved* at the first evaluation it no longer holds, or
  ``keep_firing_for`` after that. A pending instance whose condition stops holding is dropped.
* Instances are routed by their labels (the file's routing tree) and grouped by the route's ``group_by``
  labels; a group is one notification listing every firing alert in it, sent when an alert joins it (after
  ``group_wait``, and not sooner than ``group_interval`` after the group's last notification), again every
  ``repeat_interval`` while it fires, and once more when its alerts resolve. A storm of 200 drifting features
  under ``group_by: [alertname, model]`` is one message.
* Silenced instances move through their states but are not notified; when the silence ends, a still firing
  instance is notified then.
* States and the time of each instance's last notification are persisted after every evaluation (in the
  store, ``watchkeeper.store.alerts``), so a restart neither forgets a firing alert nor re-sends it.
* Every state change (inactive → pending, pending → firing, firing → resolved, pending → inactive, and
  resolved → pending or firing when the condition holds again) is appended to the store's history of alert
  events, with its time and the expression's value, in the transaction that saves the states. The history
  outlives the states: a resolved instance later dropped from the states keeps its events.

Evaluation never waits on a notifier: notifications go to a ``Dispatcher`` that delivers, retries and logs
on its own threads. The clock is injectable, so rule tests run in milliseconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting import template
from watchkeeper.alerting.model import Alert, Matcher, Notification, Notifier, RangeSeries, SeriesSource
from watchkeeper.alerting.rules import AlertRule, Route, RuleFileError, RuleSet, load_rules
from watchkeeper.store.alerts import AlertEvent, AlertState, Silence
from watchkeeper.store.signals import labels_key

if TYPE_CHECKING:
    from watchkeeper.alerting.dispatch import Delivery, Dispatcher
    from watchkeeper.store.store import Store

log = logging.getLogger("watchkeeper.alerting")

RESOLVED_RETENTION = 7 * 86400.0
"""Resolved instances are kept this long in the states, then dropped (their events stay in the history)."""

MAX_UNSAVED_EVENTS = 100_000
"""State changes kept in memory while the store cannot be written, to be saved with the next evaluation;
past this the oldest are dropped (with an error in the log)."""


# -- where states live ---------------------------------------------------------------------------------------


class MemoryStates:
    """States kept in memory only, for ``rules test`` and unit tests (``AlertStates`` persists them)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str | None, str], int] = {}
        self._states: dict[tuple[int, str], AlertState] = {}
        self._silences: list[Silence] = []
        self.notifications: list[dict[str, Any]] = []
        self.events: list[AlertEvent] = []

    def sync_rules(
        self, specs: Iterable[tuple[str | None, str, dict[str, Any]]], now: float | None = None
    ) -> dict:
        for project, name, _ in specs:
            self._ids.setdefault((project, name), len(self._ids) + 1)
        return dict(self._ids)

    def load(self, rule_ids: Iterable[int]) -> dict[tuple[int, str], AlertState]:
        ids = set(rule_ids)
        return {k: v for k, v in self._states.items() if k[0] in ids}

    def save(
        self,
        states: Iterable[AlertState],
        deleted: Iterable[tuple[int, str]] = (),
        events: Iterable[AlertEvent] = (),
    ) -> None:
        self.events.extend(events)
        for key in deleted:
            self._states.pop(key, None)
        for s in states:
            self._states[(s.rule_id, s.labels_key)] = AlertState(**{f: getattr(s, f) for f in s.__slots__})

    def add(self, silence: Silence) -> None:
        self._silences.append(silence)

    def silences(self, *, active_at: float | None = None, project: str | None = None) -> list[Silence]:
        return [s for s in self._silences if active_at is None or s.active(active_at)]

    def log_notification(self, **record: Any) -> None:
        self.notifications.append(record)


# -- the engine ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """An instance changed state in one evaluation. ``project`` is the rule's (None: a global rule)."""

    rule: str
    labels: Mapping[str, str]
    old: str
    new: str
    t: float
    value: float
    rule_id: int | None = None
    labels_key: str = ""
    project: str | None = None


@dataclass(slots=True)
class Evaluation:
    """What one evaluation did: the transitions, the notifications handed to the dispatcher, and the rules
    that failed to evaluate (their instances keep their states)."""

    t: float
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Loaded:
    rule: AlertRule
    rule_id: int
    route: Route
    file: str


class _ProjectSource:
    """A rule scoped to a project reads only that project's signals."""

    def __init__(self, source: SeriesSource, project: str) -> None:
        self._source = source
        self._project = Matcher("project", "=", project)

    def select(self, name: str, matchers: Sequence[Matcher], start: float, end: float) -> list[RangeSeries]:
        return self._source.select(name, [*matchers, self._project], start, end)

    def names(self) -> set[str]:
        return self._source.names()


class AlertEngine:
    """Rules from files, evaluated every ``interval`` seconds by ``start()`` or on demand by ``evaluate()``.

    ``store`` holds states, silences and the notification log (None: in memory). ``source`` is where signals
    are read (default: the store's signals). ``notifiers`` are extra named notifiers besides those the rule
    files define (tests pass fakes here). ``known_signals`` returns the names a rule may read (default: the
    store's signal names and every name a monitor produces). ``states`` is where states, silences and the
    notification log are kept when not in ``store.alerts`` (an object with the same methods).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        source: SeriesSource | None = None,
        notifiers: Mapping[str, Notifier] | None = None,
        clock: Callable[[], float] = time.time,
        external_url: str = "",
        known_signals: Callable[[], set[str]] | None = None,
        dispatcher_options: Mapping[str, Any] | None = None,
        states: Any | None = None,
    ) -> None:
        self._store = store
        if states is None:
            states = store.alerts if store is not None else MemoryStates()
        self._states_backend: Any = states
        if source is None:
            if store is None:
                raise TypeError("give a store or a source to read signals from")
            from watchkeeper.alerting.source import StoreSource

            source = StoreSource(store)
        self.source = source
        self.clock = clock
        self.external_url = external_url
        self._extra_notifiers = dict(notifiers or {})
        self._known = known_signals or self._default_known
        self._dispatcher_options = dict(dispatcher_options or {})
        self._files: dict[str, RuleSet] = {}
        self._rules: list[_Loaded] = []
        self._states: dict[tuple[int, str], AlertState] = {}
        self._unsaved_events: list[AlertEvent] = []
        self._lock = threading.RLock()
        self._dispatcher: Dispatcher | None = None
        self._notifier_specs: dict[str, Mapping[str, Any]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._rebuild([])

    # -- rules ---------------------------------------------------------------------------------------------

    @property
    def rules(self) -> list[AlertRule]:
        return [r.rule for r in self._rules]

    @property
    def states_backend(self) -> Any:
        return self._states_backend

    def load(self, *paths: str | Path) -> dict[str, RuleFileError]:
        """Load (or reload) rule files. A file with problems is refused whole and the rules it had loaded
        before stay in force; the others load. Returns the refused files' errors (empty: all loaded)."""
        errors: dict[str, RuleFileError] = {}
        with self._lock:
            files = dict(self._files)
            known = self._known()
            for p in paths:
                key = str(p)
                try:
                    ruleset = load_rules(p, known_signals=known)
                    self._check_notifier_names(ruleset, files, key)
                except RuleFileError as exc:
                    errors[key] = exc
                    log.error("%s", exc)
                    continue
                except OSError as exc:
                    errors[key] = RuleFileError(key, [_problem(f"cannot read the file: {exc}")])
                    log.error("cannot read rules file %s: %s", key, exc)
                    continue
                files[key] = ruleset
            self._files = files
            self._rebuild(list(files.values()))
        return errors

    def reload(self) -> dict[str, RuleFileError]:
        """Read every loaded file again (what SIGHUP or ``POST /api/v1/rules/reload`` does)."""
        return self.load(*list(self._files))

    def _check_notifier_names(self, ruleset: RuleSet, files: Mapping[str, RuleSet], key: str) -> None:
        for other_key, other in files.items():
            if other_key == key:
                continue
            theirs = {n["name"]: n for n in other.notifiers}
            for spec in ruleset.notifiers:
                if spec["name"] in theirs and dict(theirs[spec["name"]]) != dict(spec):
                    raise RuleFileError(
                        key,
                        [_problem(f"notifier {spec['name']!r} is defined differently in {other_key}")],
                    )

    def _rebuild(self, rulesets: list[RuleSet]) -> None:
        from watchkeeper.alerting.dispatch import Dispatcher
        from watchkeeper.alerting.notifiers import build_notifier

        specs: dict[str, Mapping[str, Any]] = {}
        for rs in rulesets:
            for n in rs.notifiers:
                specs[n["name"]] = n
        if self._dispatcher is None or specs != self._notifier_specs:
            notifiers: dict[str, Notifier] = {}
            for name, spec in specs.items():
                notifiers[name] = build_notifier(spec, where=f"notifiers[{name}]")
            notifiers.update(self._extra_notifiers)  # given in code (tests, embedding) wins over a file's
            old = self._dispatcher
            self._dispatcher = Dispatcher(notifiers, on_result=self._delivered, **self._dispatcher_options)
            self._notifier_specs = specs
            if old is not None:
                threading.Thread(target=old.close, name="watchkeeper-dispatcher-close", daemon=True).start()
        loaded_specs = [(r.project, r.name, r.spec()) for rs in rulesets for r in rs.rules]
        ids = self._states_backend.sync_rules(loaded_specs, now=self.clock())
        self._rules = [
            _Loaded(rule, ids[(rule.project, rule.name)], rs.route, rs.source)
            for rs in rulesets
            for rule in rs.rules
        ]
        self._states = self._states_backend.load([r.rule_id for r in self._rules])

    def reload_states(self) -> None:
        """Read the alert states from the store again: a replica taking the evaluation over from another goes
        on from the states that one saved (a firing alert stays firing and is not announced again)."""
        with self._lock:
            self._states = self._states_backend.load([r.rule_id for r in self._rules])

    def _default_known(self) -> set[str]:
        from watchkeeper.monitor.catalogue import SIGNAL_NAMES

        try:
            return set(self.source.names()) | set(SIGNAL_NAMES)
        except Exception:  # the store being away must not make every rule unknown
            log.exception(
                "could not list the signal names; rules are checked against the monitors' names only"
            )
            return set(SIGNAL_NAMES)

    # -- evaluation ----------------------------------------------------------------------------------------

    def evaluate(self, now: float | None = None, *, only: Mapping[str, str] | None = None) -> Evaluation:
        """Evaluate every rule at ``now`` (default: the clock), persist the states that changed and hand the
        groups that are due to the notifiers.

        With ``only`` (labels such as ``{"project": "p", "model": "m", "version": "3"}``), only the instances
        whose labels include all of these are evaluated and notified: the others keep their states untouched
        (a rule's sample of another deployment neither starts nor resolves anything), and ``run.alert()``
        calls wait for an evaluation without ``only``. This is how a deployment's past is evaluated at past
        times (``watchkeeper monitor-batch``) without resolving the live alerts of other deployments."""
        with self._lock:
            now = self.clock() if now is None else now
            out = Evaluation(now)
            changed: dict[tuple[int, str], AlertState] = {}
            deleted: list[tuple[int, str]] = []
            only = dict(only) if only is not None else None
            for loaded in self._rules:
                try:
                    self._evaluate_rule(loaded, now, out, changed, deleted, only)
                except Exception as exc:  # one broken rule must not stop the others
                    out.errors[loaded.rule.name] = f"{type(exc).__name__}: {exc}"
                    log.warning("rule %s failed to evaluate: %s", loaded.rule.name, exc)
            out.notifications = self._notify(now, changed, only)
            if only is None:
                out.notifications += self._run_alerts(now)
            events = self._unsaved_events + [_event(tr) for tr in out.transitions]
            try:
                self._states_backend.save(list(changed.values()), deleted, events)
                self._unsaved_events = []
            except Exception:
                log.exception("could not persist alert states; they are kept in memory and saved next time")
                if len(events) > MAX_UNSAVED_EVENTS:
                    log.error("dropping the %d oldest unsaved alert events", len(events) - MAX_UNSAVED_EVENTS)
                self._unsaved_events = events[-MAX_UNSAVED_EVENTS:]
            return out

    def _evaluate_rule(
        self,
        loaded: _Loaded,
        now: float,
        out: Evaluation,
        changed: dict[tuple[int, str], AlertState],
        deleted: list[tuple[int, str]],
        only: Mapping[str, str] | None = None,
    ) -> None:
        rule = loaded.rule
        source = self.source if rule.project is None else _ProjectSource(self.source, rule.project)
        samples = rule.expr.evaluate(source, now, rule.lookback)
        active: dict[str, tuple[dict[str, str], float]] = {}
        for s in samples:
            labels = {k: v for k, v in s.labels.items() if k != "__name__"}
            labels.update(rule.labels)
            labels["alertname"] = rule.name
            labels["severity"] = rule.severity
            if only is not None and not _has_labels(labels, only):
                continue
            active[labels_key(labels)] = (labels, float(s.value))

        def transition(st: AlertState, old: str, new: str, value: float) -> None:
            which = (loaded.rule_id, st.labels_key, rule.project)
            out.transitions.append(Transition(rule.name, dict(st.labels), old, new, now, value, *which))

        def move(st: AlertState, new: str, value: float) -> None:
            if st.state != new:
                transition(st, st.state, new, value)
            st.state = new
            changed[(st.rule_id, st.labels_key)] = st

        for lkey, (labels, value) in active.items():
            key = (loaded.rule_id, lkey)
            st = self._states.get(key)
            if st is None or st.state in ("inactive", "resolved"):
                # a new instance starts from where the last one of its labels ended, so its first
                # transition reads "resolved -> pending" in the history when it comes back
                was = "inactive" if st is None else st.state
                st = AlertState(loaded.rule_id, lkey, labels, state=was, active_at=now)
                self._states[key] = st
                st.last_value, st.last_true_at = value, now
                if rule.for_seconds <= 0:
                    st.fired_at = now
                    move(st, "firing", value)
                else:
                    move(st, "pending", value)
                continue
            st.last_value, st.last_true_at, st.keep_firing_since = value, now, None
            changed[key] = st
            if st.state == "pending" and now - _or(st.active_at, now) >= rule.for_seconds:
                st.fired_at = now
                move(st, "firing", value)

        for key, st in list(self._states.items()):
            if key[0] != loaded.rule_id or key[1] in active:
                continue
            if only is not None and not _has_labels(st.labels, only):
                continue
            if st.state == "pending":
                del self._states[key]
                deleted.append(key)
                changed.pop(key, None)
                transition(st, "pending", "inactive", _or(st.last_value, float("nan")))
            elif st.state == "firing":
                # Prometheus' rule: kept firing for keep_firing_for from the first evaluation it did not hold
                if st.keep_firing_since is None:
                    st.keep_firing_since = now
                    changed[key] = st
                if now - st.keep_firing_since >= rule.keep_firing_for:
                    st.resolved_at = now
                    move(st, "resolved", _or(st.last_value, float("nan")))
            elif st.state == "resolved" and now - _or(st.resolved_at, now) > RESOLVED_RETENTION:
                del self._states[key]
                deleted.append(key)
                changed.pop(key, None)

    # -- notification --------------------------------------------------------------------------------------

    def _notify(
        self, now: float, changed: dict[tuple[int, str], AlertState], only: Mapping[str, str] | None = None
    ) -> list[Notification]:
        try:
            silences = self._states_backend.silences(active_at=now)
        except Exception:
            log.exception("could not read silences; notifying as if none were active")
            silences = []
        by_id = {r.rule_id: r for r in self._rules}
        groups: dict[tuple[str, str, str], dict[str, Any]] = {}
        for key, st in self._states.items():
            loaded = by_id.get(key[0])
            if loaded is None or st.state not in ("firing", "resolved"):
                continue
            if only is not None and not _has_labels(st.labels, only):
                continue
            if st.state == "resolved" and (
                st.last_notified_at is None or st.last_notified_at >= _or(st.resolved_at, 0.0)
            ):
                continue  # never notified while firing (or its resolution already went out)
            if _silenced(st.labels, silences, loaded.rule.project):
                continue
            for path, route in loaded.route.routes_for(st.labels):
                glabels = route.group_labels(st.labels)
                gkey = f"{loaded.file}:{path}:{labels_key(glabels)}"
                for receiver in route.notifiers:
                    g = groups.setdefault(
                        (gkey, receiver, loaded.file), {"route": route, "labels": glabels, "members": []}
                    )
                    g["members"].append((loaded, st))
        sent: list[Notification] = []
        notified: set[tuple[int, str]] = set()
        for (gkey, receiver, _file), g in groups.items():
            route: Route = g["route"]
            members: list[tuple[_Loaded, AlertState]] = g["members"]
            if not self._group_due(route, members, now):
                continue
            alerts = [
                self._alert(loaded, st)
                for loaded, st in members
                if st.state == "firing" or route.send_resolved
            ]
            if not alerts:
                continue
            n = Notification(
                receiver=receiver,
                group_key=gkey,
                group_labels=g["labels"],
                alerts=alerts,
                t=now,
                external_url=self.external_url,
                common_labels=_common(a.labels for a in alerts),
            )
            assert self._dispatcher is not None
            self._dispatcher.submit(n)
            sent.append(n)
            notified.update((loaded.rule_id, st.labels_key) for loaded, st in members)
        for key in notified:
            st = self._states[key]
            st.last_notified_at = now
            changed[key] = st
        return sent

    RUN_ALERTS_CURSOR = "alerting:run_alerts"
    RUN_ALERTS_FIRST_LOOK = 3600.0
    """On its very first start, the engine notifies the ``run.alert()`` calls of the last hour, not older."""

    def _run_alerts(self, now: float) -> list[Notification]:
        """Notify the ``run.alert()`` calls stored since the last evaluation, through every loaded file's
        routes (each receiver once). Silences apply; there is no state: an event fires once."""
        if self._store is None or not self._files:
            return []
        backend = self._states_backend
        try:
            cursor = backend.cursor(self.RUN_ALERTS_CURSOR)
            if cursor is None:
                cursor = backend.first_run_alert_after(now - self.RUN_ALERTS_FIRST_LOOK)
            calls = backend.run_alerts(int(cursor))
        except Exception:
            log.exception("could not read run.alert() calls; trying again at the next evaluation")
            return []
        if not calls:
            return []
        from watchkeeper.sdk.run import AlertLevel

        silences = backend.silences(active_at=now)
        sent = []
        for call in calls:
            level = AlertLevel.__members__.get(call.level.upper(), AlertLevel.INFO)
            labels = {"alertname": call.title, "severity": level.value, "project": call.project}
            if call.run_id is not None:
                labels["run"] = call.run_id
            if _silenced(labels, silences, None):
                continue
            alert = Alert(
                rule=call.title,
                labels=labels,
                annotations={
                    "summary": call.title,
                    "description": call.text,
                    "run_name": call.run_name or "",
                },
                status="firing",
                value=float("nan"),
                active_at=call.t,
                fired_at=call.t,
            )
            receivers: dict[str, None] = {}
            for rs in self._files.values():
                for _, route in rs.route.routes_for(labels):
                    receivers.update(dict.fromkeys(route.notifiers))
            for receiver in receivers:
                n = Notification(
                    receiver=receiver,
                    group_key=f"run.alert:{call.id}",
                    group_labels={"alertname": call.title},
                    alerts=[alert],
                    t=now,
                    external_url=self.external_url,
                    common_labels=labels,
                )
                assert self._dispatcher is not None
                self._dispatcher.submit(n)
                sent.append(n)
        try:
            backend.set_cursor(self.RUN_ALERTS_CURSOR, calls[-1].id, now=now)
        except Exception:
            log.exception("could not save the run.alert() cursor; those calls may be notified again")
        return sent

    @staticmethod
    def _group_due(route: Route, members: list[tuple[_Loaded, AlertState]], now: float) -> bool:
        notified = [st.last_notified_at for _, st in members if st.last_notified_at is not None]
        last = max(notified) if notified else None
        for _, st in members:
            if st.state == "resolved":
                if last is None or now - last >= route.group_interval:
                    return True
                continue
            fired = _or(st.fired_at, now)
            if st.last_notified_at is None or st.last_notified_at < fired:
                # new in the group: wait group_wait for others to join, and group_interval since the last
                if now - fired >= route.group_wait and (last is None or now - last >= route.group_interval):
                    return True
            elif now - st.last_notified_at >= route.repeat_interval:
                return True
        return False

    def _alert(self, loaded: _Loaded, st: AlertState) -> Alert:
        value = st.last_value if st.last_value is not None else float("nan")
        annotations = {k: template.render(v, st.labels, value) for k, v in loaded.rule.annotations.items()}
        return Alert(
            rule=loaded.rule.name,
            labels=dict(st.labels),
            annotations=annotations,
            status="firing" if st.state == "firing" else "resolved",
            value=value,
            active_at=_or(st.active_at, 0.0),
            fired_at=st.fired_at,
            resolved_at=st.resolved_at if st.state == "resolved" else None,
        )

    def _delivered(self, d: Delivery) -> None:
        n = d.notification
        rule_ids = {r.rule.name: r.rule_id for r in self._rules}
        rule_id = (
            rule_ids.get(n.alerts[0].rule) if n.alerts and len({a.rule for a in n.alerts}) == 1 else None
        )
        payload = {
            "title": n.title(),
            "status": n.status,
            "group_labels": dict(n.group_labels),
            "alerts": [
                {"rule": a.rule, "labels": dict(a.labels), "status": a.status, "value": _num(a.value)}
                for a in n.alerts
            ],
            "attempts": d.attempts,
        }
        try:
            self._states_backend.log_notification(
                rule_id=rule_id,
                group_key=n.group_key,
                notifier=d.notifier,
                t=d.t,
                status=d.status,
                payload=payload,
                error=d.error,
            )
        except Exception:
            log.exception("could not log a notification to %s", d.notifier)
        if d.status != "sent":
            self._failure_signal(d)

    def _failure_signal(self, d: Delivery) -> None:
        """A failed delivery is itself a signal (``notifier_failures{notifier}``), so it can be charted and
        alerted on like anything else."""
        if self._store is None:
            return
        from watchkeeper.store.batch import Batch, Points

        projects = sorted({a.labels.get("project", "") for a in d.notification.alerts} - {""}) or [
            "watchkeeper"
        ]
        try:
            self._store.write(
                Batch(
                    points=[
                        Points(
                            p,
                            "alerting",
                            ["notifier_failures"],
                            [None],
                            [d.t],
                            [1.0],
                            labels={"notifier": d.notifier},
                        )
                        for p in projects
                    ]
                )
            )
        except Exception:
            log.exception("could not record the failure of notifier %s", d.notifier)

    # -- reading -------------------------------------------------------------------------------------------

    def alerts(self, state: str | None = None) -> list[tuple[AlertRule, AlertState]]:
        """Every instance the engine holds, with its rule: pending, firing and recently resolved."""
        by_id = {r.rule_id: r.rule for r in self._rules}
        with self._lock:
            out = [(by_id[k[0]], st) for k, st in self._states.items() if k[0] in by_id]
        if state is not None:
            out = [x for x in out if x[1].state == state]
        return sorted(out, key=lambda x: (x[0].name, x[1].labels_key))

    # -- running -------------------------------------------------------------------------------------------

    def start(self, interval: float = 15.0) -> None:
        """Evaluate every ``interval`` seconds on a daemon thread until ``stop()``."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.evaluate()
                except Exception:
                    log.exception("alert evaluation failed")

        self._thread = threading.Thread(target=loop, name="watchkeeper-alerts", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._dispatcher is not None:
            self._dispatcher.flush(timeout)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait for the notifications handed out so far to be delivered or given up."""
        return self._dispatcher.flush(timeout) if self._dispatcher is not None else True

    def close(self) -> None:
        self.stop()
        if self._dispatcher is not None:
            self._dispatcher.close()


def _event(tr: Transition) -> AlertEvent:
    """The history's record of a transition; its project is the series' ``project`` label, else the
    rule's."""
    return AlertEvent(
        rule_id=tr.rule_id,
        rule_name=tr.rule,
        project=tr.labels.get("project", tr.project),
        labels_key=tr.labels_key,
        labels=dict(tr.labels),
        from_state=tr.old,
        to_state=tr.new,
        t=tr.t,
        value=tr.value,
    )


def _silenced(labels: Mapping[str, str], silences: list[Silence], project: str | None) -> bool:
    for s in silences:
        if s.project is not None and s.project != labels.get("project", project):
            continue
        if all(Matcher(m["label"], m["op"], m["value"]).matches(labels) for m in s.matchers):  # type: ignore[arg-type]
            return True
    return False


def _has_labels(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in wanted.items())


def _or(value: float | None, default: float) -> float:
    # times may be 0.0 (rule tests start their clock there): never use `or` on them
    return default if value is None else value


def _common(label_sets: Iterable[Mapping[str, str]]) -> dict[str, str]:
    sets = list(label_sets)
    if not sets:
        return {}
    first = dict(sets[0])
    return {k: v for k, v in first.items() if all(s.get(k) == v for s in sets[1:])}


def _num(v: float) -> float | None:
    return None if v != v or v in (float("inf"), float("-inf")) else v


def _problem(message: str) -> Any:
    from watchkeeper.alerting.rules import RuleProblem

    return RuleProblem(1, 1, message)
