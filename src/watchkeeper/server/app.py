"""``create_app(store)``: the FastAPI application of ``watchkeeper server``.

Routes live in one module per concern (ingest, query, metrics); this module wires them to one Store and
sets the request-body limit. Handlers that touch the database are plain ``def`` functions, which FastAPI
runs in its thread pool, so a slow write never blocks the event loop.

Every answer, errors included, is described in the OpenAPI document (``/openapi.json``), and
``tests/server/test_schemathesis.py`` checks the server against it: a 422 is ``{"detail": [{"field",
"message"}]}`` (:class:`~watchkeeper.server.schema.ValidationProblem`), declared in place of FastAPI's default
``HTTPValidationError`` on every route FastAPI validates input for; the other error codes are declared by
each route.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.models import OpenAPI
from fastapi.responses import JSONResponse

from watchkeeper._version import __version__
from watchkeeper.server.auth import Principal
from watchkeeper.server.body import DEFAULT_MAX_BODY, BodyLimit
from watchkeeper.server.schema import HealthOut, IngestBatch, ValidationProblem
from watchkeeper.store import Store


def create_app(
    store: Store,
    *,
    verify_token: Callable[[str], Principal | None] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """The server over ``store``. ``verify_token`` maps a bearer token to its principal (None: unknown);
    without it every request has full access (``--no-auth``)."""
    from watchkeeper.server import (
        alert_routes,
        artifacts,
        dashboard,
        ingest,
        metrics,
        query,
        views,
        views_anomalies,
        views_compare,
        views_drift,
        views_predictions,
        views_runs,
        views_samples,
    )

    app = FastAPI(
        title="watchkeeper",
        version=__version__,
        description="Self-hosted ML observability: ingest, queries and Prometheus exposition.",
        dependencies=[Depends(_no_nul_params)],
    )
    app.state.store = store
    app.state.verify_token = verify_token
    app.state.max_body = max_body
    app.include_router(ingest.router)
    app.state.run_projects = ingest.RunProjects()
    app.include_router(artifacts.router)
    app.include_router(query.router)
    app.include_router(alert_routes.router)
    app.state.traffic_totals = metrics.TrafficTotals(store)
    app.include_router(metrics.router)
    # the web dashboard: its pages' data, then the page and its files
    app.include_router(views.router)
    app.include_router(views_drift.router)
    app.include_router(views_predictions.router)
    app.include_router(views_compare.router)
    app.include_router(views_runs.router)
    app.include_router(views_samples.router)
    app.include_router(views_anomalies.router)
    app.include_router(dashboard.router)

    @app.get("/api/v1/health", tags=["meta"], response_model=HealthOut)
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _with_ingest_batch(_with_our_422(fastapi_openapi()))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the field's path and what was wrong, without echoing the (possibly large) input back
        errors = [{"field": _path(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(BodyLimit, max_body=max_body)
    # the dashboard's answers and plotly.js (4.8 MB, 1.4 MB gzipped) travel compressed to a browser that asks
    app.add_middleware(GZipMiddleware, minimum_size=2048)
    return app


def _no_nul_params(request: Request) -> None:
    """422 for a path or query parameter holding a NUL character, which PostgreSQL cannot compare with text
    (it would fail the query with a 500); no stored name holds one (ingest refuses them)."""
    bad = [
        {"field": f"{where}.{name}", "message": "contains a NUL character (U+0000); text may not"}
        for where, items in (
            ("path", request.path_params.items()),
            ("query", request.query_params.multi_items()),
        )
        for name, value in items
        if isinstance(value, str) and "\x00" in value
    ]
    if bad:
        raise HTTPException(422, bad[:20])


def _with_our_422(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with FastAPI's default 422 body (``HTTPValidationError``, which this app never
    answers) replaced by :class:`ValidationProblem` where FastAPI declared it."""
    schemas = doc.get("components", {}).get("schemas", {})
    if "HTTPValidationError" not in schemas:
        return doc
    ours = ValidationProblem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(ours.pop("$defs", {}))
    schemas["HTTPValidationError"] = ours
    schemas.pop("ValidationError", None)
    return doc


def _with_ingest_batch(doc: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI document with the schema of the ingest route's JSON body, :class:`IngestBatch`, which the
    route declares by reference: it reads its body itself, in the JSON or the binary form."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    ours = IngestBatch.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(ours.pop("$defs", {}))
    schemas["IngestBatch"] = ours
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    # through FastAPI's own model of the document, as FastAPI renders the schemas it generates itself
    return jsonable_encoder(OpenAPI(**doc), by_alias=True, exclude_none=True)


def _path(loc: tuple | list) -> str:
    """("body", "points", 0, "t") -> "points[0].t"."""
    out = ""
    for part in loc:
        if part == "body" and not out:
            continue
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"
