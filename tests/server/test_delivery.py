"""Delivery over HTTP when things go wrong, end to end (the issue's two tests).

* ``test_kill_9_of_the_server_while_4_clients_send_loses_and_duplicates_nothing``: a server process over a
  SQLite file is killed with SIGKILL while four client processes log, and restarted on the same port and
  file; every point (and every watched call) each client logged is stored exactly once. About 30 s.
* ``test_network_stop_for_60_seconds_loses_nothing``: a TCP proxy between a client and the server cuts the
  path for 60 seconds (30 s resetting connections, 30 s accepting them and never answering) while the client
  keeps logging; once the path is back nothing is lost. About 70 s: the issue asks for a full minute.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import runpy
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile
from watchkeeper.store import Store

httpx = pytest.importorskip("httpx", reason="the HTTP transport needs httpx (the dev extra)")
pytest.importorskip("fastapi", reason="the server needs fastapi (the dev extra)")
uvicorn = pytest.importorskip("uvicorn", reason="the server needs uvicorn (the dev extra)")


SERVER = """
import sys
import uvicorn
from watchkeeper.server import create_app
from watchkeeper.store import Store

uri, artifacts, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
uvicorn.run(create_app(Store(uri, artifact_root=artifacts)), host="127.0.0.1", port=port, log_level="warning")
"""

CLIENT = """
import json, os, sys, time
import watchkeeper as wk

url, i, n, out, resume = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
run = wk.init(project="delivery", name=f"client-{i}", uri=url, system_metrics=False, flush_interval=0.2,
              window=2.0)
with open(out + ".id", "w") as f:
    f.write(run.id)
watched = run.watch(lambda x: {"score": x / 10}, features=lambda x: {"x": x}, name="predict")
for k in range(n):
    run.log({"v": i * 1_000_000 + k})
    watched(float(k))
    time.sleep(0.01)
while not os.path.exists(resume):  # the test restarts the server before the clients finish
    time.sleep(0.05)
transport = run._transport
run.finish()
with open(out, "w") as f:
    json.dump({"id": run.id, "spooled": transport.spool.spooled, "resent": transport.resent}, f)
"""


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Server, _free_port = _servers["Server"], _servers["free_port"]


def _wait_healthy(url: str, proc: subprocess.Popen | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode}: {proc.stderr.read()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server at {url} did not become healthy within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _window_calls(store: Store, project: str, subject: str) -> tuple[int, int]:
    """(requests of the watched endpoint, rows) summed over every window profile of the subject."""
    windows = store.profiles.windows(project, subject)
    requests = sum(Profile.from_bytes(w.data).traffic.endpoints["predict"].requests for w in windows)
    return requests, sum(w.rows for w in windows)


def test_kill_9_of_the_server_while_4_clients_send_loses_and_duplicates_nothing(tmp_path):
    n, clients = 1200, 4
    db = tmp_path / "server.db"
    uri = f"sqlite:///{db}"
    Store(uri).close()  # created before the server starts, so a restart never races the migration
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "WATCHKEEPER_SPOOL_DIR": str(tmp_path / "spool")}
    env.pop("WATCHKEEPER_TOKEN", None)
    server_cmd = [sys.executable, "-c", SERVER, uri, str(tmp_path / "artifacts"), str(port)]

    def start_server() -> subprocess.Popen:
        proc = subprocess.Popen(server_cmd, env=env, stderr=subprocess.PIPE, text=True)
        _wait_healthy(url, proc)
        return proc

    resume = tmp_path / "resume"
    server = start_server()
    procs: list[subprocess.Popen] = []
    try:
        outs = [tmp_path / f"client-{i}.json" for i in range(clients)]
        for i, out in enumerate(outs):
            cmd = [sys.executable, "-c", CLIENT, url, str(i), str(n), str(out), str(resume)]
            procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
        deadline = time.monotonic() + 60
        while not all(Path(f"{o}.id").exists() for o in outs):  # every client has started its run
            assert time.monotonic() < deadline, "the clients did not start their runs within 60 s"
            for p in procs:
                assert p.poll() is None, f"a client exited early:\n{p.stderr.read()[-3000:]}"
            time.sleep(0.1)
        time.sleep(2.0)
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        time.sleep(5.0)  # longer than one send's retries: the clients must spool
        server = start_server()
        assert all(p.poll() is None for p in procs), "a client exited while the server was away"
        resume.touch()
        errors = []
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, f"a client failed:\n{err[-3000:]}"
            errors.append(err)
        _stop(server)
        results = [json.loads(o.read_text()) for o in outs]
    finally:
        for p in procs:
            _stop(p)
        _stop(server)

    # the outage really made the clients spool, and everything spooled was acknowledged later
    assert sum(r["spooled"] for r in results) > 0
    logs = "\n".join(errors)[-5000:]
    assert not list((tmp_path / "spool").rglob("*.json.gz")), logs
    assert sum(r["resent"] for r in results) == sum(r["spooled"] for r in results), (results, logs)
    with Store(uri) as store:
        for i, r in enumerate(results):
            history = store.signals.history(r["id"], "v")
            assert len(history) == n, f"client {i}: {len(history)} points stored, {n} logged"
            np.testing.assert_array_equal(history.step, np.arange(n))
            np.testing.assert_array_equal(history.value, i * 1_000_000 + np.arange(n, dtype=np.float64))
            assert _window_calls(store, "delivery", r["id"]) == (n, n)
            info = store.runs.get(r["id"])
            assert (info.name, info.status, info.summary["v"]) == (f"client-{i}", "finished", i * 1e6 + n - 1)


# -- the network path stops for a minute -------------------------------------------------------------------


class Proxy:
    """A TCP proxy on 127.0.0.1 in front of ``target_port``. ``cut("reset")`` closes every connection and
    resets new ones; ``cut("blackhole")`` accepts new ones and never answers; ``restore()`` forwards again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.mode = "up"
        self.turned_away = {"reset": 0, "blackhole": 0}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            mode = self.mode
            if mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                self.turned_away[mode] += 1
                continue
            with self._lock:
                self._open.add(conn)
            if mode == "blackhole":
                self.turned_away[mode] += 1
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
                upstream.settimeout(None)
            except OSError:
                self._close(conn)
                continue
            with self._lock:
                self._open.add(upstream)
            for sock in (conn, upstream):  # no Nagle delays on the proxy's hops: forward as it comes
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src)
            self._close(dst)

    def _close(self, s: socket.socket) -> None:
        with self._lock:
            self._open.discard(s)
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        s.close()

    def _close_all(self) -> None:
        with self._lock:
            sockets = list(self._open)
        for s in sockets:
            self._close(s)

    def cut(self, mode: str) -> None:
        self.mode = mode
        self._close_all()

    def restore(self) -> None:
        self.mode = "up"
        self._close_all()  # connections held in the blackhole

    def close(self) -> None:
        self.listener.close()
        self._close_all()
        self._thread.join(5)


