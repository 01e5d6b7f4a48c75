"""Tokens at the server: every ingest needs one, a token reaches its own project only, read tokens do not
write; the ``token`` commands; ``watchkeeper server`` refuses ``--no-auth`` off loopback and, started for
real, takes a batch from a token holder."""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.cli import app as cli
from watchkeeper.errors import StoreError
from watchkeeper.store import Batch, Points, RunStart, RunUpdate, Store, wire

fastapi = pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.auth import (  # noqa: E402
    ENV_MAX_BODY,
    ENV_NO_AUTH,
    app_from_env,
    is_loopback,
    token_verifier,
)

runner = CliRunner(env={"COLUMNS": "200"})
TOKEN = re.compile(r"^wk_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")


def _plain(text: str) -> str:
    """Output without rich's box drawing and line wrapping."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def _batch(project: str, run: str = "r1", *, also: str | None = None) -> dict:
    """A run start and a point in ``project`` (and a point in ``also``), as the JSON the SDK sends."""
    points = [Points(project, run, ["loss"], [0], [1.0], [0.5], run)]
    if also is not None:
        points.append(Points(also, "model:m@1", ["p99"], [None], [1.0], [0.1]))
    return wire.to_json(
        Batch(runs=[RunStart(id=run, project=project, name="n", created_at=1.0)], points=points)
    )


@pytest.fixture
def store(sqlite_uri, tmp_path):
    s = Store(sqlite_uri, artifact_root=tmp_path / "artifacts")
    yield s
    s.close()


@pytest.fixture
def client(store):
    with TestClient(create_app(store, verify_token=token_verifier(store.tokens))) as c:
        yield c


def _post(client, doc, token=None):
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/ingest", json=doc, headers=headers)


def test_health_needs_no_token_and_ingest_needs_one(client):
    assert client.get("/api/v1/health").json()["status"] == "ok"
    r = _post(client, _batch("a"))
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "missing bearer token" in r.json()["detail"]
    r = client.post("/api/v1/ingest", json=_batch("a"), headers={"authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    for garbage in ("nonsense", "wk_0badc0de_" + "x" * 43):
        r = _post(client, _batch("a"), garbage)
        assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked token"
        assert r.headers["www-authenticate"] == "Bearer"
    assert client.app.state.store.runs.list() == []


def test_a_write_token_writes_its_own_project_and_nothing_else(client, store):
    _, token = store.tokens.create("a", "write")
    r = _post(client, _batch("a"), token)
    assert r.status_code == 200 and r.json()["applied"] is True
    assert [(run.id, run.project) for run in store.runs.list()] == [("r1", "a")]

    r = _post(client, _batch("b", "r2"), token)
    assert r.status_code == 403 and r.json()["detail"] == "this token may not write to project(s) 'b'"
    r = _post(client, _batch("a", "r3", also="b"), token)  # mostly A, one point for B: refused whole
    assert r.status_code == 403 and "'b'" in r.json()["detail"] and "'a'" not in r.json()["detail"]
    assert [run.id for run in store.runs.list()] == ["r1"]
    assert store.signals.history("r3", "loss").t.tolist() == []


def test_a_read_token_cannot_ingest(client, store):
    _, token = store.tokens.create("a", "read")
    r = _post(client, _batch("a"), token)
    assert r.status_code == 403 and "read scope" in r.json()["detail"]
    assert store.runs.list() == []


def test_a_token_cannot_update_a_run_of_another_project(client, store):
    _, token_a = store.tokens.create("a", "write")
    _, token_b = store.tokens.create("b", "write")
    assert _post(client, _batch("b", "rb"), token_b).status_code == 200
    update = wire.to_json(Batch(run_updates=[RunUpdate(id="rb", status="failed", notes="hijacked")]))
    r = _post(client, update, token_a)
    assert r.status_code == 403 and r.json()["detail"] == "this token may not write to project(s) 'b'"
    assert store.runs.get("rb").status == "running" and store.runs.get("rb").notes is None
    assert _post(client, update, token_b).status_code == 200
    assert store.runs.get("rb").status == "failed"


def test_a_revoked_token_is_refused(client, store):
    info, token = store.tokens.create("a", "write")
    assert _post(client, _batch("a"), token).status_code == 200
    store.tokens.revoke(info.id)
    r = _post(client, _batch("a", "r2"), token)
    assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked token"


def test_without_auth_every_request_is_accepted(store):
    with TestClient(create_app(store)) as c:
        assert _post(c, _batch("a")).status_code == 200
        assert _post(c, _batch("b", "r2", also="c")).status_code == 200
    assert sorted(run.project for run in store.runs.list()) == ["a", "b"]


def test_a_store_that_cannot_check_tokens_answers_503(store):
    class Down:
        def verify(self, token: str) -> None:
            raise StoreError("connection refused")

    with TestClient(create_app(store, verify_token=token_verifier(Down()))) as c:
        r = _post(c, _batch("a"), "wk_0badc0de_" + "x" * 43)
    assert r.status_code == 503 and "connection refused" in r.json()["detail"]


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.45.6.7", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("128.0.0.1", False),
        ("192.168.1.20", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses(host, loopback):
    assert is_loopback(host) is loopback


def test_the_worker_factory_reads_its_options_from_the_environment(sqlite_uri, monkeypatch):
    store = Store(sqlite_uri)
    _, token = store.tokens.create("a", "write")
    store.close()
    monkeypatch.setenv("WATCHKEEPER_URI", sqlite_uri)
    monkeypatch.setenv(ENV_MAX_BODY, "100000")
    monkeypatch.delenv(ENV_NO_AUTH, raising=False)
    with TestClient(app_from_env()) as c:
        assert _post(c, _batch("a")).status_code == 401
        assert _post(c, _batch("a"), token).status_code == 200
        big = {
            "id": "b" * 16,
            "samples": [{"project": "a", "key": "k", "t": 1.0, "rows": [{"x": "y" * 200_000}]}],
        }
        assert _post(c, big, token).status_code == 413
    monkeypatch.setenv(ENV_NO_AUTH, "1")
    with TestClient(app_from_env()) as c:
        assert _post(c, _batch("b", "r2")).status_code == 200


# -- the commands ----------------------------------------------------------------------------------------


def test_token_create_prints_the_token_once_and_list_never_shows_it(sqlite_uri):
    r = runner.invoke(cli, ["token", "create", "--project", "fraud", "--scope", "write", "--uri", sqlite_uri])
    assert r.exit_code == 0, r.output
    token = r.stdout.strip()
    assert TOKEN.match(token) and r.stdout == token + "\n"  # alone on stdout, for TOKEN=$(...)
    token_id = token.split("_")[1]
    assert f"created token {token_id} for project 'fraud' with scope write" in _plain(r.stderr)
    r = runner.invoke(
        cli,
        [
            "token",
            "create",
            "-p",
            "fraud",
            "--scope",
            "read",
            "--description",
            "grafana",
            "--uri",
            sqlite_uri,
        ],
    )
    assert r.exit_code == 0, r.output

    r = runner.invoke(cli, ["token", "list", "--uri", sqlite_uri])
    assert r.exit_code == 0, r.output
    out = _plain(r.output)
    assert "tokens (2)" in out and f"{token_id} fraud write" in out and "fraud read grafana" in out
    assert token.split("_", 2)[2] not in r.output
    with Store(sqlite_uri) as store:
        assert store.tokens.verify(token).project == "fraud"


def test_token_revoke(sqlite_uri):
    with Store(sqlite_uri) as store:
        info, _ = store.tokens.create("fraud", "write")
        store.tokens.create("other", "write")
    r = runner.invoke(cli, ["token", "revoke", info.id, "--uri", sqlite_uri])
    assert r.exit_code == 0, r.output
    assert f"revoked token {info.id} of project 'fraud'; running servers refuse it within 30 s" in _plain(
        r.output
    )
    r = runner.invoke(cli, ["token", "revoke", info.id, "--uri", sqlite_uri])
    assert r.exit_code == 0 and "was revoked already" in r.output
    r = runner.invoke(cli, ["token", "revoke", "0badc0de", "--uri", sqlite_uri])
    assert r.exit_code == 1 and "no token with id '0badc0de'" in r.output
    r = runner.invoke(cli, ["token", "list", "--project", "fraud", "--uri", sqlite_uri])
    out = _plain(r.output)
    assert "tokens (1)" in out and "revoked" in out and "other" not in out


def test_token_create_names_a_bad_option(sqlite_uri):
    r = runner.invoke(cli, ["token", "create", "--project", "fraud", "--scope", "admin", "--uri", sqlite_uri])
    assert r.exit_code == 2
    out = _plain(r.output)
    assert "--scope" in out and "expected 'read' or 'write', got 'admin'" in out
    r = runner.invoke(
        cli, ["token", "create", "--project", "x" * 200, "--scope", "read", "--uri", sqlite_uri]
    )
    assert r.exit_code == 2 and "--project" in _plain(r.output)


def test_server_refuses_no_auth_off_loopback(sqlite_uri, monkeypatch):
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append((a, k)))
    r = runner.invoke(cli, ["server", "--no-auth", "--host", "0.0.0.0", "--uri", sqlite_uri])
    assert r.exit_code == 2
    assert "--no-auth is allowed on a loopback address only" in _plain(r.output)
    assert "not on --host 0.0.0.0" in _plain(r.output)
    assert started == []


def test_server_builds_the_app_its_options_ask_for(sqlite_uri, monkeypatch):
    """uvicorn.run replaced: what would be served, without serving it."""
    import uvicorn

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: started.append((a, k)))
    r = runner.invoke(cli, ["server", "--uri", sqlite_uri, "--port", "9123", "--max-body-mb", "1"])
    assert r.exit_code == 0, r.output
    assert "no tokens yet" in r.output and "watchkeeper token create --project P --scope write" in r.output
    ((app,), kwargs) = started.pop()
    assert kwargs == {"host": "127.0.0.1", "port": 9123}
    with Store(sqlite_uri) as store:
        _, token = store.tokens.create("a", "write")
        with TestClient(app) as c:
            assert _post(c, _batch("a")).status_code == 401
            assert _post(c, _batch("a"), token).status_code == 200
            big = {
                "id": "b" * 16,
                "samples": [{"project": "a", "key": "k", "t": 1.0, "rows": [{"x": "y" * 2**20}]}],
            }
            assert _post(c, big, token).status_code == 413

    r = runner.invoke(cli, ["server", "--uri", sqlite_uri, "--no-auth", "--host", "localhost"])
    assert r.exit_code == 0, r.output
    assert "no tokens yet" not in r.output and "no token checks (--no-auth)" in r.output
    ((app,), kwargs) = started.pop()
    with TestClient(app) as c:
        assert _post(c, _batch("b", "r2")).status_code == 200

    for key in ("WATCHKEEPER_URI", ENV_NO_AUTH, ENV_MAX_BODY):  # restored after the test
        monkeypatch.setenv(key, "unset")
    r = runner.invoke(cli, ["server", "--uri", sqlite_uri, "--workers", "3"])
    assert r.exit_code == 0, r.output
    (args, kwargs) = started.pop()
    assert args == ("watchkeeper.server.auth:app_from_env",)
    assert kwargs == {"factory": True, "host": "127.0.0.1", "port": 8080, "workers": 3}
    assert os.environ["WATCHKEEPER_URI"] == sqlite_uri and os.environ[ENV_NO_AUTH] == "0"
    assert os.environ[ENV_MAX_BODY] == str(64 * 2**20)


# -- end to end: the real command, a real port ------------------------------------------------------------


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
_free_port = _servers["free_port"]


def test_the_server_command_serves_a_token_holder(sqlite_uri, tmp_path):
    httpx = pytest.importorskip("httpx", reason="the end-to-end test posts with httpx")
    pytest.importorskip("uvicorn", reason="the server runs on uvicorn")
    with Store(sqlite_uri) as store:
        _, token = store.tokens.create("a", "write")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    argv = [sys.executable, "-c", "from watchkeeper.cli import main; main()"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*argv, "server", "--uri", sqlite_uri, "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"the server exited with {proc.returncode}:\n{log.read_text()}"
            try:
                if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not answer in 60 s:\n{log.read_text()}"
            time.sleep(0.1)
        doc = _batch("a", "e2e")
        r = httpx.post(f"{base}/api/v1/ingest", content=json.dumps(doc), timeout=10)
        assert r.status_code == 401
        r = httpx.post(
            f"{base}/api/v1/ingest",
            content=json.dumps(doc),
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            timeout=10,
        )
        assert r.status_code == 200 and r.json() == {"id": doc["id"], "applied": True}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with Store(sqlite_uri) as store:
        assert store.runs.get("e2e").project == "a"
        assert store.signals.history("e2e", "loss").value.tolist() == [0.5]
    assert "watchkeeper server on http://127.0.0.1" in log.read_text()
