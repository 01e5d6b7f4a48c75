"""Artifact files over HTTP: what the SDK's HTTP transport needs for ``log_artifact`` and ``use_artifact``.

* ``HEAD /api/v1/blobs/{digest}?project=P``: 200 if the server holds content with that sha256, else 404.
* ``PUT /api/v1/blobs/{digest}?project=P``: the body (raw bytes; ``Content-Encoding: gzip`` accepted) is
  stored under ``digest`` after checking that it is the sha256 of the body (400 otherwise). Idempotent.
  Blobs are content-addressed and shared by projects, so the token must be allowed to write the project
  named in ``?project=``, the one whose artifact the file belongs to.
* ``GET /api/v1/artifacts/{project}?name=N``: the versions of artifact N (every artifact without ``name``).
* ``GET /api/v1/artifacts/{project}/{ref}/manifest``: a version (``ref`` is ``name``, ``name:latest`` or
  ``name:vN``) and its files (path, sha256, size).
* ``POST /api/v1/artifacts/{project}/{ref}/use`` with ``{"run_id": ...}``: record that the run used the
  version (write access), and answer its manifest.
* ``GET /api/v1/artifacts/{project}/{ref}/files/{path}``: the content of one file of the version, streamed.

Reading needs read access to the project. Artifact versions themselves are logged through ingest (an
``artifacts`` record in a batch), the one write path. The body size limit of the server (``--max-body-mb``)
bounds the size of one uploaded file.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.schema import BINARY, BlobOut, ManifestOut, VersionsOut, problems
from watchkeeper.store import ArtifactVersion, codec
from watchkeeper.store.artifacts import parse_ref

router = APIRouter(prefix="/api/v1", tags=["artifacts"], responses=problems(401, 503))

_DIGEST = re.compile(r"^[0-9a-f]{64}$")
Who = Annotated[Principal, Depends(principal)]
ProjectParam = Annotated[
    str, Query(min_length=1, max_length=128, description="The project the file belongs to.")
]


class UseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run_id: Annotated[str, Field(min_length=1, max_length=64)]


def _check_digest(digest: str) -> None:
    if not _DIGEST.match(digest):
        raise HTTPException(400, f"digest: expected a sha256 as 64 lowercase hex digits, got {digest[:80]!r}")


def _version_doc(v: ArtifactVersion) -> dict[str, Any]:
    return {
        "project": v.project,
        "name": v.name,
        "version": v.version,
        "ref": v.ref,
        "type": v.type,
        "digest": v.digest,
        "size": v.size,
        "file_count": v.file_count,
        "created_by": v.created_by,
        "created_at": v.created_at,
        "metadata": codec.encode(v.metadata, where="metadata"),
    }


def _manifest(store: Any, project: str, ref: str) -> dict[str, Any]:
    try:
        parse_ref(ref)
        version = store.artifacts.get(project, ref)
        files = store.artifacts.files(project, version.ref)
    except ValueError as exc:
        raise HTTPException(422, f"ref: {exc}") from exc
    except KeyError as exc:
        raise HTTPException(404, exc.args[0] if exc.args else f"no artifact {ref!r}") from exc
    return {
        "version": _version_doc(version),
        "files": [{"path": f.path, "digest": f.digest, "size": f.size} for f in files],
    }


@router.head(
    "/blobs/{digest}",
    response_class=Response,
    responses={
        **problems(400, 403),
        200: {"description": "The server holds content with that sha256"},
        404: {"description": "The server holds no content with that sha256"},
    },
)
def blob_exists(digest: str, project: ProjectParam, request: Request, who: Who) -> Response:
    _check_digest(digest)
    who.check_write([project])
    found = request.app.state.store.blobs.exists(digest)
    return Response(status_code=200 if found else 404)


@router.put(
    "/blobs/{digest}",
    response_model=BlobOut,
    responses=problems(400, 403, 413, 415),
    openapi_extra={
        "requestBody": {"required": True, "content": {"application/octet-stream": BINARY}},
    },
)
async def put_blob(digest: str, project: ProjectParam, request: Request, who: Who) -> dict[str, Any]:
    _check_digest(digest)
    who.check_write([project])
    body = await request.body()
    actual = await run_in_threadpool(lambda: hashlib.sha256(body).hexdigest())
    if actual != digest:
        raise HTTPException(
            400, f"the body's sha256 is {actual}, not the digest in the URL ({digest}): the upload is damaged"
        )
    await run_in_threadpool(request.app.state.store.blobs.put_bytes, body, digest)
    return {"digest": digest, "size": len(body)}


@router.get("/artifacts/{project}", response_model=VersionsOut, responses=problems(403))
def list_versions(
    project: str,
    request: Request,
    who: Who,
    name: Annotated[str | None, Query(max_length=256, description="Only this artifact's versions.")] = None,
) -> dict[str, Any]:
    who.check_read(project)
    versions = request.app.state.store.artifacts.list(project)
    return {"versions": [_version_doc(v) for v in versions if name is None or v.name == name]}


@router.get("/artifacts/{project}/{ref}/manifest", response_model=ManifestOut, responses=problems(403, 404))
def manifest(project: str, ref: str, request: Request, who: Who) -> dict[str, Any]:
    who.check_read(project)
    return _manifest(request.app.state.store, project, ref)


@router.post(
    "/artifacts/{project}/{ref}/use",
    response_model=ManifestOut,
    responses=problems(400, 403, 404, 413, 415),
)
def use(project: str, ref: str, body: UseIn, request: Request, who: Who) -> dict[str, Any]:
    store = request.app.state.store
    owner = store.runs.projects_of({body.run_id}).get(body.run_id)
    if owner is None:
        raise HTTPException(422, f"run_id: no run {body.run_id!r} on this server")
    who.check_write({project, owner})
    doc = _manifest(store, project, ref)
    store.artifacts.record_use(project, doc["version"]["ref"], body.run_id)
    return doc


@router.get(
    "/artifacts/{project}/{ref}/files/{path:path}",
    response_class=FileResponse,
    responses={
        **problems(403, 404),
        200: {
            "description": "The file's content; its sha256 in X-Sha256",
            "content": {"application/octet-stream": BINARY},
        },
    },
)
def file(project: str, ref: str, path: str, request: Request, who: Who) -> FileResponse:
    who.check_read(project)
    store = request.app.state.store
    doc = _manifest(store, project, ref)
    found = next((f for f in doc["files"] if f["path"] == path), None)
    if found is None:
        raise HTTPException(404, f"artifact {doc['version']['ref']!r} has no file {path!r}")
    blob = store.blobs.path(found["digest"])
    if not blob.is_file():
        raise HTTPException(
            404, f"the content of {path!r} (sha256 {found['digest']}) is missing from the server's files"
        )
    return FileResponse(blob, media_type="application/octet-stream", headers={"x-sha256": found["digest"]})
