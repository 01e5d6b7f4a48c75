"""The SDK over HTTP: a run sent to a real server (uvicorn on 127.0.0.1, in a thread) stores exactly what the
embedded mode stores; tokens refused at init raise; an unreachable server at init spools; retries, refusals
and the spool's rules (bound, order, atomic files, moving refused batches aside, the lock)."""

from __future__ import annotations

import contextlib
import fcntl
import gzip
import hashlib
import json
import logging
import math
import os
import runpy
import time
from pathlib import Path

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.errors import StoreError
from watchkeeper.profile import Profile, profile
from watchkeeper.sdk.spool import Sent, Spool
from watchkeeper.store import (
    ArtifactFile,
    ArtifactLog,
    Batch,
    Points,
    ProfileLog,
    RunStart,
    RunUpdate,
    Store,
    wire,
)

httpx = pytest.importorskip("httpx", reason="the HTTP transport needs httpx (the dev extra)")
pytest.importorskip("fastapi", reason="the server needs fastapi (the dev extra)")
uvicorn = pytest.importorskip("uvicorn", reason="the server needs uvicorn (the dev extra)")

from watchkeeper.sdk.http import HttpTransport, default_spool_dir  # noqa: E402
from watchkeeper.server.auth import Principal  # noqa: E402

_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Server, _free_port = _servers["Server"], _servers["free_port"]


@pytest.fixture
def spool_root(tmp_path, monkeypatch) -> Path:
    """Spools under the test's directory, never in the developer's ~/.cache."""
    root = tmp_path / "spool"
    monkeypatch.setenv("WATCHKEEPER_SPOOL_DIR", str(root))
    monkeypatch.delenv("WATCHKEEPER_TOKEN", raising=False)
    return root


@pytest.fixture
def server(store_uri, tmp_path, spool_root):
    store = Store(store_uri, artifact_root=tmp_path / "server-artifacts")
    with Server(store) as s:
        yield s
    store.close()


# -- the same run, embedded and over HTTP ---------------------------------------------------------------


def _scenario(run: wk.Run, tmp: Path) -> dict:
    """Everything a run can send: points (NaN and inf too), a table, an artifact logged and used, a reference
    profile and watched calls."""
    for i in range(30):
        row = {"loss": 1.0 / (i + 1), "acc": i / 30, "val": {"loss": 2.0 / (i + 1)}}
        if i == 5:
            row["loss"] = math.nan
        if i == 7:
            row["acc"] = math.inf
        run.log(row)
    run.log({"preds": wk.Table(columns=["id", "label"], data=[[1, "cat"], [2, "dog"], [3, None]])})
    run.summary["best"] = 0.97
    (tmp / "model").mkdir(parents=True)
    (tmp / "model" / "weights.bin").write_bytes(bytes(range(256)) * 64)
    (tmp / "model" / "sub").mkdir()
    (tmp / "model" / "sub" / "config.json").write_text('{"layers": 3}')
    version = run.log_artifact(
        tmp / "model", name="model", type="model", metadata={"acc": 0.9, "x": math.inf}
    )
    again = run.log_artifact(tmp / "model", name="model", type="model")  # same content: same version
    used = run.use_artifact("model:latest", root=tmp / "used")
    rng = np.random.default_rng(3)
    reference = {
        "amount": rng.lognormal(3, 1, 500).tolist(),
        "country": rng.choice(["de", "fr"], 500).tolist(),
    }
    run.log_reference(reference)

    def predict(x: float) -> dict:
        if x < 0:
            raise ValueError("negative")
        return {"score": x / 100}

    watched = run.watch(predict, features=lambda x: {"f": x}, name="predict")
    for x in range(-5, 60):
        with contextlib.suppress(ValueError):
            watched(float(x))
    return {"version": version, "again": again, "used": used}


