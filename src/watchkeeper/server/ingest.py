"""``POST /api/v1/ingest``: one batch from a writer, validated whole, written in one transaction, once.

The body is an :class:`~watchkeeper.server.schema.IngestBatch` (gzip accepted). A batch id applied before is
acknowledged with ``applied: false`` and not applied again, so a client that lost the answer to a timeout
simply sends again. A batch the store refuses (a malformed prediction row, say) gets 422 with the store's
message and nothing of it is written; a store that is unavailable gets 503, which clients retry.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request

from watchkeeper.errors import StoreError
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import IngestBatch, IngestResult

router = APIRouter(prefix="/api/v1", tags=["ingest"])


@router.post("/ingest", response_model=IngestResult)
def ingest(
    batch: IngestBatch, request: Request, who: Annotated[Principal, Depends(principal)]
) -> IngestResult:
    store = request.app.state.store
    projects = batch.projects()
    updated = {u.id for u in batch.run_updates} - {r.id for r in batch.runs}
    if updated:
        owners = store.runs.projects_of(updated)
        unknown = sorted(updated - set(owners))
        if unknown:
            raise HTTPException(422, f"run_updates: unknown run id(s) {', '.join(map(repr, unknown[:10]))}")
        projects |= set(owners.values())
    who.check_write(projects)
    try:
        result = store.write(batch.to_batch())
    except StoreError as exc:
        if exc.transient:
            raise HTTPException(503, f"the store is unavailable, retry: {exc}") from exc
        raise HTTPException(422, str(exc)) from exc
    return IngestResult(id=batch.id, applied=result.applied)
