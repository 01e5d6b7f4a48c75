"""Artifacts: files a run produced (a model, a plot, a data sample), versioned per name.

A version's content is a manifest of files, each stored once in the blob store under the sha256 of its
bytes. Logging content identical to the latest version of the name reuses that version (and links it to the
logging run) instead of creating a copy, as W&B does.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from watchkeeper.store import codec
from watchkeeper.store.batch import ArtifactFile, ArtifactLog, ArtifactVersion
from watchkeeper.store.engine import insert_ignore
from watchkeeper.store.schema import artifact_files, artifacts, projects, run_artifacts

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


def manifest_digest(files: list[ArtifactFile]) -> str:
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\t{f.digest}\t{f.size}\n".encode())
    return h.hexdigest()


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``"name"`` / ``"name:latest"`` -> (name, None); ``"name:v3"`` or ``"name:3"`` -> (name, 3)."""
    name, _, version = ref.rpartition(":") if ":" in ref else (ref, "", "")
    if not version or version == "latest":
        return name, None
    digits = version[1:] if version.startswith("v") else version
    if not digits.isdigit():
        raise ValueError(f"artifact reference {ref!r}: expected NAME, NAME:latest or NAME:vN")
    return name, int(digits)


def _version(row: sa.Row) -> ArtifactVersion:
    m = row._mapping
    return ArtifactVersion(
        project=m["project"],
        name=m["name"],
        version=m["version"],
        type=m["type"],
        digest=m["digest"],
        size=m["size"],
        file_count=m["file_count"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        metadata=codec.decode(m["metadata"]),
    )


def _select() -> sa.Select:
    return sa.select(artifacts, projects.c.name.label("project")).join(
        projects, projects.c.id == artifacts.c.project_id
    )


class Artifacts:
    def __init__(self, store: Store) -> None:
        self._store = store

    def list(self, project: str | None = None, *, run_id: str | None = None) -> list[ArtifactVersion]:
        """Artifact versions, by name then version; with ``run_id``, those the run logged or used."""
        q = _select().order_by(artifacts.c.name, artifacts.c.version)
        if project is not None:
            q = q.where(projects.c.name == project)
        if run_id is not None:
            q = q.join(run_artifacts, run_artifacts.c.artifact_id == artifacts.c.id).where(
                run_artifacts.c.run_id == run_id
            )
        with self._store.connect() as conn:
            return [_version(r) for r in conn.execute(q)]

    def get(self, project: str, ref: str) -> ArtifactVersion:
        name, version = parse_ref(ref)
        q = _select().where(projects.c.name == project, artifacts.c.name == name)
        q = (
            q.order_by(artifacts.c.version.desc())
            if version is None
            else q.where(artifacts.c.version == version)
        )
        with self._store.connect() as conn:
            row = conn.execute(q.limit(1)).first()
        if row is None:
            raise KeyError(f"project {project!r} has no artifact {ref!r}")
        return _version(row)

    def files(self, project: str, ref: str) -> list[ArtifactFile]:
        av = self.get(project, ref)
        q = (
            sa.select(artifact_files.c.path, artifact_files.c.digest, artifact_files.c.size)
            .join(artifacts, artifacts.c.id == artifact_files.c.artifact_id)
            .join(projects, projects.c.id == artifacts.c.project_id)
            .where(projects.c.name == project, artifacts.c.name == av.name, artifacts.c.version == av.version)
            .order_by(artifact_files.c.path)
        )
        with self._store.connect() as conn:
            return [ArtifactFile(path=r[0], digest=r[1], size=r[2]) for r in conn.execute(q)]

    def record_use(self, project: str, ref: str, run_id: str) -> ArtifactVersion:
        """Record that run ``run_id`` used artifact ``ref``; returns the version it resolved to."""
        av = self.get(project, ref)
        with self._store.begin_write() as conn:
            artifact_id = conn.execute(
                sa.select(artifacts.c.id)
                .join(projects, projects.c.id == artifacts.c.project_id)
                .where(
                    projects.c.name == project, artifacts.c.name == av.name, artifacts.c.version == av.version
                )
            ).scalar_one()
            conn.execute(
                insert_ignore(conn.dialect, run_artifacts),
                [{"run_id": run_id, "artifact_id": artifact_id, "role": "input", "t": time.time()}],
            )
        return av

    def download(self, project: str, ref: str, dest: str | Path) -> Path:
        """Copy the files of an artifact version into directory ``dest``; returns ``dest``."""
        dest = Path(dest)
        for f in self.files(project, ref):
            target = dest / f.path
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._store.blobs.path(f.digest), target)
        return dest


def write_artifacts(store: Store, conn: sa.Connection, logs: list[ArtifactLog]) -> list[ArtifactVersion]:
    out = []
    for log in logs:
        project_id = store.project_id(conn, log.project)
        digest = manifest_digest(log.files)
        latest = conn.execute(
            sa.select(artifacts.c.id, artifacts.c.version, artifacts.c.digest)
            .where(artifacts.c.project_id == project_id, artifacts.c.name == log.name)
            .order_by(artifacts.c.version.desc())
            .limit(1)
        ).first()
        if latest is not None and latest.digest == digest:
            artifact_id = latest.id
        else:
            artifact_id = conn.execute(
                artifacts.insert()
                .values(
                    project_id=project_id,
                    name=log.name,
                    version=1 if latest is None else latest.version + 1,
                    type=log.type,
                    digest=digest,
                    size=sum(f.size for f in log.files),
                    file_count=len(log.files),
                    metadata=codec.encode(log.metadata, where="metadata"),
                    created_by=log.run_id,
                    created_at=log.t,
                )
                .returning(artifacts.c.id)
            ).scalar_one()
            if log.files:  # an empty list would insert one row of NULLs
                conn.execute(
                    artifact_files.insert(),
                    [
                        {"artifact_id": artifact_id, "path": f.path, "digest": f.digest, "size": f.size}
                        for f in log.files
                    ],
                )
        if log.run_id is not None:
            conn.execute(
                insert_ignore(conn.dialect, run_artifacts),
                [{"run_id": log.run_id, "artifact_id": artifact_id, "role": "output", "t": log.t}],
            )
        row = conn.execute(_select().where(artifacts.c.id == artifact_id)).one()
        out.append(_version(row))
    return out
