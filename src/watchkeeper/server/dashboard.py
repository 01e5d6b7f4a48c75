"""The web dashboard's files: ``/`` is the page, ``/static/...`` its scripts and styles, all served by the
server itself, so the dashboard works with no network beyond it (nothing from a CDN).

The page is a single HTML shell with plain ES modules (no build step): ``app.js`` routes between pages by
the address's fragment (``#/p/payments/m/fraud-clf/v/1/overview?range=24h``), so every view has an address
that can be bookmarked and shared; each page is one module under ``static/pages/`` that reads its data
from ``/api/v1/views/...`` and draws it. Charts are drawn by plotly.js, which zooms, pans and overlays
series and which Evidently's reports use too; its bundle comes with the ``plotly`` Python package (a
dependency of the ``server`` extra) and is served from there, not copied into this repository.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).with_name("static")
TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
# The page shell may be cached only briefly (a new version of the server serves a new one); scripts and
# styles are revalidated by their ETag, so an upgrade is picked up on the next load.
NO_STORE = {"Cache-Control": "no-cache"}


def plotly_bundle() -> Path | None:
    """plotly.js as the ``plotly`` package ships it (``package_data/plotly.min.js``); None without it."""
    try:
        path = resources.files("plotly") / "package_data" / "plotly.min.js"
    except ModuleNotFoundError:
        return None
    return Path(str(path)) if path.is_file() else None


@router.get("/", response_class=HTMLResponse)
def index() -> HTMLResponse:
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"), headers=NO_STORE)


@router.get("/favicon.ico")
def favicon() -> FileResponse:
    return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    path = plotly_bundle()
    if path is None:
        raise HTTPException(
            503, "the dashboard's charts need the plotly package: pip install 'watchkeeper[server]'"
        )
    return FileResponse(path, media_type="text/javascript", headers=NO_STORE)


@router.get("/static/{path:path}")
def static(path: str) -> FileResponse:
    file = (STATIC / path).resolve()
    if not file.is_relative_to(STATIC.resolve()) or not file.is_file() or file.suffix not in TYPES:
        raise HTTPException(404, f"no dashboard file {path!r}")
    return FileResponse(file, media_type=TYPES[file.suffix], headers=NO_STORE)
