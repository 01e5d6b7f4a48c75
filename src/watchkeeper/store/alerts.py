"""The alert engine's persistent part: rules as loaded, each alert instance's state, silences, the log of
every notification sent or failed, and the history of every state change (``alert_events``). A restart reads
the states back, so it neither forgets a firing alert nor sends it again before its repeat interval.

The history outlives the states: an instance's row in ``alert_states`` goes when it returns to inactive or
its resolution ages out, while its events stay, for the dashboard's history and the markers on its charts.
An event's ``project`` is the series' ``project`` label, else its rule's project (None: neither).

A notification's projects are read from what it lists: each alert's ``project`` label, else the project of
the notification's rule. The log has no project column, so filters on them run in Python over the rows
read newest first, at most ``NOTIFICATION_SCAN`` rows per call.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store.schema import (
    alert_events,
    alert_notifications,
    alert_rules,
    alert_silences,
    alert_states,
    monitor_state,
    projects,
    runs,
    samples,
)

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


@dataclass(slots=True)
class AlertState:
    """One alert instance: a rule and one label set, with its place in inactive → pending → firing →
    resolved and the times it moved."""

    rule_id: int
    labels_key: str
    labels: dict[str, str]
    state: str = "inactive"
    active_at: float | None = None
    fired_at: float | None = None
    resolved_at: float | None = None
    last_value: float | None = None
    last_notified_at: float | None = None
    last_true_at: float | None = None
    keep_firing_since: float | None = None


@dataclass(frozen=True, slots=True)
class Silence:
    """Alerts whose labels pass every matcher (``{"label", "op", "value"}``) are not notified between
    ``starts_at`` and ``ends_at``; their states still move, so the dashboard shows them."""

    id: str
    matchers: list[dict[str, str]]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    project: str | None = None

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """One delivery to one notifier, sent or failed. ``rule_name`` and ``rule_project`` are those of
    ``rule_id`` (None when the notification listed alerts of several rules, or a ``run.alert()`` call)."""

    id: int
    rule_id: int | None
    group_key: str
    notifier: str
    t: float
    status: str
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    rule_name: str | None = None
    rule_project: str | None = None

    @property
    def projects(self) -> frozenset[str]:
        """The projects of the alerts it lists: each one's ``project`` label, else the rule's project."""
        out = set()
        for alert in self.payload.get("alerts") or ():
            labels = alert.get("labels") if isinstance(alert, dict) else None
            project = labels.get("project") if isinstance(labels, dict) else None
            project = project if isinstance(project, str) else self.rule_project
            if project is not None:
                out.add(project)
        if not out and self.rule_project is not None:
            out.add(self.rule_project)
        return frozenset(out)


NOTIFICATION_SCAN = 50_000
"""The most notification rows one filtered read looks at before it answers with what it found."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One state change of one alert instance: ``from_state`` → ``to_state`` at ``t``, with the value of
    the rule's expression then (None: NaN, or none, as when a pending instance stops holding). ``id`` is
    None until stored."""

    rule_id: int | None
    rule_name: str
    project: str | None
    labels_key: str
    labels: dict[str, str]
    from_state: str
    to_state: str
    t: float
    value: float | None = None
    id: int | None = None


RUN_ALERTS_KEY = "_alerts"
"""The sample table a run's ``alert()`` calls are written to (one row each: title, text, level)."""


@dataclass(frozen=True, slots=True)
class RunAlert:
    """One ``run.alert()`` call as stored."""

    id: int
    project: str
    run_id: str | None
    run_name: str | None
    t: float
    title: str
    text: str
    level: str


_STATE_COLUMNS = (
    "state",
    "labels",
    "active_at",
    "fired_at",
    "resolved_at",
    "last_value",
    "last_notified_at",
    "last_true_at",
    "keep_firing_since",
)


def _float(v: float | None) -> float | None:
    # NaN is not storable in every dialect's double column; a state's last value of NaN reads back as None
    return None if v is None or v != v else v


def _insert_events(conn: sa.Connection, events: list[AlertEvent]) -> None:
    if not events:
        return
    conn.execute(
        sa.insert(alert_events),
        [
            {
                "rule_id": e.rule_id,
                "rule_name": e.rule_name,
                "project": e.project,
                "labels_key": e.labels_key,
                "labels": e.labels,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "t": e.t,
                "value": _float(e.value),
            }
            for e in events
        ],
    )