def test_network_stop_for_60_seconds_loses_nothing(sqlite_uri, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WATCHKEEPER_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.delenv("WATCHKEEPER_TOKEN", raising=False)
    store = Store(sqlite_uri, artifact_root=tmp_path / "artifacts")
    servers = contextlib.ExitStack()
    port = servers.enter_context(Server(store)).port
    proxy = None
    try:
        _wait_healthy(f"http://127.0.0.1:{port}")
        proxy = Proxy(port)
        run = wk.init(
            project="net",
            uri=f"http://127.0.0.1:{proxy.port}",
            system_metrics=False,
            flush_interval=0.2,
            window=5.0,
        )
        watched = run.watch(lambda x: {"score": x}, features=lambda x: {"x": x}, name="predict")
        logged = 0

        def log_for(seconds: float) -> None:
            nonlocal logged
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                run.log({"v": float(logged)})
                watched(float(logged))
                logged += 1
                time.sleep(0.02)

        with caplog.at_level(logging.WARNING, logger="watchkeeper"):
            log_for(3.0)
            proxy.cut("reset")  # the network path stops: 30 s of reset connections ...
            log_for(30.0)
            proxy.cut("blackhole")  # ... then 30 s of silence (requests time out)
            log_for(30.0)
            proxy.restore()
            log_for(3.0)
            transport = run._transport
            run.finish()
    finally:
        if proxy is not None:
            proxy.close()
        servers.close()

    assert proxy.turned_away["reset"] > 0 and proxy.turned_away["blackhole"] > 0
    assert "cannot be reached" in caplog.text and "can be reached again" in caplog.text
    assert transport.spool.spooled > 0 and transport.resent == transport.spool.spooled
    assert transport.spool.is_empty() and not transport.spool.rejected_dir.exists()
    history = store.signals.history(run.id, "v")
    assert len(history) == logged
    np.testing.assert_array_equal(history.value, np.arange(logged, dtype=np.float64))
    np.testing.assert_array_equal(history.step, np.arange(logged))
    assert _window_calls(store, "net", run.id) == (logged, logged)
    assert store.runs.get(run.id).status == "finished"
    store.close()
