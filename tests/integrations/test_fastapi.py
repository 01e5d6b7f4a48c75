"""The ASGI middleware on a real FastAPI app, driven through its TestClient (httpx, in process)."""

from __future__ import annotations

import time

import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile
from watchkeeper.store import Store

fastapi = pytest.importorskip("fastapi", reason="fastapi is part of the dev extra")
from fastapi.testclient import TestClient  # noqa: E402


def _app(run) -> fastapi.FastAPI:
    app = fastapi.FastAPI()
    app.add_middleware(wk.integrations.fastapi.Middleware, run=run)

    @app.get("/items/{item_id}")
    def item(item_id: int):
        with run.stage("lookup"):
            time.sleep(0.02)
        return {"id": item_id}

    @app.post("/predict")
    async def predict(body: dict):
        if body.get("x", 0) < 0:
            raise ValueError("negative input")
        return {"score": 0.5}

    @app.get("/unavailable")
    def unavailable():
        return fastapi.responses.JSONResponse({"detail": "down"}, status_code=503)

    @app.get("/health")
    def health():
        return {"ok": True}

    return app


def _traffic(uri: str):
    with Store(uri) as store:
        windows = store.profiles.windows("web", "model:m@1")
    prof = Profile.from_bytes(windows[0].data)
    for w in windows[1:]:
        prof = prof.merge(Profile.from_bytes(w.data))
    return prof.traffic


def test_requests_are_recorded_per_route_template_with_status_errors_and_stages(sqlite_uri):
    run = wk.init(project="web", model="m", version="1", uri=sqlite_uri, window=3600, system_metrics=False)
    client = TestClient(_app(run), raise_server_exceptions=False)
    for i in range(5):
        assert client.get(f"/items/{i}").json() == {"id": i}
    assert client.post("/predict", json={"x": 1}).status_code == 200
    assert client.post("/predict", json={"x": -1}).status_code == 500
    assert client.get("/unavailable").status_code == 503
    assert client.get("/nowhere").status_code == 404
    assert client.get("/items/abc").status_code == 422
    assert client.get("/health").status_code == 200
    run.finish()
    t = _traffic(sqlite_uri)
    eps = t.endpoints
    assert set(eps) == {
        "GET /items/{item_id}",
        "POST /predict",
        "GET /unavailable",
        "GET unmatched",
    }  # one endpoint per template, /health excluded
    items = eps["GET /items/{item_id}"]
    assert items.kind == "http" and items.requests == 6 and items.statuses == {200: 5, 422: 1}
    assert items.errors == {}  # a 422 is the client's error, not the server's
    assert items.latency.quantile(0.5) >= 0.02 * 0.99  # the 20 ms sleep is inside (1% sketch error)
    assert eps["POST /predict"].errors == {"ValueError": 1} and eps["POST /predict"].statuses == {
        200: 1,
        500: 1,
    }
    assert eps["GET /unavailable"].errors == {"HTTP 503": 1}
    assert eps["GET unmatched"].statuses == {404: 1}
    assert t.stages["lookup"].count == 5 and t.stages["lookup"].quantile(0.5) >= 0.02 * 0.99
    assert t.http.requests == 10 and t.calls.requests == 0


def test_without_a_run_the_app_still_serves():
    app = fastapi.FastAPI()
    app.add_middleware(wk.integrations.fastapi.Middleware)  # run=None: the current run, here none

    @app.get("/")
    def root():
        return {"ok": True}

    assert TestClient(app).get("/").json() == {"ok": True}