class AlertStates:
    """Rules, states, silences and the notification log of one store."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- rules -----------------------------------------------------------------------------------------

    def sync_rules(
        self, specs: Iterable[tuple[str | None, str, dict[str, Any]]], now: float | None = None
    ) -> dict[tuple[str | None, str], int]:
        """Record the rules now loaded, ``(project, name, spec)``, and return their ids. A rule seen before
        keeps its id (so its states carry over) and gets the new spec; rules no longer loaded are kept,
        disabled, with their history. Call with every loaded rule at once."""
        now = time.time() if now is None else now
        specs = list(specs)
        out: dict[tuple[str | None, str], int] = {}
        with self._store.begin_write() as conn:
            rows = conn.execute(
                sa.select(alert_rules.c.id, alert_rules.c.name, projects.c.name.label("project")).outerjoin(
                    projects, projects.c.id == alert_rules.c.project_id
                )
            ).all()
            existing = {(r.project, r.name): r.id for r in rows}
            for project, name, spec in specs:
                key = (project, name)
                if key in existing:
                    conn.execute(
                        sa.update(alert_rules)
                        .where(alert_rules.c.id == existing[key])
                        .values(spec=spec, enabled=True, updated_at=now)
                    )
                    out[key] = existing[key]
                else:
                    pid = self._store.project_id(conn, project) if project is not None else None
                    out[key] = conn.execute(
                        sa.insert(alert_rules).values(
                            project_id=pid, name=name, spec=spec, enabled=True, created_at=now, updated_at=now
                        )
                    ).inserted_primary_key[0]
            gone = [i for k, i in existing.items() if k not in out]
            if gone:
                conn.execute(sa.update(alert_rules).where(alert_rules.c.id.in_(gone)).values(enabled=False))
        return out

    # -- states ----------------------------------------------------------------------------------------

    def load(self, rule_ids: Iterable[int]) -> dict[tuple[int, str], AlertState]:
        ids = list(rule_ids)
        if not ids:
            return {}
        with self._store.connect() as conn:
            rows = conn.execute(sa.select(alert_states).where(alert_states.c.rule_id.in_(ids))).all()
        out = {}
        for r in rows:
            m = r._mapping
            out[(m["rule_id"], m["labels_key"])] = AlertState(
                rule_id=m["rule_id"],
                labels_key=m["labels_key"],
                labels=dict(m["labels"] or {}),
                **{c: m[c] for c in _STATE_COLUMNS if c != "labels"},
            )
        return out

    def save(
        self,
        states: Iterable[AlertState],
        deleted: Iterable[tuple[int, str]] = (),
        events: Iterable[AlertEvent] = (),
    ) -> None:
        """Write changed states, delete the instances that went back to inactive and append the evaluation's
        state changes to the history, in one transaction: the history never disagrees with the states."""
        states = list(states)
        deleted = list(deleted)
        events = list(events)
        if not states and not deleted and not events:
            return
        with self._store.begin_write() as conn:
            _insert_events(conn, events)
            keys = [(s.rule_id, s.labels_key) for s in states] + deleted
            for rule_id, lkey in keys:
                conn.execute(
                    sa.delete(alert_states).where(
                        alert_states.c.rule_id == rule_id, alert_states.c.labels_key == lkey
                    )
                )
            if states:
                conn.execute(
                    sa.insert(alert_states),
                    [
                        {
                            "rule_id": s.rule_id,
                            "labels_key": s.labels_key,
                            "labels": s.labels,
                            "state": s.state,
                            "active_at": s.active_at,
                            "fired_at": s.fired_at,
                            "resolved_at": s.resolved_at,
                            "last_value": _float(s.last_value),
                            "last_notified_at": s.last_notified_at,
                            "last_true_at": s.last_true_at,
                            "keep_firing_since": s.keep_firing_since,
                        }
                        for s in states
                    ],
                )

    def instances(self, states: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Every stored alert instance with its rule, by rule name then labels: the state columns plus
        ``rule_name``, ``spec``, ``enabled``, ``project`` (the rule's project, None for a global rule) and
        ``owner`` (that project, else the instance's ``project`` label: who may see it)."""
        q = (
            sa.select(
                alert_states,
                alert_rules.c.name.label("rule_name"),
                alert_rules.c.spec,
                alert_rules.c.enabled,
                projects.c.name.label("project"),
            )
            .join(alert_rules, alert_rules.c.id == alert_states.c.rule_id)
            .outerjoin(projects, projects.c.id == alert_rules.c.project_id)
            .order_by(alert_rules.c.name, alert_states.c.labels_key)
        )
        if states is not None:
            q = q.where(alert_states.c.state.in_(list(states)))
        with self._store.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            r["labels"] = dict(r["labels"] or {})
            r["owner"] = r["project"] if r["project"] is not None else r["labels"].get("project")
        return rows

    # -- history -------------------------------------------------------------------------------------------

    def log_events(self, events: Iterable[AlertEvent]) -> None:
        """Append state changes to the history in one transaction (the engine passes them to ``save``
        instead, to write them with the states)."""
        events = list(events)
        if events:
            with self._store.begin_write() as conn:
                _insert_events(conn, events)

    def events(
        self,
        *,
        project: str | Collection[str] | None = None,
        start: float | None = None,
        end: float | None = None,
        rule: str | None = None,
        labels_key: str | None = None,
        limit: int | None = 1000,
    ) -> list[AlertEvent]:
        """State changes at ``t`` in ``[start, end)``, newest first: of one project or several (events of
        no project match only ``project=None``, which means every event), of the rules named ``rule``, of
        the instance ``labels_key``."""
        q = sa.select(alert_events).order_by(alert_events.c.t.desc(), alert_events.c.id.desc())
        if isinstance(project, str):
            q = q.where(alert_events.c.project == project)
        elif project is not None:
            q = q.where(alert_events.c.project.in_(sorted(project)))
        if start is not None:
            q = q.where(alert_events.c.t >= start)
        if end is not None:
            q = q.where(alert_events.c.t < end)
        if rule is not None:
            q = q.where(alert_events.c.rule_name == rule)
        if labels_key is not None:
            q = q.where(alert_events.c.labels_key == labels_key)
        if limit is not None:
            q = q.limit(limit)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return [
            AlertEvent(
                rule_id=m["rule_id"],
                rule_name=m["rule_name"],
                project=m["project"],
                labels_key=m["labels_key"],
                labels=dict(m["labels"] or {}),
                from_state=m["from_state"],
                to_state=m["to_state"],
                t=m["t"],
                value=m["value"],
                id=m["id"],
            )
            for m in (r._mapping for r in rows)
        ]

    # -- silences --------------------------------------------------------------------------------------

    def add_silence(
        self,
        matchers: list[Mapping[str, str]],
        ends_at: float,
        *,
        starts_at: float | None = None,
        created_by: str = "",
        comment: str = "",
        project: str | None = None,
        now: float | None = None,
    ) -> Silence:
        now = time.time() if now is None else now
        if not matchers:
            raise ValueError("matchers: a silence needs at least one matcher, or it would silence everything")
        for i, m in enumerate(matchers):
            if set(m) != {"label", "op", "value"} or m["op"] not in ("=", "!=", "=~", "!~"):
                raise ValueError(
                    f"matchers[{i}]: expected {{label, op (=, !=, =~, !~), value}}, got {dict(m)!r}"
                )
        starts = now if starts_at is None else starts_at
        if not ends_at > starts:
            raise ValueError(f"ends_at: expected a time after starts_at ({starts}), got {ends_at}")
        silence = Silence(
            id=secrets.token_hex(8),
            matchers=[dict(m) for m in matchers],
            starts_at=starts,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
            created_at=now,
            project=project,
        )
        with self._store.begin_write() as conn:
            conn.execute(
                sa.insert(alert_silences).values(
                    id=silence.id,
                    project=project,
                    matchers=silence.matchers,
                    starts_at=silence.starts_at,
                    ends_at=silence.ends_at,
                    created_by=created_by,
                    comment=comment,
                    created_at=now,
                )
            )
        return silence

    def expire_silence(self, silence_id: str, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        with self._store.begin_write() as conn:
            n = conn.execute(
                sa.update(alert_silences)
                .where(alert_silences.c.id == silence_id, alert_silences.c.ends_at > now)
                .values(ends_at=now)
            ).rowcount
        return bool(n)

    def silence(self, silence_id: str) -> Silence | None:
        """The silence ``silence_id``, active or not; None when there is none."""
        with self._store.connect() as conn:
            row = conn.execute(sa.select(alert_silences).where(alert_silences.c.id == silence_id)).first()
        return None if row is None else Silence(**dict(row._mapping))

    def silences(self, *, active_at: float | None = None, project: str | None = None) -> list[Silence]:
        q = sa.select(alert_silences).order_by(alert_silences.c.starts_at)
        if active_at is not None:
            q = q.where(alert_silences.c.starts_at <= active_at, alert_silences.c.ends_at > active_at)
        if project is not None:
            q = q.where(alert_silences.c.project == project)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return [Silence(**{k: v for k, v in r._mapping.items()}) for r in rows]

    # -- notification log ------------------------------------------------------------------------------

    def log_notification(
        self,
        *,
        rule_id: int | None,
        group_key: str,
        notifier: str,
        t: float,
        status: str,
        payload: dict[str, Any],
        error: str | None = None,
    ) -> None:
        with self._store.begin_write() as conn:
            conn.execute(
                sa.insert(alert_notifications).values(
                    rule_id=rule_id,
                    labels_key=group_key[:1024],
                    notifier=notifier,
                    t=t,
                    status=status,
                    payload=payload,
                    error=error,
                )
            )

    def notifications(
        self,
        rule_id: int | None = None,
        limit: int = 100,
        *,
        start: float | None = None,
        end: float | None = None,
        project: str | None = None,
        where: Callable[[NotificationRecord], bool] | None = None,
    ) -> list[NotificationRecord]:
        """Logged deliveries at ``t`` in ``[start, end)``, newest first: of rule ``rule_id``, concerning
        ``project`` (one of the record's :attr:`~NotificationRecord.projects`), and for which ``where``
        holds. The project and ``where`` filters read at most ``NOTIFICATION_SCAN`` rows."""
        q = (
            sa.select(
                alert_notifications,
                alert_rules.c.name.label("rule_name"),
                projects.c.name.label("rule_project"),
            )
            .outerjoin(alert_rules, alert_rules.c.id == alert_notifications.c.rule_id)
            .outerjoin(projects, projects.c.id == alert_rules.c.project_id)
            .order_by(alert_notifications.c.t.desc(), alert_notifications.c.id.desc())
        )
        if rule_id is not None:
            q = q.where(alert_notifications.c.rule_id == rule_id)
        if start is not None:
            q = q.where(alert_notifications.c.t >= start)
        if end is not None:
            q = q.where(alert_notifications.c.t < end)

        def keep(r: NotificationRecord) -> bool:
            return (project is None or project in r.projects) and (where is None or where(r))

        filtered = project is not None or where is not None
        out: list[NotificationRecord] = []
        page = max(limit, 500) if filtered else limit
        scanned = 0
        with self._store.connect() as conn:
            while True:
                rows = conn.execute(q.limit(page)).all()
                for r in rows:
                    m = r._mapping
                    rec = NotificationRecord(
                        id=m["id"],
                        rule_id=m["rule_id"],
                        group_key=m["labels_key"],
                        notifier=m["notifier"],
                        t=m["t"],
                        status=m["status"],
                        payload=m["payload"] or {},
                        error=m["error"],
                        rule_name=m["rule_name"],
                        rule_project=m["rule_project"],
                    )
                    if keep(rec):
                        out.append(rec)
                        if len(out) == limit:
                            return out
                scanned += len(rows)
                if len(rows) < page or not filtered or scanned >= NOTIFICATION_SCAN:
                    break
                # the next page by key, not offset: rows logged meanwhile do not shift it
                last_t, last_id = rows[-1]._mapping["t"], rows[-1]._mapping["id"]
                q = q.where(
                    sa.or_(
                        alert_notifications.c.t < last_t,
                        sa.and_(alert_notifications.c.t == last_t, alert_notifications.c.id < last_id),
                    )
                )
        return out

    # -- run.alert() calls and cursors ---------------------------------------------------------------------

    def run_alerts(self, after_id: int, limit: int = 1000) -> list[RunAlert]:
        """``run.alert()`` calls stored after the sample id ``after_id``, oldest first."""
        q = (
            sa.select(
                samples.c.id, projects.c.name, samples.c.run_id, runs.c.name, samples.c.t, samples.c.data
            )
            .join(projects, projects.c.id == samples.c.project_id)
            .outerjoin(runs, runs.c.id == samples.c.run_id)
            .where(samples.c.key == RUN_ALERTS_KEY, samples.c.id > after_id)
            .order_by(samples.c.id)
            .limit(limit)
        )
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        out = []
        for sid, project, run_id, run_name, t, data in rows:
            data = data or {}
            out.append(
                RunAlert(
                    sid,
                    project,
                    run_id,
                    run_name,
                    t,
                    str(data.get("title", "")),
                    str(data.get("text", "")),
                    str(data.get("level", "INFO")),
                )
            )
        return out

    def first_run_alert_after(self, t: float) -> int:
        """The sample id just before the first ``run.alert()`` call at or after ``t`` (a starting cursor)."""
        with self._store.connect() as conn:
            first = conn.execute(
                sa.select(sa.func.min(samples.c.id)).where(samples.c.key == RUN_ALERTS_KEY, samples.c.t >= t)
            ).scalar()
            if first is not None:
                return int(first) - 1
            last = conn.execute(sa.select(sa.func.max(samples.c.id))).scalar()
        return int(last or 0)

    def cursor(self, key: str) -> Any:
        with self._store.connect() as conn:
            return conn.execute(sa.select(monitor_state.c.value).where(monitor_state.c.key == key)).scalar()

    def set_cursor(self, key: str, value: Any, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._store.begin_write() as conn:
            conn.execute(sa.delete(monitor_state).where(monitor_state.c.key == key))
            conn.execute(sa.insert(monitor_state).values(key=key, value=value, updated_at=now))
