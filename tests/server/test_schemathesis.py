"""The server against its own OpenAPI document, with schemathesis: for every operation, inputs the document
allows (positive) and inputs it forbids (negative), each answer checked to be no 5xx, with a status code,
content type and body the document declares for that operation. Then one regression test per bug it found.

The app runs in process over a SQLite store seeded by the SDK (a training run with curves, a reference and an
artifact; a serving run with windows and sampled requests). Three times in four, a parameter of a drawn case
names what was seeded (project ``p``, the runs, ``model:m@1``, ...) in place of a random string, so the routes
get past "not found" to real data. Two apps: one without auth, one with tokens, where each case carries a
token drawn from: every project (write), a read and a write token of project ``p`` (real tokens of the
store), an unknown token, none.

Bounded for CI: ``EXAMPLES`` cases per operation and mode, derandomized (the same cases on every run), no
deadline (the machine is shared), no example database. Cases are drawn from each operation's Hypothesis
strategy (``APIOperation.as_strategy``) in a plain parametrized test: schemathesis' pytest loader
(``schemathesis.pytest.from_fixture``) fails on pytest 9 (``'Function' object has no attribute '_nodeid'``).
"""

from __future__ import annotations

import base64
import contextlib
import json

import numpy as np
import pytest
import sqlalchemy as sa

import watchkeeper as wk
from watchkeeper.errors import StoreError
from watchkeeper.profile import profile
from watchkeeper.store import Batch, Points, RunStart, Store, wire

pytest.importorskip("fastapi", reason="the server needs the dev extra")
schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the dev extra")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.auth import EVERYTHING, token_verifier  # noqa: E402

EXAMPLES = 25
"""Cases per operation and generation mode."""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
VARIANTS = ("no-auth", "tokens")
ADMIN = "test-admin-token"
DIGEST = "ab" * 32


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every operation of the OpenAPI document, read from an app over an in-memory store."""
    if "operation" in metafunc.fixturenames:
        store = Store("sqlite://")
        try:
            doc = create_app(store).openapi()
        finally:
            store.close()
        labels = [f"{method.upper()} {path}" for path, ops in doc["paths"].items() for method in ops]
        metafunc.parametrize("operation", labels)


def _seed(uri: str, tmp) -> dict[str, list]:
    """A training run and a serving run of model m version 1 in project p; what a case may name."""
    rng = np.random.default_rng(3)
    train = wk.init(project="p", name="train", model="m", version="1", uri=uri, system_metrics=False)
    for step in range(20):
        train.log({"loss": 1.0 / (step + 1), "acc": float("nan") if step == 3 else step / 20})
    train.log_reference({"amount": rng.normal(size=200), "kind": rng.choice(["a", "b"], 200)})
    weights = tmp / "w.bin"
    weights.write_bytes(b"weights")
    train.log_artifact(weights, name="model", type="model")
    train.finish()
    serve = wk.init(
        project="p", name="serve", model="m", version="1", uri=uri, window=60, system_metrics=False
    )

    @serve.watch(features=lambda x: {"amount": x}, outputs=lambda y: {"label": int(y > 0)}, sample_rate=1.0)
    def predict(x: float) -> float:
        if x < -1:
            raise ValueError("too small")
        return x

    for x in rng.normal(size=50).tolist():
        with contextlib.suppress(ValueError):
            predict(x)
    serve.finish()
    store = Store(uri)
    try:
        digest = store.artifacts.files("p", "model:latest")[0].digest
    finally:
        store.close()
    return {
        "project": ["p"],
        "run_id": [train.id, serve.id],
        "subject": ["model:m@1", train.id],
        "name": ["loss", "acc", "train", "model"],
        "model": ["m"],
        "version": ["1"],
        "ref": ["model", "model:latest", "model:v1", "model:v9"],
        "digest": [digest],
        "path": ["w.bin"],
        "key": ["samples/predict"],
        "route": ["predict"],
    }


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The seeded store, and the schemathesis schema of each app variant over it."""
    tmp = tmp_path_factory.mktemp("schemathesis")
    uri = f"sqlite:///{tmp / 'wk.db'}"
    known = _seed(uri, tmp)
    store = Store(uri)
    tokens = {
        "all": ADMIN,
        "read-p": store.tokens.create("p", "read")[1],
        "write-p": store.tokens.create("p", "write")[1],
    }
    real = token_verifier(store.tokens)
    apps = {
        "no-auth": create_app(store, max_body=200_000),
        "tokens": create_app(
            store, verify_token=lambda t: EVERYTHING if t == ADMIN else real(t), max_body=200_000
        ),
    }
    schemas = {name: schemathesis.openapi.from_asgi("/openapi.json", app) for name, app in apps.items()}
    yield schemas, known, [*tokens.values(), "wk_00000000_unknown", None]
    store.close()


