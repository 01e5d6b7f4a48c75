"""The binary body form of the ingest route (``application/vnd.watchkeeper.batch``): the frame's layout, its
round trip, the same exactly-once and whole-batch rules as the JSON form, errors naming the field, and the
JSON form (base64 decoded once) still giving the same Batch as the reference decoder."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import zlib

import pytest

from watchkeeper.profile import Profile, profile
from watchkeeper.store import Batch, Points, ProfileLog, RunStart, SampleRows, Store, wire

fastapi = pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.ingest import ACCEPT_POST  # noqa: E402
from watchkeeper.server.schema import IngestBatch  # noqa: E402

BINARY = {"content-type": wire.BINARY_TYPE}
DIGEST = "cd" * 32


def _profile_bytes(seed: float) -> bytes:
    return profile({"x": [seed, 2.0 * seed, float("nan")], "c": ["a", "b", None]}).to_bytes()


def _batch(run: str = "r1", *, blobs: bool = False) -> Batch:
    data = [_profile_bytes(1.0), _profile_bytes(3.0)]
    return Batch(
        runs=[RunStart(id=run, project="p", name="n", created_at=1.0)],
        points=[Points("p", run, ["loss"], [0], [1.0], [float("inf")], run)],
        samples=[SampleRows("p", "samples/predict", 5.0, [{"a": 1, "b": {"$float": "nan"}}, {"a": 2}], run)],
        profiles=[
            ProfileLog("p", "model:m@1", "window", 60.0 * i, 60.0 * (i + 1), 3, d, 1, run)
            for i, d in enumerate(data)
        ],
        blobs={DIGEST: b"\x00blob\xff"} if blobs else {},
    )


@pytest.fixture
def client(store_uri, tmp_path):
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    with TestClient(create_app(store, max_body=1_000_000)) as c:
        c.store = store
        yield c
    store.close()


def _nothing_written(store: Store) -> bool:
    return store.runs.list() == [] and store.profiles.windows("p", "model:m@1") == []


def test_the_frame_is_magic_flags_header_length_header_then_the_raw_bytes_in_order():
    batch = _batch(blobs=True)
    body = wire.to_binary(batch, compress_header=False)
    magic, flags, length = struct.unpack(">4sBI", body[:9])
    assert (magic, flags) == (b"WKB1", 0)
    header = json.loads(body[9 : 9 + length])
    sizes = [len(p.data) for p in batch.profiles]
    assert [p["data"] for p in header["profiles"]] == sizes and header["blobs"] == {DIGEST: 6}
    # everything else is the JSON form's document, field for field
    doc = json.loads(json.dumps(wire.to_json(batch)))
    assert {k: v for k, v in header.items() if k not in ("profiles", "blobs")} == {
        k: v for k, v in doc.items() if k not in ("profiles", "blobs")
    }
    assert body[9 + length :] == batch.profiles[0].data + batch.profiles[1].data + b"\x00blob\xff"
    deflated = wire.to_binary(batch)
    assert deflated[4] == wire.HEADER_ZLIB
    assert len(deflated) < len(body) and wire.from_binary(deflated) == wire.from_binary(body)
    back = wire.from_binary(body)
    assert back.profiles == batch.profiles and back.blobs == batch.blobs and back.samples == batch.samples


def test_a_binary_batch_is_stored_as_its_json_form_would_be_and_applied_once_across_forms(client):
    batch = _batch()
    r = client.post("/api/v1/ingest", content=wire.to_binary(batch), headers=BINARY)
    assert r.status_code == 200 and r.json() == {"id": batch.id, "applied": True}
    assert r.headers["accept-post"] == ACCEPT_POST == f"application/json, {wire.BINARY_TYPE}"
    for body, headers in (
        (wire.to_binary(batch), BINARY),
        (gzip.compress(json.dumps(wire.to_json(batch)).encode()), {"content-encoding": "gzip"}),
    ):
        again = client.post("/api/v1/ingest", content=body, headers=headers)
        assert again.status_code == 200 and again.json()["applied"] is False
    store = client.store
    windows = store.profiles.windows("p", "model:m@1")
    assert [w.data for w in windows] == [p.data for p in batch.profiles]
    assert Profile.from_bytes(windows[1].data)["x"].max == 6.0
    rows = store.samples.query(project="p").rows
    assert sorted(r.data["a"] for r in rows) == [1, 2] and any(
        r.data.get("b") != r.data.get("b") for r in rows
    )
    assert store.signals.history("r1", "loss").value.tolist() == [float("inf")]


def test_the_json_form_gives_the_batch_of_the_reference_decoder():
    batch = _batch(blobs=True)
    text = json.dumps(wire.to_json(batch), allow_nan=False)
    model = IngestBatch.model_validate_json(text)
    assert isinstance(model.profiles[0].data, bytes)  # decoded from base64 once, while validating
    assert model.to_batch() == wire.from_json(json.loads(text)) == wire.from_binary(wire.to_binary(batch))


@pytest.mark.parametrize(
    ("mutate", "status", "field", "message"),
    [
        (lambda b: b"WKB2" + b[4:], 400, None, "expected the body to start with b'WKB1'"),
        (lambda b: b[:6], 400, None, "fewer than the 9 of the frame's start"),
        (lambda b: b[:9] + b"\x00" * 5, 400, None, "the header is"),
        (lambda b: b[:4] + b"\x80" + b[5:], 400, None, "unknown flags 0x80"),
        (lambda b: b[:-1], 422, "profiles[1].data", "payload, which has only"),
        (lambda b: b + b"extra", 422, "body", "the header's sizes add up to"),
    ],
)
def test_a_damaged_frame_is_refused_and_nothing_is_written(client, mutate, status, field, message):
    r = client.post("/api/v1/ingest", content=mutate(wire.to_binary(_batch())), headers=BINARY)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    if field is None:
        assert message in detail
    else:
        (err,) = detail
        assert err["field"] == field and message in err["message"]
    assert _nothing_written(client.store)


def _header_body(mutate) -> bytes:
    batch = _batch()
    doc = wire.to_json(batch, sizes=True)
    mutate(doc)
    header = json.dumps(doc).encode()
    payload = b"".join(p.data for p in batch.profiles)
    return struct.pack(">4sBI", wire.MAGIC, 0, len(header)) + header + payload


@pytest.mark.parametrize(
    ("mutate", "field", "message"),
    [
        (lambda d: d["profiles"][0].update(kind="hourly"), "profiles[0].kind", "'window', 'reference'"),
        (lambda d: d["profiles"][1].update(data="AAAA"), "profiles[1].data", "expected the size in bytes"),
        (lambda d: d["profiles"][1].update(data=-1), "profiles[1].data", "expected the size in bytes"),
        (lambda d: d["points"][0].update(t=[1.0, 2.0]), "points[0]", "t has 2 entries but name has 1"),
        (lambda d: d["runs"][0].pop("project"), "runs[0].project", "Field required"),
        (lambda d: d.update(surprise=1), "surprise", "Extra inputs are not permitted"),
    ],
)
def test_a_bad_header_gets_422_naming_the_field_as_the_json_form_would(client, mutate, field, message):
    r = client.post("/api/v1/ingest", content=_header_body(mutate), headers=BINARY)
    assert r.status_code == 422, r.text
    (err,) = r.json()["detail"]
    assert err["field"] == field and message in err["message"]
    assert _nothing_written(client.store)


def test_profile_bytes_that_do_not_read_back_are_refused_in_the_binary_form_too(client):
    batch = _batch()
    batch.profiles[1].data = b"not a profile at all"
    r = client.post("/api/v1/ingest", content=wire.to_binary(batch), headers=BINARY)
    assert r.status_code == 422
    (err,) = r.json()["detail"]
    assert err["field"] == "profiles[1].data" and err["message"].startswith("not a readable profile")
    assert _nothing_written(client.store)


def test_a_header_that_inflates_past_the_body_limit_is_refused(client):
    header = zlib.compress(b" " * 2_000_000)  # ~2 KB that inflate to 2 MB, over the 1 MB limit
    body = struct.pack(">4sBI", wire.MAGIC, wire.HEADER_ZLIB, len(header)) + header
    r = client.post("/api/v1/ingest", content=body, headers=BINARY)
    assert r.status_code == 400 and "inflates to more than 1000000 bytes" in r.json()["detail"]


def test_a_content_type_the_route_does_not_read_is_415_with_the_forms_it_reads(client):
    body = json.dumps(wire.to_json(_batch()))
    r = client.post("/api/v1/ingest", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 415 and r.headers["accept-post"] == ACCEPT_POST
    assert "'text/plain' is not read here" in r.json()["detail"]
    # no Content-Type at all is read as JSON, as before
    r = client.post("/api/v1/ingest", content=body, headers={"content-type": ""})
    assert r.status_code == 200 and r.json()["applied"] is True


def test_a_tagged_value_that_is_not_one_and_a_nan_cell_are_422_naming_the_record(client):
    doc = wire.to_json(_batch())
    doc["runs"][0]["config"] = {"lr": {"$float": "lots"}}
    r = client.post("/api/v1/ingest", json=doc)
    assert r.status_code == 422  # was a 500: the tag's decoding raised KeyError after validation
    assert r.json()["detail"] == [
        {"field": "runs[0].config", "message": "expected a tagged value, KeyError: 'lots'"}
    ]
    body = json.dumps(wire.to_json(_batch()), separators=(",", ":")).replace('"a":2', '"a":NaN')
    r = client.post("/api/v1/ingest", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422 and "samples[0].rows[1]: Out of range float" in r.json()["detail"]
    assert _nothing_written(client.store)


def test_the_openapi_document_describes_both_forms_and_the_json_one_by_its_schema(client):
    doc = client.get("/openapi.json").json()
    content = doc["paths"]["/api/v1/ingest"]["post"]["requestBody"]["content"]
    assert content["application/json"]["schema"] == {"$ref": "#/components/schemas/IngestBatch"}
    assert content[wire.BINARY_TYPE]["schema"]["format"] == "binary"
    schemas = doc["components"]["schemas"]
    props = schemas["IngestBatch"]["properties"]
    assert props["profiles"]["items"] == {"$ref": "#/components/schemas/ProfileLogIn"}
    data = schemas["ProfileLogIn"]["properties"]["data"]
    assert data["type"] == "string" and "base64" in data["description"]
    # rendered through FastAPI's model of the document, as before the route read its body itself
    assert schemas["PointsIn"]["properties"]["step"]["items"]["anyOf"][0]["maximum"] == float(2**63 - 1)
    assert "default" not in schemas["PointsIn"]["properties"]["run_id"]
    # the bytes of a profile sent as base64 in the JSON form are the bytes stored
    batch = _batch()
    sent = wire.to_json(batch)
    assert base64.b64decode(sent["profiles"][0]["data"]) == batch.profiles[0].data