def _stored(store: Store, run_id: str) -> dict:
    """What the store holds of a run, without ids and timestamps."""
    info = store.runs.get(run_id)
    summaries = [
        (s.name, s.step, s.count, repr(s.last), repr(s.min), repr(s.max))
        for s in store.signals.summaries(run_id)
    ]
    histories = {n: store.signals.history(run_id, n) for n in store.signals.names(run_id)}
    windows = store.profiles.windows("p", "model:m@1")
    merged = Profile.from_bytes(windows[0].data)
    for w in windows[1:]:
        merged = merged.merge(Profile.from_bytes(w.data))
    endpoint = merged.traffic.endpoints["predict"]
    (ref_info,) = store.profiles.references("p")
    artifacts = [
        (v.name, v.version, v.type, v.digest, v.size, v.file_count, v.metadata)
        for v in store.artifacts.list("p", run_id=run_id)
    ]
    return {
        "status": info.status,
        "summary": info.summary,
        "config": info.config,
        "summaries": summaries,
        "steps": {n: h.step.tolist() for n, h in histories.items()},
        "values": {n: repr(h.value.tolist()) for n, h in histories.items()},
        "table": store.samples.table(run_id, "preds").rows,
        "window_rows": sum(w.rows for w in windows),
        "requests": (endpoint.requests, endpoint.errors),
        "feature": (merged["f"].count, merged["f"].mean, merged["f"].min, merged["f"].max),
        "reference": (
            ref_info.rows,
            Profile.from_bytes(store.profiles.reference("p", "m", "1").data),
        ),
        "artifacts": artifacts,
        "files": [(f.path, f.digest, f.size) for f in store.artifacts.files("p", "model:v1")],
    }


def test_a_run_over_http_stores_what_the_embedded_mode_stores(server, tmp_path):
    local_uri = f"sqlite:///{tmp_path}/embedded/watchkeeper.db"  # not the server's store, whichever it is
    options = dict(project="p", model="m", version=1, config={"lr": 0.1}, system_metrics=False, window=3600.0)
    local = wk.init(uri=local_uri, artifact_root=tmp_path / "local-artifacts", **options)
    local_out = _scenario(local, tmp_path / "local")
    local.finish()
    remote = wk.init(uri=server.url, **options)
    assert isinstance(remote._transport, HttpTransport)
    remote_out = _scenario(remote, tmp_path / "remote")
    remote.finish()

    with Store(local_uri, artifact_root=tmp_path / "local-artifacts") as store:
        expected = _stored(store, local.id)
    got = _stored(server.store, remote.id)
    assert got == expected
    # hand-checked anchors, so that two identical mistakes cannot pass
    assert got["status"] == "finished" and got["summary"]["best"] == 0.97
    assert got["steps"]["loss"] == list(range(30)) and got["values"]["loss"].count("nan") == 1
    assert got["requests"] == (65, {"ValueError": 5}) and got["window_rows"] == 65
    assert got["feature"][0] == 65 and got["feature"][1] == pytest.approx(27.0)
    assert got["reference"][0] == 500
    assert [a[:2] for a in got["artifacts"]] == [("model", 1), ("model", 1)]  # logged, then used
    assert got["artifacts"][0][6] == {"acc": 0.9, "x": math.inf}
    assert got["files"][0][:1] == ("sub/config.json",) and got["files"][1][2] == 256 * 64

    v, again = remote_out["version"], remote_out["again"]
    assert (v.name, v.version, v.created_by, v.file_count) == ("model", 1, remote.id, 2)
    assert again == v
    assert v.digest == local_out["version"].digest and v.metadata == {"acc": 0.9, "x": math.inf}
    used = remote_out["used"]
    assert (used / "weights.bin").read_bytes() == bytes(range(256)) * 64
    assert (used / "sub" / "config.json").read_text() == '{"layers": 3}'
    assert not any(default_spool_dir(server.url).glob("*.json.gz"))


def test_token_comes_from_the_environment_and_a_refused_token_fails_init_naming_it(
    store_uri, tmp_path, spool_root, monkeypatch
):
    tokens = {"good": Principal(frozenset({"p"}), "write"), "reader": Principal(frozenset({"p"}), "read")}
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    with Server(store, verify_token=tokens.get) as s:
        with pytest.raises(StoreError, match=r"needs a token: pass one with wk\.init") as info:
            wk.init(project="p", uri=s.url, system_metrics=False)
        assert info.value.transient is False
        with pytest.raises(StoreError, match=r"refused the token \(HTTP 401: unknown or revoked token\)"):
            wk.init(project="p", uri=s.url, token="wrong", system_metrics=False)
        with pytest.raises(StoreError, match=r"does not allow this token.*HTTP 403.*scope write"):
            wk.init(project="p", uri=s.url, token="reader", system_metrics=False)
        with pytest.raises(StoreError, match="HTTP 403: this token may not write to project"):
            wk.init(project="other", uri=s.url, token="good", system_metrics=False)
        monkeypatch.setenv("WATCHKEEPER_TOKEN", "good")
        monkeypatch.setenv("WATCHKEEPER_URI", s.url)
        run = wk.init(project="p", system_metrics=False)
        run.log({"x": 1.5})
        run.finish()
        assert store.signals.history(run.id, "x").value.tolist() == [1.5]
        assert [r.id for r in store.runs.list("p")] == [run.id]  # the refused inits left nothing
    store.close()