@st.composite
def _cases(draw, operation, mode: GenerationMode, known: dict[str, list], tokens: list | None):
    """A case of ``operation``; each parameter that can name something seeded does so 3 times in 4."""
    case = draw(operation.as_strategy(generation_mode=mode))
    declared = {p.name for p in operation.query}
    for params, optional in ((case.path_parameters, set()), (case.query, declared)):
        if params is None:
            continue
        for name in sorted(set(params) | (optional & set(known))):
            if name in known and draw(st.integers(0, 3)):
                params[name] = draw(st.sampled_from(known[name]))
    if isinstance(case.body, dict) and "run_id" in case.body and draw(st.integers(0, 3)):
        case.body["run_id"] = draw(st.sampled_from(known["run_id"]))
    if tokens is not None:
        token = draw(st.sampled_from(tokens))
        if token is not None:
            case.headers["Authorization"] = f"Bearer {token}"
    return case


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_answer_is_one_the_openapi_document_declares(api, variant, operation):
    schemas, known, tokens = api
    op = schemas[variant].find_operation_by_label(operation)
    assert op is not None, operation
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            deadline=None,
            database=None,
            phases=(Phase.explicit, Phase.generate, Phase.shrink),
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.filter_too_much,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
        )
        @given(case=_cases(op, mode, known, tokens if variant == "tokens" else None))
        def check(case):
            case.call_and_validate(checks=CHECKS)

        try:
            check()
        except Unsatisfiable:
            # every input the document allows is valid (no parameters, or strings of any form): nothing to
            # negate. Positive cases always exist.
            assert mode is GenerationMode.NEGATIVE, operation


# -- regression tests: one per bug schemathesis (or the probing it led to) found ---------------------------


@pytest.fixture
def client(store_uri, tmp_path):
    store = Store(store_uri, artifact_root=tmp_path / "artifacts")
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        c.store = store
        yield c
    store.close()


def _ingest(client, doc: dict):
    return client.post(
        "/api/v1/ingest", content=json.dumps(doc), headers={"content-type": "application/json"}
    )


def _points(run_id: str | None = None, subject: str = "s", **kw) -> dict:
    return {"project": "p", "subject": subject, "name": ["a"], "step": [1], "t": [1.0], "value": [1.0],
            "run_id": run_id, **kw}  # fmt: skip


def _profile(data: str = "", **kw) -> dict:
    return {"project": "p", "subject": "s", "kind": "window", "window_start": 0, "window_end": 60, "rows": 1,
            "data": data, **kw}  # fmt: skip


def _artifact(files: list, run_id: str | None = None) -> dict:
    return {"project": "p", "name": "a", "type": "t", "files": files, "run_id": run_id}


def _problems(r) -> dict[str, str]:
    assert r.status_code == 422, r.text
    return {p["field"]: p["message"] for p in r.json()["detail"]}


def test_the_openapi_document_declares_the_422_body_the_app_answers(client):
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    assert "ValidationError" not in schemas  # FastAPI's {loc, msg, type}, which the app never answers
    assert set(schemas["FieldProblem"]["properties"]) == {"field", "message"}
    r = client.get("/api/v1/runs", params={"limit": 0})
    assert _problems(r) == {"query.limit": "Input should be greater than or equal to 1"}
    ingest = doc["paths"]["/api/v1/ingest"]["post"]["responses"]
    assert ingest["422"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HTTPValidationError"
    }
    assert sorted(ingest) == ["200", "400", "401", "403", "413", "415", "422", "503"]


def test_every_json_answer_of_the_openapi_document_has_a_model(client):
    # routes returning dict[str, Any] were documented as "any object", which any answer conforms to
    doc = client.get("/openapi.json").json()
    bare = [
        f"{method.upper()} {path}"
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        for status, answer in op["responses"].items()
        if "$ref" not in answer.get("content", {}).get("application/json", {"schema": {"$ref": ""}})["schema"]
    ]
    assert bare == []


