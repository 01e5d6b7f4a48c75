"""ASGI middleware for FastAPI, Starlette and any ASGI app: latency, status and errors per route.

``app.add_middleware(wk.integrations.fastapi.Middleware, run=run)`` records every HTTP request as a call to
the endpoint ``"<METHOD> <route template>"`` (``GET /items/{item_id}``: the template, not the raw path, so
ids in paths do not make one endpoint per id). Requests that matched no route are counted under
``<METHOD> unmatched``. A request's latency runs from the moment the app is called until it returns (the
response body sent); its outcome is the response status, and an exception escaping the app is recorded by
its class and re-raised unchanged. 5xx responses count as errors (``HTTP 503``); 4xx are the client's and
are only counted by status.

Only the ASGI protocol is used, so nothing of FastAPI or Starlette is imported here. The per-request work
is two clock reads and one deque append; aggregation happens off the request path, in the run's writer.
Stages timed inside a request (``run.stage("fetch")``) attach to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from time import perf_counter_ns
from typing import Any

from watchkeeper.sdk import api as _api
from watchkeeper.sdk.watcher import _current_call

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["Middleware"]


class Middleware:
    """Per-route request counts, latency, statuses and errors of an ASGI app, into ``run``'s windows.

    ``run`` defaults to the current run at the time of each request; ``exclude`` lists paths not recorded
    (health checks and the metrics endpoint by default).
    """

    def __init__(
        self,
        app: ASGIApp,
        run: Any = None,
        *,
        exclude: Iterable[str] = ("/health", "/healthz", "/metrics"),
    ) -> None:
        self.app = app
        self.run = run
        self.exclude = frozenset(exclude)

    def _watcher(self) -> Any:
        run = self.run
        if run is None:
            run = _api.current_run()
        return run._watch_target() if run is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.exclude:
            await self.app(scope, receive, send)
            return
        watcher = self._watcher()
        if watcher is None:
            await self.app(scope, receive, send)
            return
        status = 500  # what the server answers if the app raises before starting a response

        async def send_and_see(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        t0 = perf_counter_ns()
        token = _current_call.set(t0)
        error: BaseException | None = None
        try:
            await self.app(scope, receive, send_and_see)
        except BaseException as exc:
            error = exc
            raise
        finally:
            t1 = perf_counter_ns()
            _current_call.reset(token)
            # the route object, read into its template by the aggregator, off the request path
            watcher.record_http(t0, t1, scope.get("method", "GET"), scope.get("route"), status, error)
