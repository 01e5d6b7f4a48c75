"""Servers for the tests on 127.0.0.1: a free port, the watchkeeper app (or any ASGI app) under uvicorn in a
thread of the test process, and a real Prometheus scraping it; each started and always stopped.

Loaded by path, as tests/browser.py explains (the tests run with ``--import-mode=importlib``)::

    _servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
    Server, free_port = _servers["Server"], _servers["free_port"]
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from watchkeeper.store import Store


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``create_app(store, **app_options)`` (or a ready ASGI app) under uvicorn on 127.0.0.1, in a thread;
    a context manager that waits until it serves and stops it on exit."""

    def __init__(
        self, target: Store | Any, port: int | None = None, *, lifespan: str = "auto", **app_options: Any
    ) -> None:
        import uvicorn

        if isinstance(target, Store):
            from watchkeeper.server import create_app

            self.store: Store | None = target
            app = create_app(target, **app_options)
        else:
            self.store, app = None, target
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Server:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                raise RuntimeError(f"the test server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(30)


class WebhookSink:
    """A webhook receiver on 127.0.0.1 (``url``) that answers 200 and keeps every request as ``(headers,
    body)``; ``bodies`` are the JSON bodies. ``close()`` stops it."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                sink.requests.append((dict(self.headers), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def prometheus(binary: str, tmp_path: Path, target_port: int, token: str) -> Iterator[str]:
    """A Prometheus on 127.0.0.1 scraping the target every second with a bearer token; yields its URL."""
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: watchkeeper\n    scrape_interval: 1s\n    scrape_timeout: 1s\n"
        f"    authorization:\n      type: Bearer\n      credentials: {token}\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