def test_a_nul_character_in_a_path_or_query_parameter_is_a_422_not_a_500(client):
    # PostgreSQL cannot compare text holding U+0000: every one of these was a 500 there
    assert _problems(client.get("/api/v1/runs/a%00b")) == {
        "path.run_id": "contains a NUL character (U+0000); text may not"
    }
    for url, params in [
        ("/api/v1/runs", {"project": "a\x00"}),
        ("/api/v1/signals", {"project": "p", "subject": "s", "name": "x\x00"}),
        ("/api/v1/samples", {"project": "p", "key": "\x00"}),
        ("/api/v1/profiles/merged", {"project": "p", "subject": "\x00"}),
    ]:
        (field,) = _problems(client.get(url, params=params))
        assert field == f"query.{next(k for k, v in params.items() if chr(0) in v)}"
    assert client.get("/api/v1/runs", params={"project": "a"}).json()["runs"] == []


def test_a_nul_character_in_an_ingested_name_is_a_422_naming_the_field(client):
    doc = {"id": "batch-nul-1", "runs": [{"id": "r1", "project": "p\x00", "name": "n", "created_at": 1.0}]}
    assert _problems(_ingest(client, doc)) == {
        "runs[0].project": "Value error, contains a NUL character (U+0000) at offset 1; text may not"
    }
    doc = wire.to_json(Batch(points=[Points("p", "s", ["x"], [None], [1.0], [1.0], labels={"k": "v\x00"})]))
    assert list(_problems(_ingest(client, doc))) == ["points[0].labels.k"]
    assert client.store.runs.list() == [] and client.store.signals.series(project="p", subject="s") == []


def test_a_record_of_an_unknown_run_is_a_422_naming_the_field_and_nothing_is_written(client):
    data = base64.b64encode(profile({"x": [1.0]}).to_bytes()).decode()
    doc = {
        "id": "batch-ghost-1",
        "runs": [{"id": "r1", "project": "p", "name": "n", "created_at": 1.0}],
        "points": [_points("r1", subject="r1"), _points("ghost")],
        "samples": [{"project": "p", "key": "k", "t": 1.0, "rows": [{}], "run_id": "ghost"}],
        "artifacts": [_artifact([], "ghost")],
        "profiles": [_profile(data, run_id="ghost")],
        "predictions": [
            {"project": "p", "subject": "s", "ids": ["a"], "t": [1.0], "values": [{}], "run_id": "x"}
        ],
    }
    # it was a 422 whose message was the database's foreign key error, naming a table, not the field
    found = _problems(_ingest(client, doc))
    assert found == {
        "points[1].run_id": "no run 'ghost' on this server, nor started in the batch",
        "samples[0].run_id": "no run 'ghost' on this server, nor started in the batch",
        "artifacts[0].run_id": "no run 'ghost' on this server, nor started in the batch",
        "profiles[0].run_id": "no run 'ghost' on this server, nor started in the batch",
        "predictions[0].run_id": "no run 'x' on this server, nor started in the batch",
    }
    assert client.store.runs.list() == []
    doc["id"] = "batch-ghost-2"
    for key in ("samples", "artifacts", "profiles", "predictions"):
        doc[key][0]["run_id"] = "r1"
    doc["points"][1]["run_id"] = "r1"
    assert _ingest(client, doc).status_code == 200
    assert [r.id for r in client.store.runs.list()] == ["r1"]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (
            {"runs": [{"id": "r", "project": "p", "name": "n", "created_at": 1.0, "pid": 2**31}]},
            "runs[0].pid",
        ),
        ({"points": [_points(step=[2**63])]}, "points[0].step[0]"),
        (
            {"samples": [{"project": "p", "key": "k", "t": 1.0, "rows": [{}], "step": -(2**63) - 1}]},
            "samples[0].step",
        ),
        (
            {"artifacts": [_artifact([{"path": "x", "digest": DIGEST, "size": 2**63}])]},
            "artifacts[0].files[0].size",
        ),
        ({"profiles": [_profile(rows=2**63)]}, "profiles[0].rows"),
        ({"profiles": [_profile(format_version=2**15)]}, "profiles[0].format_version"),
        ({"run_updates": [{"id": "r", "exit_code": 2**31}]}, "run_updates[0].exit_code"),
    ],
)
def test_an_integer_wider_than_its_column_is_a_422_naming_the_field(client, record, field):
    # SQLite's driver raised OverflowError (a 500); PostgreSQL refused it (a 422 quoting the SQL)
    assert list(_problems(_ingest(client, {"id": "batch-wide-1", **record}))) == [field]


def test_labels_longer_than_the_stored_label_key_are_a_422(client):
    labels = {"k": "v" * 1022}  # "k=" + 1022 characters: 1024, the most the store's column holds
    ok = wire.to_json(Batch(points=[Points("p", "s", ["x"], [None], [1.0], [1.0], labels=labels)]))
    assert _ingest(client, ok).status_code == 200
    long = wire.to_json(
        Batch(points=[Points("p", "s", ["x"], [None], [1.0], [1.0], labels={"k": "v" * 1023})])
    )
    assert _problems(_ingest(client, long)) == {
        "points[0].labels": "Value error, the labels take 1025 characters as k=v pairs, at most 1024"
    }


