"""``POST /api/v1/ingest``: one batch from a writer, validated whole, written in one transaction, once.

The body is an :class:`~watchkeeper.server.schema.IngestBatch` in JSON (gzip accepted), or the binary form of
the same document (``Content-Type: application/vnd.watchkeeper.batch``, see :mod:`watchkeeper.store.wire`),
which carries profile bytes and blobs without base64; every answer of the route says which forms it reads in
an ``Accept-Post`` header (as W3C LDP defines it), and the SDK switches to the binary form once it has seen
it there. Both forms are validated by the same models, so an error names the same field.

A batch id applied before is acknowledged with ``applied: false`` and not applied again, whichever form
carries it, so a client that lost the answer to a timeout simply sends again. Before anything is written,
the batch is checked against what the schema cannot see: every run id it refers to names a run of this
server or one the batch starts, and every profile's bytes are a readable profile; a batch that fails a
check, or that the store refuses (a malformed prediction row, say), gets 422 naming the field and nothing of
it is written. A store that is unavailable gets 503, which clients retry.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from watchkeeper.errors import StoreError
from watchkeeper.profile import Profile
from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import BatchProblem, IngestBatch, IngestResult, problems
from watchkeeper.store import Batch, Store, wire

router = APIRouter(prefix="/api/v1", tags=["ingest"], responses=problems(401, 503))

_RUN_RECORDS = ("points", "samples", "artifacts", "profiles", "predictions")
"""The records with an optional ``run_id``."""
ACCEPT_POST = f"{wire.JSON_TYPE}, {wire.BINARY_TYPE}"
"""The ``Accept-Post`` header of the route's answers: the body forms it reads."""
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            wire.JSON_TYPE: {"schema": {"$ref": "#/components/schemas/IngestBatch"}},
            wire.BINARY_TYPE: {
                "schema": {
                    "type": "string",
                    "format": "binary",
                    "description": "The IngestBatch document as a header, each profile's data and each blob "
                    "its size, followed by their raw bytes (see watchkeeper.store.wire)",
                }
            },
        },
    },
    # what FastAPI declares for a route whose body it validates (app.py puts ValidationProblem in its place)
    "responses": {
        "422": {
            "description": "Validation Error",
            "content": {wire.JSON_TYPE: {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}},
        }
    },
}


class RunProjects:
    """The project of each run id this process has seen in the store: a run's project never changes and
    runs are not deleted, so a batch of a known run needs no query (which cost ~5% of an ingest request). A
    run deleted behind the server's back would make the store refuse the batch whole (its foreign key), not
    write part of it."""

    MAX = 100_000

    def __init__(self) -> None:
        self._known: dict[str, str] = {}
        self._lock = threading.Lock()

    def lookup(self, store: Store, ids: set[str]) -> dict[str, str]:
        known = self._known
        found = {i: known[i] for i in ids if i in known}
        missing = ids - found.keys()
        if missing:
            fetched = store.runs.projects_of(missing)
            with self._lock:
                if len(known) + len(fetched) > self.MAX:
                    known.clear()
                known.update(fetched)
            found.update(fetched)
        return found


async def _body(request: Request) -> bytes:
    return await request.body()


def _validated(text: bytes, context: dict[str, Any] | None = None) -> IngestBatch:
    try:
        return IngestBatch.model_validate_json(text, context=context)
    except ValidationError as exc:
        # the app's handler of FastAPI's own validation errors answers the 422, naming the fields
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


def _read(request: Request, body: bytes) -> tuple[IngestBatch, Batch]:
    """The validated document and the Batch of a body in either form."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == wire.BINARY_TYPE:
        try:
            header, payload = wire.split_binary(body, request.app.state.max_body)
        except ValueError as exc:
            raise HTTPException(400, f"the body is not a readable {wire.BINARY_TYPE}: {exc}") from None
        doc = _validated(header, {"sizes": True})
        return doc, _to_batch(doc, payload)
    # no Content-Type is read as JSON, as FastAPI reads a JSON body
    if (
        media
        and media != wire.JSON_TYPE
        and not (media.startswith("application/") and media.endswith("+json"))
    ):
        raise HTTPException(
            415,
            f"Content-Type {media[:100]!r} is not read here (expected {ACCEPT_POST.replace(', ', ' or ')})",
            headers={"Accept-Post": ACCEPT_POST},
        )
    doc = _validated(body)
    return doc, _to_batch(doc, None)


def _to_batch(doc: IngestBatch, payload: memoryview | None) -> Batch:
    try:
        return doc.to_batch(payload)
    except BatchProblem as exc:
        raise HTTPException(422, [{"field": exc.field, "message": exc.message}]) from None


@router.post(
    "/ingest",
    response_model=IngestResult,
    responses=problems(400, 403, 413, 415),
    openapi_extra=_REQUEST_BODY,
)
def ingest(
    request: Request,
    response: Response,
    who: Annotated[Principal, Depends(principal)],
    body: Annotated[bytes, Depends(_body)],
) -> IngestResult:
    store: Store = request.app.state.store
    batch, written = _read(request, body)
    response.headers["Accept-Post"] = ACCEPT_POST
    projects = batch.projects()
    started = {r.id for r in batch.runs}
    updated = {u.id for u in batch.run_updates} - started
    referenced = {
        (key, i): r.run_id
        for key in _RUN_RECORDS
        for i, r in enumerate(getattr(batch, key))
        if r.run_id is not None and r.run_id not in started
    }
    owners = request.app.state.run_projects.lookup(store, updated | set(referenced.values()))
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