def test_an_unreachable_server_at_init_spools_and_the_next_process_delivers(
    store_uri, tmp_path, spool_root, caplog
):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        run = wk.init(project="p", uri=url, system_metrics=False, flush_interval=0.05)
        for i in range(200):
            run.log({"x": float(i)})
        run.finish()
    assert f"run {run.id} is not on the server at {url} yet" in caplog.text
    assert "cannot be reached" in caplog.text and "still in the spool" in caplog.text
    spooled = sorted(p.name for p in default_spool_dir(url).glob("*.json.gz"))
    assert len(spooled) >= 2 and spooled[0].endswith(".run.json.gz")  # the start first, then the rest

    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    with Server(store, port=port):
        later = HttpTransport(url)  # any later process that sends to this server
        later.close()
        assert later.resent == len(spooled)
    info = store.runs.get(run.id)
    assert info.status == "finished" and info.summary["x"] == 199.0
    assert store.signals.history(run.id, "x").value.tolist() == [float(i) for i in range(200)]
    assert not list(default_spool_dir(url).glob("*.json.gz"))
    store.close()


# -- retries and refusals, against an in-process httpx transport ---------------------------------------


class FakeServer:
    """Answers ingest requests from a script of status codes (the last one repeats); records every request."""

    def __init__(self, statuses: list[int | Exception]) -> None:
        self.statuses = statuses
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses[min(len(self.requests), len(self.statuses)) - 1]
        if isinstance(status, Exception):
            raise status
        if status == 200:
            doc = json.loads(gzip.decompress(request.content))
            return httpx.Response(200, json={"id": doc["id"], "applied": True})
        return httpx.Response(status, json={"detail": f"scripted {status}"})

    def batch_ids(self) -> list[str]:
        return [json.loads(gzip.decompress(r.content))["id"] for r in self.requests]


def _transport(fake: FakeServer, tmp_path: Path, **kw) -> HttpTransport:
    return HttpTransport(
        "http://wk.invalid:8080",
        "tok",
        spool_dir=tmp_path / "spool",
        http_transport=httpx.MockTransport(fake),
        **kw,
    )


def _points(n: int = 3) -> Batch:
    return Batch(points=[Points("p", "r1", ["x"] * n, list(range(n)), [1.0] * n, [math.nan] * n, "r1")])


def test_transient_answers_are_retried_with_the_same_gzip_json_body(tmp_path):
    fake = FakeServer([503, 502, 200])
    transport = _transport(fake, tmp_path, retry_time=30.0)
    batch = _points()
    assert transport.send(batch).applied is True
    assert len(fake.requests) == 3 and set(fake.batch_ids()) == {batch.id}
    for r in fake.requests:
        assert r.url.path == "/api/v1/ingest" and r.headers["content-encoding"] == "gzip"
        assert r.headers["authorization"] == "Bearer tok"
        assert r.headers["user-agent"].startswith(f"watchkeeper/{wk.__version__} ")
        assert json.loads(gzip.decompress(r.content)) == json.loads(json.dumps(wire.to_json(batch)))
    assert json.loads(gzip.decompress(fake.requests[0].content))["points"][0]["value"] == [None] * 3
    assert transport.spool.is_empty()
    transport.close()


def test_a_server_that_stays_away_gets_the_batch_spooled_after_the_retries(tmp_path):
    fake = FakeServer([httpx.ConnectError("refused")])
    transport = _transport(fake, tmp_path, retries=3, retry_time=30.0)
    batch = _points()
    result = transport.send(batch)
    assert result.applied is False and len(fake.requests) == 3
    (path,) = transport.spool.pending()
    assert batch.id in path.name
    assert json.loads(gzip.decompress(path.read_bytes())) == json.loads(json.dumps(wire.to_json(batch)))
    transport._client.close()


