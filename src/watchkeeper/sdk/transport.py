"""Where a run's batches go. A ``Transport`` is the seam between the SDK and storage: the local transport
writes into a store (the embedded SQLite file or a PostgreSQL); the HTTP transport of [server] sends to a
watchkeeper server. Tests use the local transport over a temporary store."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from watchkeeper.store import Batch, Store, WriteResult


class Transport(Protocol):
    def send(self, batch: Batch) -> WriteResult:
        """Apply a batch (idempotent by batch id); raise ``StoreError`` when it could not be applied."""
        ...

    def put_blob(self, digest: str, source: Path) -> None:
        """Make the file's content available under its sha256 ``digest``."""
        ...

    def download_artifact(self, project: str, ref: str, dest: Path, run_id: str | None) -> Path:
        """Copy an artifact version's files into ``dest`` and record that ``run_id`` used it."""
        ...

    def close(self) -> None: ...

    def after_fork(self) -> Transport:
        """A transport for a forked child process (the parent's connections are not the child's to use)."""
        ...


class LocalTransport:
    """Writes straight into a :class:`~watchkeeper.store.Store` (embedded mode)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def send(self, batch: Batch) -> WriteResult:
        return self.store.write(batch)

    def put_blob(self, digest: str, source: Path) -> None:
        self.store.blobs.put_file(source, digest)

    def download_artifact(self, project: str, ref: str, dest: Path, run_id: str | None) -> Path:
        if run_id is not None:
            ref = self.store.artifacts.record_use(project, ref, run_id).ref
        return self.store.artifacts.download(project, ref, dest)

    def close(self) -> None:
        self.store.close()

    def after_fork(self) -> LocalTransport:
        # the parent's pooled connections stay the parent's: forget them here without closing them
        self.store.engine.dispose(close=False)
        return LocalTransport(Store(self.store.uri, artifact_root=self.store.blobs.root))
