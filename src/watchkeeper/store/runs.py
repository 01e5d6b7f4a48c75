"""Runs: one process's stream of records (a training job, an evaluation, a serving replica).

A run is ``running`` until its process finishes it (``finished``), an uncaught exception ends the process
(``failed``), or it is found dead (``crashed``): the SDK refreshes ``heartbeat_at`` while the process lives,
so a run whose process was killed is recognised by :meth:`Runs.reap` — at once when its process is gone
from this host, otherwise once its heartbeat is older than ``stale_after`` seconds.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from watchkeeper.store import codec
from watchkeeper.store.batch import RunStart, RunUpdate
from watchkeeper.store.engine import insert_ignore
from watchkeeper.store.schema import projects, runs

if TYPE_CHECKING:
    from watchkeeper.store.store import Store

RUNNING = "running"
FINISHED = "finished"
FAILED = "failed"
CRASHED = "crashed"
STATUSES = (RUNNING, FINISHED, FAILED, CRASHED)

HEARTBEAT_EVERY = 15.0
STALE_AFTER = 120.0


@dataclass(frozen=True, slots=True)
class RunInfo:
    id: str
    project: str
    name: str
    job_type: str | None
    group: str | None
    notes: str | None
    tags: list[str]
    config: dict[str, Any]
    summary: dict[str, Any]
    model: str | None
    version: str | None
    status: str
    host: str | None
    pid: int | None
    created_at: float
    heartbeat_at: float
    ended_at: float | None
    exit_code: int | None
    error: str | None
    last_step: int | None

    @property
    def duration(self) -> float:
        end = self.ended_at if self.ended_at is not None else self.heartbeat_at
        return max(0.0, end - self.created_at)


def _info(row: sa.Row) -> RunInfo:
    m = row._mapping
    return RunInfo(
        id=m["id"],
        project=m["project"],
        name=m["name"],
        job_type=m["job_type"],
        group=m["group_name"],
        notes=m["notes"],
        tags=list(m["tags"] or []),
        config=codec.decode(m["config"] or {}),
        summary=codec.decode(m["summary"] or {}),
        model=m["model"],
        version=m["version"],
        status=m["status"],
        host=m["host"],
        pid=m["pid"],
        created_at=m["created_at"],
        heartbeat_at=m["heartbeat_at"],
        ended_at=m["ended_at"],
        exit_code=m["exit_code"],
        error=m["error"],
        last_step=m["last_step"],
    )


def _select() -> sa.Select:
    return sa.select(runs, projects.c.name.label("project")).join(
        projects, projects.c.id == runs.c.project_id
    )


class Runs:
    """Queries over runs. Writes arrive through :meth:`Store.write`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, ref: str, project: str | None = None) -> RunInfo:
        """The run with id ``ref``, or else the one run named ``ref`` (in ``project`` when given)."""
        with self._store.connect() as conn:
            row = conn.execute(_select().where(runs.c.id == ref)).first()
            if row is not None:
                return _info(row)
            q = _select().where(runs.c.name == ref)
            if project is not None:
                q = q.where(projects.c.name == project)
            rows = conn.execute(q.limit(11)).all()
        if not rows:
            where = f" in project {project!r}" if project else ""
            raise KeyError(f"no run with id or name {ref!r}{where}")
        if len(rows) > 1:
            ids = ", ".join(f"{r.id} ({r.project})" for r in rows[:10])
            raise KeyError(f"{len(rows)} runs are named {ref!r}: {ids}; give the run id instead")
        return _info(rows[0])

    def projects_of(self, ids: list[str] | set[str]) -> dict[str, str]:
        """The project of each run id that exists (unknown ids are left out)."""
        if not ids:
            return {}
        q = (
            sa.select(runs.c.id, projects.c.name)
            .join(projects, projects.c.id == runs.c.project_id)
            .where(runs.c.id.in_(sorted(ids)))
        )
        with self._store.connect() as conn:
            return {r[0]: r[1] for r in conn.execute(q)}

    def list(
        self,
        project: str | Iterable[str] | None = None,
        *,
        status: str | None = None,
        job_type: str | None = None,
        model: str | None = None,
        version: str | None = None,
        limit: int | None = 100,
    ) -> list[RunInfo]:
        """Runs, newest first; ``project`` is one project's name or several."""
        q = _select().order_by(runs.c.created_at.desc(), runs.c.id)
        if isinstance(project, str):
            q = q.where(projects.c.name == project)
        elif project is not None:
            q = q.where(projects.c.name.in_(sorted(project)))
        if model is not None:
            q = q.where(runs.c.model == model)
        if version is not None:
            q = q.where(runs.c.version == version)
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            q = q.where(runs.c.status == status)
        if job_type is not None:
            q = q.where(runs.c.job_type == job_type)
        if limit is not None:
            q = q.limit(limit)
        with self._store.connect() as conn:
            return [_info(r) for r in conn.execute(q)]

    def count(self, project: str) -> int:
        q = (
            sa.select(sa.func.count())
            .select_from(runs.join(projects, projects.c.id == runs.c.project_id))
            .where(projects.c.name == project)
        )
        with self._store.connect() as conn:
            return int(conn.execute(q).scalar_one())

    def reap(
        self, *, now: float | None = None, stale_after: float = STALE_AFTER, host: str | None = None
    ) -> list[str]:
        """Mark running runs whose process is gone as crashed; returns their ids.

        A run of this host whose pid no longer exists is crashed at once; any other run is crashed when its
        heartbeat is older than ``stale_after`` seconds.
        """
        now = time.time() if now is None else now
        host = socket.gethostname() if host is None else host
        with self._store.connect() as conn:
            rows = conn.execute(
                sa.select(runs.c.id, runs.c.host, runs.c.pid, runs.c.heartbeat_at).where(
                    runs.c.status == RUNNING
                )
            ).all()
        dead = [
            r.id
            for r in rows
            if (r.host == host and r.pid is not None and not _pid_alive(r.pid))
            or now - r.heartbeat_at > stale_after
        ]
        if dead:
            with self._store.begin_write() as conn:
                conn.execute(
                    runs.update()
                    .where(runs.c.id.in_(dead), runs.c.status == RUNNING)
                    .values(status=CRASHED, ended_at=runs.c.heartbeat_at)
                )
        return dead


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_starts(store: Store, conn: sa.Connection, starts: list[RunStart]) -> None:
    rows = [
        {
            "id": s.id,
            "project_id": store.project_id(conn, s.project),
            "name": s.name,
            "job_type": s.job_type,
            "group_name": s.group,
            "notes": s.notes,
            "tags": list(s.tags),
            "config": codec.encode(s.config, where="config"),
            "summary": {},
            "model": s.model,
            "version": s.version,
            "status": RUNNING,
            "host": s.host,
            "pid": s.pid,
            "created_at": s.created_at,
            "heartbeat_at": s.created_at,
        }
        for s in starts
    ]
    conn.execute(insert_ignore(conn.dialect, runs), rows)


_UPDATABLE = ("heartbeat_at", "status", "tags", "notes", "ended_at", "exit_code", "error", "last_step")


def write_updates(conn: sa.Connection, updates: list[RunUpdate]) -> None:
    for u in updates:
        values: dict[str, Any] = {k: getattr(u, k) for k in _UPDATABLE if getattr(u, k) is not None}
        if u.config is not None:
            values["config"] = codec.encode(u.config, where="config")
        if u.summary is not None:
            values["summary"] = codec.encode(u.summary, where="summary")
        if values:
            conn.execute(runs.update().where(runs.c.id == u.id).values(**values))
