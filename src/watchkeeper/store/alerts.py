"""The alert engine's persistent part: rules as loaded, each alert instance's state, silences, and the log of
every notification sent or failed. A restart reads the states back, so it neither forgets a firing alert
nor sends it again before its repeat interval."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store.schema import (
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
    id: int
    rule_id: int | None
    group_key: str
    notifier: str
    t: float
    status: str
    payload: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


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

    def save(self, states: Iterable[AlertState], deleted: Iterable[tuple[int, str]] = ()) -> None:
        """Write changed states and delete the instances that went back to inactive, in one transaction."""
        states = list(states)
        deleted = list(deleted)
        if not states and not deleted:
            return
        with self._store.begin_write() as conn:
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

    def notifications(self, rule_id: int | None = None, limit: int = 100) -> list[NotificationRecord]:
        q = sa.select(alert_notifications).order_by(alert_notifications.c.t.desc()).limit(limit)
        if rule_id is not None:
            q = q.where(alert_notifications.c.rule_id == rule_id)
        with self._store.connect() as conn:
            rows = conn.execute(q).all()
        return [
            NotificationRecord(
                id=m["id"],
                rule_id=m["rule_id"],
                group_key=m["labels_key"],
                notifier=m["notifier"],
                t=m["t"],
                status=m["status"],
                payload=m["payload"] or {},
                error=m["error"],
            )
            for m in (r._mapping for r in rows)
        ]

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
