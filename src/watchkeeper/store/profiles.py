"""Profiles: serialised dataset profiles of traffic windows and of model versions' references.

The store keeps the bytes (``watchkeeper.profile.Profile.to_bytes()``) and never reads inside them: profiles
are read back and merged by the layers above, so the store stays independent of the profile format.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from watchkeeper.store.batch import ProfileLog
from watchkeeper.store.engine import insert_ignore, positional_insert
from watchkeeper.store.schema import model_versions, profiles, projects, references

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


def model_subject(model: str, version: str) -> str:
    """The subject under which a model version's profiles and signals are kept."""
    return f"model:{model}@{version}"


def parse_model_subject(subject: str) -> tuple[str, str] | None:
    """``(model, version)`` of a deployment subject ``model:<model>@<version>``; None for another subject."""
    if not subject.startswith("model:"):
        return None
    model, at, version = subject[len("model:") :].rpartition("@")
    if not at or not model:
        return None
    return model, version


TRAFFIC_KINDS = ("window", "rollup")
"""Kinds of profiles that hold traffic: windows, and roll-ups (merged old windows)."""


@dataclass(frozen=True, slots=True)
class StoredProfile:
    id: int
    project: str
    subject: str
    kind: str
    window_start: float
    window_end: float
    rows: int
    format_version: int
    data: bytes
    run_id: str | None


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    project: str
    model: str
    version: str
    name: str
    profile_id: int
    rows: int
    run_id: str | None
    created_at: float


class Profiles:
    def __init__(self, store: Store) -> None:
        self._store = store

    def references(self, project: str | None = None, model: str | None = None) -> list[ReferenceInfo]:
        q = (
            sa.select(references, projects.c.name.label("project_name"), profiles.c.rows)
            .join(projects, projects.c.id == references.c.project_id)
            .join(profiles, profiles.c.id == references.c.profile_id)
            .order_by(references.c.model, references.c.version, references.c.name)
        )
        if project is not None:
            q = q.where(projects.c.name == project)
        if model is not None:
            q = q.where(references.c.model == model)
        with self._store.connect() as conn:
            return [
                ReferenceInfo(
                    project=r.project_name,
                    model=r.model,
                    version=r.version,
                    name=r.name,
                    profile_id=r.profile_id,
                    rows=r.rows,
                    run_id=r.run_id,
                    created_at=r.created_at,
                )
                for r in conn.execute(q)
            ]

    def reference(self, project: str, model: str, version: str, name: str = "train") -> StoredProfile:
        """The reference profile ``name`` of a model version; KeyError when there is none."""
        q = (
            sa.select(profiles, projects.c.name.label("project_name"))
            .join(references, references.c.profile_id == profiles.c.id)
            .join(projects, projects.c.id == references.c.project_id)
            .where(
                projects.c.name == project,
                references.c.model == model,
                references.c.version == version,
                references.c.name == name,
            )
        )
        with self._store.connect() as conn:
            row = conn.execute(q).first()
        if row is None:
            raise KeyError(
                f"no reference {name!r} for model {model!r} version {version!r} in project {project!r}"
            )
        return _stored(row)

    def windows(
        self, project: str, subject: str, start: float | None = None, end: float | None = None
    ) -> list[StoredProfile]:
        """Window and roll-up profiles of ``subject`` overlapping [start, end), oldest first. Merged, they
        are the range's traffic: a roll-up is the merge of the old windows it replaced (see
        ``watchkeeper.monitor.retention``), so a range that cuts its span gets all of it."""
        q = (
            sa.select(profiles, projects.c.name.label("project_name"))
            .join(projects, projects.c.id == profiles.c.project_id)
            .where(
                projects.c.name == project,
                profiles.c.subject == subject,
                profiles.c.kind.in_(TRAFFIC_KINDS),
            )
            .order_by(profiles.c.window_start, profiles.c.id)
        )
        if start is not None:
            q = q.where(profiles.c.window_end > start)
        if end is not None:
            q = q.where(profiles.c.window_start < end)
        with self._store.connect() as conn:
            return [_stored(r) for r in conn.execute(q)]

    def deployments(self, projects_in: Iterable[str] | None = None) -> list[Deployment]:
        """Every subject with window (or roll-up) profiles, per project (of ``projects_in``, or all): how
        many, and their time extent, by project then subject."""
        p = profiles.c
        q = (
            sa.select(
                projects.c.name,
                p.subject,
                sa.func.count(),
                sa.func.min(p.window_start),
                sa.func.max(p.window_end),
            )
            .join(projects, projects.c.id == p.project_id)
            .where(p.kind.in_(TRAFFIC_KINDS))
            .group_by(projects.c.name, p.subject)
            .order_by(projects.c.name, p.subject)
        )
        if projects_in is not None:
            q = q.where(projects.c.name.in_(sorted(projects_in)))
        with self._store.connect() as conn:
            return [Deployment(r[0], r[1], int(r[2]), float(r[3]), float(r[4])) for r in conn.execute(q)]


@dataclass(frozen=True, slots=True)
class Deployment:
    """A subject that served traffic: its profiles (windows and roll-ups) and their extent."""

    project: str
    subject: str
    windows: int  # window and roll-up profiles
    first: float  # start of its first window
    last: float  # end of its newest window


def _stored(row: sa.Row) -> StoredProfile:
    m = row._mapping
    return StoredProfile(
        id=m["id"],
        project=m["project_name"],
        subject=m["subject"],
        kind=m["kind"],
        window_start=m["window_start"],
        window_end=m["window_end"],
        rows=m["rows"],
        format_version=m["format_version"],
        data=bytes(m["data"]),
        run_id=m["run_id"],
    )


_COLUMNS = (
    "project_id",
    "subject",
    "run_id",
    "kind",
    "window_start",
    "window_end",
    "rows",
    "format_version",
    "data",
)


def write_profiles(store: Store, conn: sa.Connection, logs: list[ProfileLog]) -> None:
    # profiles that no reference names need no id back: one executemany over plain tuples
    plain = [
        (
            store.project_id(conn, log.project),
            log.subject,
            log.run_id,
            log.kind,
            log.window_start,
            log.window_end,
            log.rows,
            log.format_version,
            log.data,
        )
        for log in logs
        if log.reference is None
    ]
    if plain:
        conn.exec_driver_sql(positional_insert(conn.dialect, profiles, _COLUMNS), plain)
    for log in logs:
        if log.reference is None:
            continue
        project_id = store.project_id(conn, log.project)
        profile_id = conn.execute(
            profiles.insert()
            .values(
                project_id=project_id,
                subject=log.subject,
                run_id=log.run_id,
                kind=log.kind,
                window_start=log.window_start,
                window_end=log.window_end,
                rows=log.rows,
                format_version=log.format_version,
                data=log.data,
            )
            .returning(profiles.c.id)
        ).scalar_one()
        model, version, name = log.reference
        now = time.time()
        conn.execute(
            insert_ignore(conn.dialect, model_versions),
            [
                {
                    "project_id": project_id,
                    "model": model,
                    "version": version,
                    "training_run_id": log.run_id,
                    "created_at": now,
                }
            ],
        )
        where = (
            references.c.project_id == project_id,
            references.c.model == model,
            references.c.version == version,
            references.c.name == name,
        )
        replaced = conn.execute(
            references.update().where(*where).values(profile_id=profile_id, run_id=log.run_id, created_at=now)
        ).rowcount
        if not replaced:
            conn.execute(
                references.insert().values(
                    project_id=project_id,
                    model=model,
                    version=version,
                    name=name,
                    profile_id=profile_id,
                    run_id=log.run_id,
                    created_at=now,
                )
            )