@pytest.mark.parametrize(
    ("status", "message"), [(422, r"refused it \(HTTP 422: scripted 422\)"), (401, "refused the token")]
)
def test_a_refusal_raises_for_good_and_is_not_spooled(tmp_path, status, message):
    fake = FakeServer([status])
    transport = _transport(fake, tmp_path)
    with pytest.raises(StoreError, match=message) as info:
        transport.send(_points())
    assert info.value.transient is False and len(fake.requests) == 1 and transport.spool.is_empty()
    transport.close()


def test_an_artifact_batch_is_not_spooled_and_raises_when_the_server_is_away(tmp_path):
    fake = FakeServer([httpx.ConnectError("refused")])
    transport = _transport(fake, tmp_path, retries=2)
    record = ArtifactLog("p", "model", "model", [ArtifactFile("w.bin", "ab" * 32, 3)], "r1")
    with pytest.raises(StoreError, match="the artifact was not logged") as info:
        transport.send(Batch(artifacts=[record]))
    assert info.value.transient is True and transport.spool.is_empty()
    transport._client.close()


def test_spooled_batches_go_first_oldest_first_and_a_refused_one_moves_aside(tmp_path, caplog):
    fake = FakeServer([200])
    transport = _transport(fake, tmp_path)
    spooled = [_points(), Batch(run_updates=[RunUpdate(id="gone", status="finished")]), _points()]
    for b in spooled:
        transport.spool.put(gzip.compress(json.dumps(wire.to_json(b)).encode()), b.id)
    fake.statuses = [200, 422, 200, 200]
    new = _points()
    with caplog.at_level(logging.ERROR, logger="watchkeeper"):
        assert transport.send(new).applied is True
    assert fake.batch_ids() == [b.id for b in spooled] + [new.id]
    assert transport.spool.is_empty() and transport.resent == 2
    (aside,) = transport.spool.rejected_dir.iterdir()
    assert spooled[1].id in aside.name
    assert f"refused spooled batch {spooled[1].id} (HTTP 422: scripted 422)" in caplog.text
    transport.close()


def test_a_spooled_batch_answered_500_five_times_is_moved_aside(tmp_path):
    fake = FakeServer([500])
    transport = _transport(fake, tmp_path)
    b = _points()
    transport.spool.put(gzip.compress(json.dumps(wire.to_json(b)).encode()), b.id)
    outcomes = [transport._resend(p.read_bytes(), p) for _ in range(5) for p in transport.spool.pending()[:1]]
    assert outcomes == [Sent.FAILED] * 4 + [Sent.REJECTED]
    transport._client.close()


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="uri: expected http://host:port"):
        HttpTransport("ftp://host")
    with pytest.raises(ValueError, match="token must be a non-empty ASCII string"):
        HttpTransport("http://h:1", "")
    with pytest.raises(ValueError, match="spool_max_bytes must be a positive number of bytes"):
        HttpTransport("http://h:1", spool_dir="/tmp/x", spool_max_bytes=0)
    with pytest.raises(ValueError, match="retry_time must be a positive number"):
        HttpTransport("http://h:1", spool_dir="/tmp/x", retry_time=-1)


