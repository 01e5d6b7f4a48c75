"""``create_app(store)``: the FastAPI application of ``watchkeeper server``.

Routes live in one module per concern (ingest, query, metrics); this module wires them to one Store and
sets the request-body limit. Handlers that touch the database are plain ``def`` functions, which FastAPI
runs in its thread pool, so a slow write never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from watchkeeper._version import __version__
from watchkeeper.server.auth import Principal
from watchkeeper.server.body import DEFAULT_MAX_BODY, BodyLimit
from watchkeeper.store import Store


def create_app(
    store: Store,
    *,
    verify_token: Callable[[str], Principal | None] | None = None,
    max_body: int = DEFAULT_MAX_BODY,
) -> FastAPI:
    """The server over ``store``. ``verify_token`` maps a bearer token to its principal (None: unknown);
    without it every request has full access (``--no-auth``)."""
    from watchkeeper.server import artifacts, ingest, metrics, query

    app = FastAPI(
        title="watchkeeper",
        version=__version__,
        description="Self-hosted ML observability: ingest, queries and Prometheus exposition.",
    )
    app.state.store = store
    app.state.verify_token = verify_token
    app.include_router(ingest.router)
    app.include_router(artifacts.router)
    app.include_router(query.router)
    app.state.traffic_totals = metrics.TrafficTotals(store)
    app.include_router(metrics.router)

    @app.get("/api/v1/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # the field's path and what was wrong, without echoing the (possibly large) input back
        errors = [{"field": _path(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    app.add_middleware(BodyLimit, max_body=max_body)
    return app


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
