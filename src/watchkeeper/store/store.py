"""The store: one SQLAlchemy Core implementation for every SQL database, picked by URI.

``Store(uri)`` opens (and on first use creates) the database, checks its schema revision, and exposes the
queries by table family (``runs``, ``signals``, ``samples``, ``artifacts``, ``profiles``, ``labels``) and one
write path, :meth:`Store.write`, that applies a :class:`~watchkeeper.store.batch.Batch` in one transaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from watchkeeper.errors import StoreError, WatchkeeperError
from watchkeeper.store import migrate
from watchkeeper.store.alerts import AlertStates
from watchkeeper.store.artifacts import Artifacts, write_artifacts
from watchkeeper.store.batch import Batch, WriteResult
from watchkeeper.store.blobs import BlobStore
from watchkeeper.store.engine import (
    DEFAULT_DIR,
    begin_write,
    create_engine,
    default_uri,
    insert_ignore,
    sqlite_path,
)
from watchkeeper.store.labels import Labels, check_labels, check_predictions, write_labels, write_predictions
from watchkeeper.store.leases import Leases
from watchkeeper.store.profiles import Profiles, write_profiles
from watchkeeper.store.runs import Runs, write_starts, write_updates
from watchkeeper.store.samples import Samples, encode_samples, write_samples
from watchkeeper.store.schema import ingest_batches, projects, series
from watchkeeper.store.signals import Signals, labels_key, write_points
from watchkeeper.store.tokens import Tokens

_FOUND_IDS = "watchkeeper_found_ids"
KEEP_BATCH_IDS = 7 * 86400.0
"""Seconds a batch id is remembered: a resend after longer than this would be applied again."""
PRUNE_BATCH_IDS_EVERY = 1000


def default_artifact_root(uri: str) -> Path:
    """Beside a SQLite file (``<dir>/artifacts``); otherwise ``./.watchkeeper/artifacts``."""
    path = sqlite_path(uri)
    return (path.parent if path is not None else Path(DEFAULT_DIR)) / "artifacts"


class Store:
    """A watchkeeper database and its artifact files.

    >>> store = Store("sqlite://")          # in memory
    >>> store.runs.list()
    []
    >>> store.close()
    """

    def __init__(
        self, uri: str | None = None, *, artifact_root: str | Path | None = None, create: bool = True
    ) -> None:
        self.uri = uri or default_uri()
        self.engine = create_engine(self.uri)
        # what messages name: they reach clients of the server (a 422 or 503 body), so never the password
        self.display_uri = self.engine.url.render_as_string(hide_password=True)
        try:
            migrate.check(self.engine, self.uri, create=create)
        except WatchkeeperError:
            self.engine.dispose()
            raise
        except sa.exc.SQLAlchemyError as exc:
            self.engine.dispose()
            raise StoreError(f"cannot open the store at {self.display_uri}: {exc}") from exc
        self.blobs = BlobStore(artifact_root or default_artifact_root(self.uri))
        self.runs = Runs(self)
        self.signals = Signals(self)
        self.samples = Samples(self)
        self.artifacts = Artifacts(self)
        self.profiles = Profiles(self)
        self.labels = Labels(self)
        self.tokens = Tokens(self)
        self.alerts = AlertStates(self)
        self.leases = Leases(self)
        self._cache_lock = threading.Lock()
        self._project_ids: dict[str, int] = {}
        self._series_ids: dict[tuple[int, str, str, str], int] = {}
        # one in-memory SQLite connection serves every thread, so its use is serialised
        memory = self.engine.dialect.name == "sqlite" and sqlite_path(self.uri) is None
        self._serial: Any = threading.RLock() if memory else None
        # SQLite has one writer at a time: this process's writers queue on a lock that wakes the next one as
        # soon as a write ends, instead of polling SQLite's busy handler, whose growing sleeps (up to 100 ms)
        # gave 8 concurrent ingest requests a p99 of 1.2-1.4 s against 0.4-0.6 s with the lock (the same
        # throughput); writers in other processes still meet the busy handler
        file_sqlite = self.engine.dialect.name == "sqlite" and not memory
        self._write_lock: Any = threading.RLock() if file_sqlite else None
        self._writes = 0

    # -- connections --------------------------------------------------------------------------------------

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A connection for reading."""
        with self._serial or nullcontext(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def begin_write(self) -> Iterator[sa.Connection]:
        """A write transaction, committed on exit."""
        with self._serial or self._write_lock or nullcontext(), begin_write(self.engine) as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the write path -----------------------------------------------------------------------------------

    def write(self, batch: Batch) -> WriteResult:
        """Apply ``batch`` in one transaction, whole or not at all; a batch id seen before is not applied
        again.

        A batch whose predictions or labels are malformed is refused whole, before anything is written, with
        a non-transient ``StoreError`` naming the field.
        """
        try:
            prediction_rows = check_predictions(batch.predictions)
            label_rows = check_labels(batch.labels)
            sample_texts = encode_samples(batch.samples)
        except (TypeError, ValueError) as exc:
            raise StoreError(
                f"writing batch {batch.id} to {self.display_uri} failed: {exc}", transient=False
            ) from exc
        for digest, data in batch.blobs.items():
            self.blobs.put_bytes(data, digest)
        found: dict[tuple, int] = {}  # ids this transaction created or read: cached once it has committed
        try:
            with self.begin_write() as conn:
                conn.info[_FOUND_IDS] = found
                try:
                    applied = self._apply(conn, batch, prediction_rows, label_rows, sample_texts)
                finally:
                    conn.info.pop(_FOUND_IDS, None)
            if found:
                with self._cache_lock:
                    for key, value in found.items():
                        if key[0] == "project":
                            self._project_ids[key[1]] = value
                        else:
                            self._series_ids[key[1:]] = value
            return applied
        except BaseException as exc:
            # ids cached during a rolled-back transaction may not exist, whatever rolled it back (a driver's
            # OverflowError for an integer too wide for SQLite is not an SQLAlchemyError)
            with self._cache_lock:
                self._project_ids.clear()
                self._series_ids.clear()
            if not isinstance(exc, sa.exc.SQLAlchemyError):
                raise
            transient = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError)
            raise StoreError(
                f"writing batch {batch.id} to {self.display_uri} failed: {exc}", transient=transient
            ) from exc

    def _apply(
        self,
        conn: sa.Connection,
        batch: Batch,
        prediction_rows: list,
        label_rows: list,
        sample_texts: list[list[str]],
    ) -> WriteResult:
        # one row with RETURNING: rowcount after executemany is not reliable on every driver
        inserted = conn.execute(
            insert_ignore(conn.dialect, ingest_batches)
            .values(id=batch.id, received_at=time.time())
            .returning(ingest_batches.c.id)
        ).first()
        if inserted is None:
            return WriteResult(applied=False)
        self._writes += 1
        if self._writes % PRUNE_BATCH_IDS_EVERY == 0:
            old = time.time() - KEEP_BATCH_IDS
            conn.execute(ingest_batches.delete().where(ingest_batches.c.received_at < old))
        if batch.runs:
            write_starts(self, conn, batch.runs)
        if batch.run_updates:
            write_updates(conn, batch.run_updates)
        if batch.points:
            write_points(self, conn, batch.points, replace=batch.replace_points)
        if batch.samples:
            write_samples(self, conn, batch.samples, sample_texts)
        versions = write_artifacts(self, conn, batch.artifacts) if batch.artifacts else []
        if batch.profiles:
            write_profiles(self, conn, batch.profiles)
        if prediction_rows:
            write_predictions(self, conn, prediction_rows)
        if label_rows:
            write_labels(self, conn, label_rows)
        return WriteResult(applied=True, artifacts=versions)

    # -- ids, created on first sight and cached --------------------------------------------------------------

    # Only ids of committed rows go into the shared caches: an id read inside a transaction that has not
    # committed yet is kept in the transaction's own ``found`` dict (``conn.info``) and cached by ``write``
    # after the commit. Another thread's write must not see it earlier: on PostgreSQL its insert would
    # reference a row that is not committed and fail the foreign key.

    def project_id(self, conn: sa.Connection, name: str) -> int:
        pid = self._project_ids.get(name)
        if pid is not None:
            return pid
        found = conn.info.get(_FOUND_IDS)
        if found is not None and ("project", name) in found:
            return found[("project", name)]
        conn.execute(insert_ignore(conn.dialect, projects), [{"name": name, "created_at": time.time()}])
        pid = conn.execute(sa.select(projects.c.id).where(projects.c.name == name)).scalar_one()
        if found is not None:
            found[("project", name)] = pid
        return pid

    def series_ids(
        self,
        conn: sa.Connection,
        project: str,
        subject: str,
        run_id: str | None,
        labels: dict[str, str],
        names: set[str],
    ) -> dict[str, int]:
        project_id = self.project_id(conn, project)
        lkey = labels_key(labels)
        cache = self._series_ids
        found = conn.info.get(_FOUND_IDS)
        out = {}
        missing = []
        for name in names:
            key = (project_id, subject, name, lkey)
            sid = cache.get(key)
            if sid is None and found is not None:
                sid = found.get(("series", *key))
            if sid is None:
                missing.append(name)
            else:
                out[name] = sid
        if missing:
            conn.execute(
                insert_ignore(conn.dialect, series),
                [
                    {
                        "project_id": project_id,
                        "subject": subject,
                        "run_id": run_id,
                        "name": name,
                        "labels": dict(labels),
                        "labels_key": lkey,
                    }
                    for name in missing
                ],
            )
            rows = conn.execute(
                sa.select(series.c.name, series.c.id).where(
                    series.c.project_id == project_id,
                    series.c.subject == subject,
                    series.c.labels_key == lkey,
                    series.c.name.in_(missing),
                )
            ).all()
            for name, sid in rows:
                out[name] = sid
                if found is not None:
                    found[("series", project_id, subject, name, lkey)] = sid
        return out
