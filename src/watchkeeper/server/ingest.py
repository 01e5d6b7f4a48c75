"""``POST /api/v1/ingest``: one batch from a writer, validated whole, written in one transaction, once.

The body is an :class:`~watchkeeper.server.schema.IngestBatch` (gzip accepted). A batch id applied before is
acknowledged with ``applied: false`` and not applied again, so a client that lost the answer to a timeout
simply sends again. Before anything is written, the batch is checked against what the schema cannot see: every
run id it refers to names a run of this server or one the batch starts, and every profile's bytes are a
readable profile; a batch that fails a check, or that the store refuses (a malformed prediction row, say),
gets 422 naming the field and nothing of it is written. A store that is unavailable gets 503, which clients
retry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from watchkeeper.errors import StoreError
from watchkeeper.profile import Profile
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import IngestBatch, IngestResult, problems
from watchkeeper.store import Batch, Store

router = APIRouter(prefix="/api/v1", tags=["ingest"], responses=problems(401, 503))

_RUN_RECORDS = ("points", "samples", "artifacts", "profiles", "predictions")
"""The records with an optional ``run_id``."""


@router.post("/ingest", response_model=IngestResult, responses=problems(400, 403, 413, 415))
def ingest(
    batch: IngestBatch, request: Request, who: Annotated[Principal, Depends(principal)]
) -> IngestResult:
    store: Store = request.app.state.store
    projects = batch.projects()
    started = {r.id for r in batch.runs}
    updated = {u.id for u in batch.run_updates} - started
    referenced = {
        (key, i): r.run_id
        for key in _RUN_RECORDS
        for i, r in enumerate(getattr(batch, key))
        if r.run_id is not None and r.run_id not in started
    }
    owners = store.runs.projects_of(updated | set(referenced.values()))
    unknown = sorted(updated - set(owners))
    if unknown:
        raise HTTPException(422, f"run_updates: unknown run id(s) {', '.join(map(repr, unknown[:10]))}")
    projects |= {owners[i] for i in updated}
    missing = [
        {
            "field": f"{key}[{i}].run_id",
            "message": f"no run {run_id!r} on this server, nor started in the batch",
        }
        for (key, i), run_id in referenced.items()
        if run_id not in owners
    ]
    if missing:
        raise HTTPException(422, missing[:20])
    who.check_write(projects)
    written = batch.to_batch()
    _check_profiles(written)
    try:
        result = store.write(written)
    except StoreError as exc:
        if exc.transient:
            raise HTTPException(503, f"the store is unavailable, retry: {exc}") from exc
        raise HTTPException(422, str(exc)) from exc
    return IngestResult(id=batch.id, applied=result.applied)


def _check_profiles(batch: Batch) -> None:
    """422 for a profile whose bytes do not read back: stored, it would break every query that merges it."""
    bad = []
    for i, log in enumerate(batch.profiles):
        try:
            Profile.from_bytes(log.data)
        except ValueError as exc:
            bad.append({"field": f"profiles[{i}].data", "message": f"not a readable profile: {exc}"})
    if bad:
        raise HTTPException(422, bad[:20])
