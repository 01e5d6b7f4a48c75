"""The ingest route: the JSON form of every kind of record round-trips, a resend is acknowledged and not
applied twice, and bad input gets a 4xx naming the field with nothing of the batch written."""

from __future__ import annotations

import gzip
import json
import math

import pytest

from watchkeeper.profile import Profile, profile
from watchkeeper.store import (
    ArtifactFile,
    ArtifactLog,
    Batch,
    LabelRows,
    Points,
    PredictionRows,
    ProfileLog,
    RunStart,
    RunUpdate,
    SampleRows,
    Store,
    wire,
)

fastapi = pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.schema import IngestBatch  # noqa: E402

DIGEST = "ab" * 32


def _everything() -> Batch:
    prof = profile({"x": [1.0, 2.0, float("nan")], "c": ["a", "b", None]})
    return Batch(
        runs=[
            RunStart(id="r1", project="p", name="n", created_at=10.0, config={"lr": float("inf")}, tags=["t"])
        ],
        run_updates=[RunUpdate(id="r1", heartbeat_at=11.0, summary={"loss": float("nan")}, last_step=3)],
        points=[Points("p", "r1", ["loss", "acc"], [0, None], [10.0, 11.0], [float("nan"), -math.inf], "r1")],
        samples=[SampleRows("p", "preds", 12.0, [{"a": 1, "b": {"$float": "nan"}}], run_id="r1", step=2)],
        artifacts=[
            ArtifactLog("p", "model", "model", [ArtifactFile("w.bin", DIGEST, 3)], "r1", {"k": 1}, 13.0)
        ],
        profiles=[ProfileLog("p", "model:m@1", "window", 0.0, 60.0, 3, prof.to_bytes(), 1, "r1")],
        predictions=[
            PredictionRows("p", "model:m@1", ["q1", "q2"], [1.0, 2.0], [{"s": 0.5}, {"s": 0.25}], "r1")
        ],
        labels=[LabelRows("p", "model:m@1", ["q1"], [1], [5.0])],
        blobs={DIGEST: b"abc"},
    )


def test_every_record_round_trips_through_json_and_the_schema():
    batch = _everything()
    doc = json.loads(json.dumps(wire.to_json(batch), allow_nan=False))  # strict JSON
    back = IngestBatch.model_validate(doc).to_batch()
    assert back.id == batch.id and back.blobs == batch.blobs
    assert back.runs == batch.runs and back.run_updates[0].last_step == 3
    assert back.points[0].name == ["loss", "acc"] and back.points[0].step == [0, None]
    assert math.isnan(back.points[0].value[0]) and back.points[0].value[1] == -math.inf
    assert back.samples == batch.samples and back.artifacts == batch.artifacts
    assert Profile.from_bytes(back.profiles[0].data) == Profile.from_bytes(batch.profiles[0].data)
    assert back.predictions == batch.predictions and back.labels == batch.labels


@pytest.fixture
def client(store_uri, tmp_path):
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    with TestClient(create_app(store, max_body=1_000_000)) as c:
        c.store = store
        yield c
    store.close()


def _post(client, doc, gz=False):
    body = json.dumps(doc).encode()
    headers = {"content-type": "application/json"}
    if gz:
        body, headers["content-encoding"] = gzip.compress(body), "gzip"
    return client.post("/api/v1/ingest", content=body, headers=headers)


def test_a_batch_is_applied_once_and_a_resend_is_acknowledged(client):
    doc = wire.to_json(_everything())
    first = _post(client, doc, gz=True)
    assert first.status_code == 200 and first.json() == {"id": doc["id"], "applied": True}
    again = _post(client, doc, gz=True)
    assert again.status_code == 200 and again.json()["applied"] is False
    store = client.store
    assert store.signals.history("r1", "loss").t.tolist() == [10.0]
    assert store.labels.counts("p", "model:m@1") == (2, 1)
    assert len(store.profiles.windows("p", "model:m@1")) == 1
    assert store.runs.get("r1").summary["loss"] != store.runs.get("r1").summary["loss"]  # NaN kept


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d["points"][0].update(t=[1.0]), "points[0]", "t has 1 entries but name has 2"),
        (lambda d: d["points"][0].update(value=["x", 1.0]), "points[0].value[0]", "valid number"),
        (lambda d: d["profiles"][0].update(kind="hourly"), "profiles[0].kind", "'window', 'reference'"),
        (lambda d: d["profiles"][0].update(data="not base64!"), "profiles[0].data", "expected base64"),
        (lambda d: d["runs"][0].pop("project"), "runs[0].project", "Field required"),
        (
            lambda d: d["labels"][0].update(ids=["q1", "q2"]),
            "labels[0]",
            "values has 1 entries but ids has 2",
        ),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs are not permitted"),
        (lambda d: d["blobs"].update({"xyz": "YQ=="}), "blobs", "sha256"),
    ],
)
def test_a_bad_batch_gets_422_naming_the_field_and_nothing_is_written(client, mutate, field, message):
    doc = wire.to_json(_everything())
    mutate(doc)
    r = _post(client, doc)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["field"] == field and message in err["message"]
    assert client.store.runs.list() == [] and client.store.labels.counts("p", "model:m@1") == (0, 0)


def test_malformed_bodies_and_oversized_ones_are_refused(client):
    r = client.post("/api/v1/ingest", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    big = wire.to_json(Batch(samples=[SampleRows("p", "k", 1.0, [{"x": "y" * 2_000_000}])]))
    assert _post(client, big).status_code == 413
    assert _post(client, big, gz=True).status_code == 413  # compresses well, still refused as it inflates
    r = client.post("/api/v1/ingest", content=b"\x1f\x8bnot gzip", headers={"content-encoding": "gzip"})
    assert r.status_code == 400 and "not valid gzip" in r.json()["detail"]
    r = client.post("/api/v1/ingest", content=b"{}", headers={"content-encoding": "br"})
    assert r.status_code == 415


def test_an_update_of_an_unknown_run_is_refused(client):
    doc = wire.to_json(Batch(run_updates=[RunUpdate(id="ghost", heartbeat_at=1.0)]))
    r = _post(client, doc)
    assert r.status_code == 422 and "unknown run id(s) 'ghost'" in r.json()["detail"]


def test_the_store_refusing_a_batch_is_a_422_with_its_message(client):
    doc = wire.to_json(Batch(predictions=[PredictionRows("p", "s", ["a"], [1.0], [{"v": 1}])]))
    doc["predictions"][0]["values"] = [[1, 2]]  # not a dict: the schema says so
    r = _post(client, doc)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "predictions[0].values[0]"


def test_openapi_schema_is_published(client):
    spec = client.get("/openapi.json").json()
    assert "/api/v1/ingest" in spec["paths"] and "IngestBatch" in spec["components"]["schemas"]
