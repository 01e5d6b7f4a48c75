"""``GET /api/v1/profiles/reference``: the bytes of a model version's reference profile, the very bytes the
training run logged, read-guarded like the other query routes."""

from __future__ import annotations

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile

pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient

from watchkeeper.server import create_app
from watchkeeper.server.auth import Principal

URL = "/api/v1/profiles/reference"


def _verify(token: str) -> Principal | None:
    return {"a": Principal(frozenset({"A"}), "read"), "b": Principal(frozenset({"B"}), "read")}.get(token)


def test_the_reference_bytes_are_the_logged_profile_and_only_its_project_reads_them(store_uri, store):
    rng = np.random.default_rng(11)
    run = wk.init(project="A", model="m", version="3", uri=store_uri, system_metrics=False)
    train = run.log_reference({"x": rng.normal(size=400), "c": rng.choice(["u", "v"], 400)})
    holdout = run.log_reference({"x": rng.normal(size=7)}, name="holdout")
    run.finish()
    with TestClient(create_app(store, verify_token=_verify)) as c:
        a = {"Authorization": "Bearer a"}
        r = c.get(URL, params={"project": "A", "model": "m", "version": "3"}, headers=a)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/octet-stream"
        assert r.content == train.to_bytes() and r.headers["x-watchkeeper-rows"] == "400"
        assert Profile.from_bytes(r.content) == train
        r = c.get(URL, params={"project": "A", "model": "m", "version": "3", "name": "holdout"}, headers=a)
        assert Profile.from_bytes(r.content) == holdout and Profile.from_bytes(r.content).rows == 7

        r = c.get(URL, params={"project": "A", "model": "m", "version": "4"}, headers=a)
        assert r.status_code == 404
        assert r.json()["detail"] == "no reference 'train' for model 'm' version '4' in project 'A'"

        r = c.get(
            URL, params={"project": "A", "model": "m", "version": "3"}, headers={"Authorization": "Bearer b"}
        )
        assert r.status_code == 403 and r.json()["detail"] == "this token may not read project 'A'"
        assert c.get(URL, params={"project": "A", "model": "m", "version": "3"}).status_code == 401

        r = c.get(URL, params={"project": "A", "version": "3"}, headers=a)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.model"