def test_a_reference_name_longer_than_its_column_is_a_422(client):
    data = base64.b64encode(profile({"x": [1.0]}).to_bytes()).decode()
    reference = _profile(data, kind="reference", reference=["m" * 257, "1", "train"])
    doc = {"id": "batch-ref-1", "profiles": [reference]}
    assert list(_problems(_ingest(client, doc))) == ["profiles[0].reference[0]"]


def test_an_artifact_listing_one_path_twice_is_a_422(client):
    files = [{"path": "x", "digest": DIGEST, "size": 1}, {"path": "x", "digest": DIGEST, "size": 1}]
    doc = {"id": "batch-dup-1", "artifacts": [_artifact(files)]}
    assert _problems(_ingest(client, doc)) == {
        "artifacts[0].files": "Value error, the path 'x' appears more than once"
    }


def test_profile_bytes_that_do_not_read_back_are_a_422_and_not_stored(client):
    # stored, they made every merged-profile query of the subject a 500
    doc = {"id": "batch-prof-1", "profiles": [_profile(base64.b64encode(b"not a profile").decode())]}
    (message,) = _problems(_ingest(client, doc)).values()
    assert message.startswith("not a readable profile: ")
    assert client.store.profiles.windows("p", "s") == []
    r = client.get("/api/v1/profiles/merged", params={"project": "p", "subject": "s"})
    assert r.status_code == 200 and r.json()["windows"] == 0


def test_buckets_too_narrow_for_the_times_are_a_422_not_a_500(client):
    client.store.write(Batch(points=[Points("p", "one", ["x"], [None], [1.7e9], [1.0])]))
    client.store.write(
        Batch(points=[Points("p", "two", ["x", "x"], [None, None], [1.7e9, 1.7e9 + 1], [1.0, 2.0])])
    )
    # 5e-324 overflowed math.floor (a 500 on both backends); 1e-12 on one point passed the bucket-count check
    # and overflowed the BIGINT bucket number in SQL (a 500 on PostgreSQL, a saturated wrong bucket on SQLite)
    for subject, bucket in (("two", 5e-324), ("one", 1e-12)):
        r = client.get(
            "/api/v1/signals", params={"project": "p", "subject": subject, "name": "x", "bucket": bucket}
        )
        (message,) = _problems(r).values()
        assert "too narrow" in message and "t=1.7e+09" in message
    r = client.get("/api/v1/signals", params={"project": "p", "subject": "two", "name": "x", "bucket": 0.5})
    assert r.status_code == 200 and r.json()["series"][0]["t"] == [1.7e9, 1.7e9 + 1]


def test_a_failed_write_leaves_no_stale_ids_in_the_store_cache(sqlite_uri, tmp_path):
    store = Store(sqlite_uri, artifact_root=tmp_path / "artifacts")
    try:
        # the series is inserted, its id cached, then the transaction rolls back on a driver error that is not
        # an SQLAlchemyError (an integer too wide for SQLite): the cached id named a row that was never kept
        with pytest.raises(OverflowError):
            store.write(Batch(points=[Points("p", "s", ["x"], [2**70], [1.0], [1.0])]))
        store.write(Batch(points=[Points("p", "s", ["x"], [1], [2.0], [3.0])]))
        (series,) = store.signals.series(project="p", subject="s")
        assert store.signals.points_in(series.id, None, None, 10).value.tolist() == [3.0]
    finally:
        store.close()


def test_a_refused_batch_does_not_show_the_store_password(pg_uri, tmp_path):
    # trust authentication ignores the password, which the answer must not echo
    uri = sa.engine.make_url(pg_uri).set(password="hunter2-secret").render_as_string(hide_password=False)
    store = Store(uri, artifact_root=tmp_path / "artifacts")
    try:
        with TestClient(create_app(store)) as c:
            doc = {
                "id": "batch-pw-1",
                "labels": [{"project": "p", "subject": "s", "ids": ["a"], "values": [None], "t": [1.0]}],
            }
            r = _ingest(c, doc)
        assert r.status_code == 422 and "labels[0].values[0]: expected a label" in r.json()["detail"]
        assert "hunter2" not in r.text and "***" in r.text
        with pytest.raises(StoreError) as err:
            store.write(Batch(runs=[RunStart(id="r", project="p" * 200, name="n", created_at=1.0)]))
        assert "hunter2" not in str(err.value)
    finally:
        store.close()