def test_the_default_spool_dir_is_per_server_and_token(monkeypatch, tmp_path):
    monkeypatch.setenv("WATCHKEEPER_SPOOL_DIR", str(tmp_path))
    assert default_spool_dir("http://127.0.0.1:8080") == tmp_path / "127.0.0.1-8080"
    assert default_spool_dir("https://wk.example.com").name == "wk.example.com-443"
    a, b = default_spool_dir("http://h:1", "t1"), default_spool_dir("http://h:1", "t2")
    assert a != b and a.name.startswith("h-1-") and default_spool_dir("http://h:1", "t1") == a
    monkeypatch.delenv("WATCHKEEPER_SPOOL_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_spool_dir("http://h:1") == tmp_path / "cache" / "watchkeeper" / "spool" / "h-1"


# -- the spool itself ------------------------------------------------------------------------------------


def _acknowledge_all(into: list[str]):
    def send(body: bytes, path: Path) -> Sent:
        into.append(body.decode())
        return Sent.ACKNOWLEDGED

    return send


def test_past_its_bound_the_spool_drops_the_oldest_and_warns_once_per_burst_with_counts(tmp_path, caplog):
    spool = Spool(tmp_path, max_bytes=10_000)
    with caplog.at_level(logging.WARNING, logger="watchkeeper"):
        for i in range(10):
            spool.put(f"{i}".encode() * 3000, f"b{i}")
        kept = [p.name.split("-")[-1] for p in spool.pending()]
        assert kept == ["b7.json.gz", "b8.json.gz", "b9.json.gz"]  # 3 x 3000 bytes fit in 10 000
        assert spool.size() == (3, 9000)
        (first,) = caplog.records
        assert "dropped the oldest 1 batch(es) (2.9 KiB (3000 bytes))" in first.getMessage()
        got: list[str] = []
        assert spool.drain(_acknowledge_all(got)).empty
        assert [g[0] for g in got] == ["7", "8", "9"]
        assert len(caplog.records) == 2
        assert "7 batch(es) (20.5 KiB (21000 bytes)) were dropped" in caplog.records[1].getMessage()
        # a second burst is reported on its own
        for i in range(5):
            spool.put(b"z" * 4000, f"c{i}")
        spool.end_burst()
    assert (spool.dropped_batches, spool.dropped_bytes) == (7 + 3, 21000 + 12000)
    assert "3 batch(es) (11.7 KiB (12000 bytes)) were dropped" in caplog.records[-1].getMessage()
    assert len(caplog.records) == 4


def test_batches_that_start_a_run_are_never_dropped(tmp_path):
    spool = Spool(tmp_path, max_bytes=5000)
    spool.put(b"s" * 100, "start", starts_run=True)
    for i in range(5):
        spool.put(b"p" * 2000, f"p{i}")
    names = [p.name.split("-")[-1] for p in spool.pending()]
    assert names == ["start.run.json.gz", "p3.json.gz", "p4.json.gz"]


def test_spooled_batches_of_several_processes_are_resent_oldest_first(tmp_path):
    a, b = Spool(tmp_path), Spool(tmp_path)  # two processes sharing the directory
    order = []
    for i in range(6):
        (a if i % 3 else b).put(f"batch {i}".encode(), f"id{i}")
        order.append(f"batch {i}")
    got: list[str] = []
    result = Spool(tmp_path).drain(_acknowledge_all(got))
    assert got == order and result.sent == 6 and result.empty and not a.pending()


def test_a_failed_resend_stops_the_drain_and_keeps_the_rest_in_order(tmp_path):
    spool = Spool(tmp_path)
    for i in range(4):
        spool.put(f"{i}".encode(), f"id{i}")
    seen = []

    def send(body: bytes, path: Path) -> Sent:
        seen.append(body)
        return Sent.ACKNOWLEDGED if body == b"0" else Sent.FAILED

    result = spool.drain(send)
    assert seen == [b"0", b"1"] and (result.sent, result.empty) == (1, False)
    assert [p.read_bytes() for p in spool.pending()] == [b"1", b"2", b"3"]


def test_a_refused_file_is_moved_aside_and_the_drain_goes_on(tmp_path):
    spool = Spool(tmp_path)
    for i in range(3):
        spool.put(f"{i}".encode(), f"id{i}")
    result = spool.drain(lambda body, path: Sent.REJECTED if body == b"1" else Sent.ACKNOWLEDGED)
    assert (result.sent, result.rejected, result.empty) == (2, 1, True)
    assert [p.read_bytes() for p in spool.rejected_dir.iterdir()] == [b"1"]


def test_a_truncated_temporary_file_is_ignored_and_removed_once_stale(tmp_path):
    spool = Spool(tmp_path)
    spool.put(b"whole", "ok")
    fresh = tmp_path / ".tmp-00000000000000000000001-0000001-000001-half.json.gz"
    stale = tmp_path / ".tmp-00000000000000000000002-0000001-000002-old.json.gz"
    fresh.write_bytes(b"\x1f\x8b trunc")
    stale.write_bytes(b"\x1f\x8b")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert [p.read_bytes() for p in spool.pending()] == [b"whole"]
    got: list[str] = []
    assert spool.drain(_acknowledge_all(got)).empty and got == ["whole"]
    assert fresh.exists() and not stale.exists()


def test_while_another_process_resends_a_drain_leaves_the_files_alone(tmp_path):
    spool = Spool(tmp_path)
    spool.put(b"x", "id")
    fd = os.open(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as another process would, while it resends
        got: list[str] = []
        result = spool.drain(_acknowledge_all(got))
        assert result.busy and not result.empty and got == []
    finally:
        os.close(fd)
    assert spool.drain(_acknowledge_all(got)).sent == 1 and got == ["x"]


def test_a_server_refusing_a_spooled_batch_for_good_moves_it_aside(server, tmp_path, caplog):
    transport = HttpTransport(server.url, spool_dir=tmp_path / "own-spool")
    bad = Batch(run_updates=[RunUpdate(id="no-such-run", status="finished")])
    transport.spool.put(gzip.compress(json.dumps(wire.to_json(bad)).encode()), bad.id)
    good = Batch(runs=[RunStart(id="r1", project="p", name="n", created_at=1.0)])
    with caplog.at_level(logging.ERROR, logger="watchkeeper"):
        assert transport.send(good).applied is True
    assert "unknown run id(s) 'no-such-run'" in caplog.text
    (aside,) = transport.spool.rejected_dir.iterdir()
    assert aside.name.endswith(f"{bad.id}.json.gz")
    assert server.store.runs.get("r1").name == "n"
    transport.close()


# -- the blob and artifact routes -----------------------------------------------------------------------


def test_blob_and_artifact_routes_check_content_scope_and_names(store_uri, tmp_path, spool_root):
    tokens = {"w": Principal(frozenset({"p"}), "write"), "r": Principal(frozenset({"p"}), "read")}
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    data = b"weights" * 100
    digest = hashlib.sha256(data).hexdigest()
    with Server(store, verify_token=tokens.get, max_body=1000) as s, httpx.Client(base_url=s.url) as c:
        w, r = {"authorization": "Bearer w"}, {"authorization": "Bearer r"}
        blob = f"/api/v1/blobs/{digest}"
        assert c.head(blob, params={"project": "p"}, headers=w).status_code == 404
        wrong = c.put(blob, params={"project": "p"}, content=data + b"!", headers=w)
        assert wrong.status_code == 400 and "not the digest in the URL" in wrong.json()["detail"]
        assert c.put(blob, params={"project": "p"}, content=data, headers=r).status_code == 403
        assert c.put(blob, params={"project": "q"}, content=data, headers=w).status_code == 403
        zipped = c.put(
            blob,
            params={"project": "p"},
            content=gzip.compress(data),
            headers={**w, "content-encoding": "gzip"},
        )
        assert zipped.json() == {"digest": digest, "size": 700} and store.blobs.read(digest) == data
        assert c.head(blob, params={"project": "p"}, headers=w).status_code == 200
        assert c.put("/api/v1/blobs/xyz", params={"project": "p"}, content=b"", headers=w).status_code == 400

        run = wk.init(project="p", uri=s.url, token="w", system_metrics=False)
        (tmp_path / "m.bin").write_bytes(data)
        v = run.log_artifact(tmp_path / "m.bin", name="m")
        assert (v.name, v.version, v.size) == ("m", 1, 700)
        (tmp_path / "big.bin").write_bytes(b"x" * 2000)  # over the server's max_body of 1000
        with pytest.raises(StoreError, match=r"\(2000 bytes\) is larger than the server at .* accepts"):
            run.log_artifact(tmp_path / "big.bin")
        manifest = c.get("/api/v1/artifacts/p/m:latest/manifest", headers=r).json()
        assert manifest["files"] == [{"path": "m.bin", "digest": digest, "size": 700}]
        assert manifest["version"]["ref"] == "m:v1"
        assert c.get("/api/v1/artifacts/p/m:v1/files/m.bin", headers=r).content == data
        assert c.get("/api/v1/artifacts/p/m:v1/files/other", headers=r).status_code == 404
        assert c.get("/api/v1/artifacts/p/nope/manifest", headers=r).status_code == 404
        assert c.get("/api/v1/artifacts/p/m:vx/manifest", headers=r).status_code == 422
        use = c.post("/api/v1/artifacts/p/m/use", json={"run_id": "ghost"}, headers=w)
        assert use.status_code == 422 and "no run 'ghost'" in use.json()["detail"]
        assert c.post("/api/v1/artifacts/p/m/use", json={"run_id": run.id}, headers=r).status_code == 403
        with pytest.raises(KeyError, match="no artifact 'nope'"):
            run.use_artifact("nope")
        run.finish()
    store.close()


# -- the binary body form --------------------------------------------------------------------------------


def _profiles_batch(run: str = "r1") -> Batch:
    data = profile({"x": [1.0, 2.0]}).to_bytes()
    return Batch(profiles=[ProfileLog("p", "model:m@1", "window", 0.0, 60.0, 2, data, 1, run)])


class Recording(httpx.HTTPTransport):
    """The network transport, keeping each request's Content-Type."""

    def __init__(self) -> None:
        super().__init__()
        self.types: list[str] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ingest":
            self.types.append(request.headers.get("content-type", ""))
        return super().handle_request(request)


def test_profile_batches_go_binary_once_the_server_lists_the_form_and_are_stored_alike(server, tmp_path):
    recording = Recording()
    transport = HttpTransport(server.url, spool_dir=tmp_path / "spool", http_transport=recording)
    start = Batch(runs=[RunStart(id="r1", project="p", name="n", created_at=1.0)])
    first, second = _profiles_batch(), _profiles_batch()
    for batch in (start, first, _points(), second):
        assert transport.send(batch).applied is True
    # the first answer taught it the form; points carry no bytes and stay gzip JSON
    assert recording.types == ["application/json", wire.BINARY_TYPE, "application/json", wire.BINARY_TYPE]
    assert transport.send(first).applied is False  # a resend of the same id, in the binary form
    stored = server.store.profiles.windows("p", "model:m@1")
    assert [w.data for w in stored] == [first.profiles[0].data, second.profiles[0].data]
    transport.close()


class OldServer(FakeServer):
    """A server that does not read the binary form (FastAPI answers a body it cannot parse with 422), but a
    scripted first answer says it does."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.headers["content-type"] == wire.BINARY_TYPE:
            return httpx.Response(422, json={"detail": [{"field": "body", "message": "not a dict"}]})
        doc = json.loads(gzip.decompress(request.content))
        headers = {"accept-post": f"application/json, {wire.BINARY_TYPE}"} if len(self.requests) == 1 else {}
        return httpx.Response(200, json={"id": doc["id"], "applied": True}, headers=headers)


def test_a_binary_body_the_server_cannot_read_is_sent_again_as_json_and_the_form_dropped(tmp_path):
    fake = OldServer([200])
    transport = _transport(fake, tmp_path)
    assert transport.send(_points()).applied is True  # answered with Accept-Post listing the binary form
    batch = _profiles_batch()
    assert transport.send(batch).applied is True
    types = [r.headers["content-type"] for r in fake.requests]
    assert types == ["application/json", wire.BINARY_TYPE, "application/json"]
    assert json.loads(gzip.decompress(fake.requests[2].content)) == json.loads(
        json.dumps(wire.to_json(batch))
    )
    assert transport.send(_profiles_batch()).applied is True  # no Accept-Post since: JSON only
    assert fake.requests[3].headers["content-type"] == "application/json"
    transport.close()


def test_a_batch_refused_in_both_forms_raises_and_a_spooled_one_is_gzip_json(tmp_path):
    fake = FakeServer([200, 422, 422, httpx.ConnectError("refused")])
    original = fake.__call__

    def answer(request: httpx.Request) -> httpx.Response:
        r = original(request)
        if r.status_code == 200:  # the first answer lists the binary form
            r.headers["accept-post"] = f"application/json, {wire.BINARY_TYPE}"
        return r

    transport = HttpTransport(
        "http://wk.invalid:8080",
        spool_dir=tmp_path / "spool",
        retries=1,
        http_transport=httpx.MockTransport(answer),
    )
    assert transport.send(_points()).applied is True
    with pytest.raises(StoreError, match=r"refused it \(HTTP 422: scripted 422\)"):
        transport.send(_profiles_batch())
    assert [r.headers["content-type"] for r in fake.requests[1:]] == [wire.BINARY_TYPE, "application/json"]
    batch = _profiles_batch()
    assert transport.send(batch).applied is False  # the server is away: spooled
    (path,) = transport.spool.pending()
    assert json.loads(gzip.decompress(path.read_bytes())) == json.loads(json.dumps(wire.to_json(batch)))
    transport._client.close()
