"""The query API over data written by real runs (two replicas serving one model, a training run) and by
``store.write``: its numbers against the store and numpy (merged p99 against one LatencySketch fed every
duration, exact counts across windows and runs, buckets against numpy), its filters, its validation, and
what a read-only token may see."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.profile import Profile
from watchkeeper.sdk import watcher as watch_mod
from watchkeeper.sketch import LatencySketch
from watchkeeper.store import Batch, Points, RunStart
from watchkeeper.store.schema import alert_rules, alert_states, projects

fastapi = pytest.importorskip("fastapi", reason="the server needs the dev extra")
from fastapi.testclient import TestClient  # noqa: E402

from watchkeeper.server import create_app  # noqa: E402
from watchkeeper.server.auth import Principal  # noqa: E402

SUBJECT = "model:m@1"
RNG = np.random.default_rng(5)


class FakeClock:
    """Stands in for perf_counter_ns inside the watch module: the test decides how long each call takes."""

    def __init__(self) -> None:
        self.now = 1_000_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(watch_mod, "perf_counter_ns", c)
    return c


@pytest.fixture
def client(store):
    with TestClient(create_app(store)) as c:
        yield c


def _serve(store_uri: str, clock: FakeClock) -> dict:
    """Two runs (replicas) serve model m version 1 in project A; every call is sampled. Returns what the
    test needs to know: run ids, durations in ns, amounts, which calls failed."""
    out: dict = {"runs": [], "ns": [], "amount": [], "failed": []}
    for n, sigma in ((150, 1.0), (100, 0.5)):
        run = wk.init(project="A", model="m", version="1", uri=store_uri, window=3600, system_metrics=False)

        @run.watch(
            features=lambda x: {"amount": x["amount"]},
            outputs=lambda y: {"score": y, "label": int(y > 0.5)},
            id=lambda x: x["request_id"],
            sample_rate=1.0,
            max_samples=1000,
        )
        def predict(x):
            clock.now += x["ns"]
            if x["amount"] < 0:
                raise ValueError("negative amount")
            return min(1.0, x["amount"] / 100)

        ns = np.round(RNG.lognormal(-4.0, sigma, n) * 1e9).astype(np.int64)
        amount = np.round(RNG.uniform(-20, 100, n), 2)
        for i in range(n):
            with contextlib.suppress(ValueError):
                predict({"request_id": f"{run.id}-{i}", "amount": float(amount[i]), "ns": int(ns[i])})
        run.finish()
        out["runs"].append(run.id)
        out["ns"].append(ns)
        out["amount"].append(amount)
        out["failed"].append(amount < 0)
    out["ns"] = np.concatenate(out["ns"])
    out["amount"] = np.concatenate(out["amount"])
    out["failed"] = np.concatenate(out["failed"])
    return out


def test_merged_profile_of_two_replicas_matches_one_sketch_fed_every_duration(
    store_uri, store, client, clock
):
    served = _serve(store_uri, clock)
    exact = LatencySketch()
    exact.update(served["ns"] / 1e9)  # what the watcher computes from the clock, in seconds
    qs = [0.5, 0.9, 0.99]
    r = client.get("/api/v1/profiles/merged", params={"project": "A", "subject": SUBJECT, "q": qs})
    assert r.status_code == 200, r.text
    doc = r.json()
    windows = store.profiles.windows("A", SUBJECT)
    assert doc["windows"] == len(windows) >= 2 and doc["runs"] == sorted(served["runs"])
    assert doc["rows"] == 250
    ep = doc["traffic"]["endpoints"]["predict"]
    n_failed = int(served["failed"].sum())
    assert 0 < n_failed < 250
    assert (ep["requests"], ep["errors"]) == (250, {"ValueError": n_failed})
    want_ms = (exact.quantile(np.array(qs)) * 1e3).tolist()
    assert doc["latency_quantiles"]["q"] == qs
    assert doc["latency_quantiles"]["endpoints"]["predict"] == pytest.approx(want_ms, rel=1e-12)
    assert doc["latency_quantiles"]["calls"] == pytest.approx(want_ms, rel=1e-12)
    assert ep["p99_ms"] == pytest.approx(exact.quantile(0.99) * 1e3, rel=1e-12)
    # read from the merged sketch, not averaged over the replicas' own p99s
    p99s = [LatencySketch().update(part / 1e9).quantile(0.99) * 1e3 for part in np.split(served["ns"], [150])]
    assert abs(ep["p99_ms"] - np.mean(p99s)) > 0.05 * ep["p99_ms"]
    assert doc["latency_quantiles"]["stages"] == {} and doc["latency_quantiles"]["http"] == [None] * 3
    amount = doc["columns"]["amount"]
    assert amount["role"] == "input" and amount["count"] == 250
    assert amount["mean"] == pytest.approx(served["amount"].mean(), rel=1e-9)
    score = doc["columns"]["score"]
    assert score["role"] == "output" and score["count"] == 250 - n_failed

    binary = client.get(
        "/api/v1/profiles/merged", params={"project": "A", "subject": SUBJECT, "format": "binary"}
    )
    assert binary.headers["content-type"] == "application/octet-stream"
    assert binary.headers["x-watchkeeper-windows"] == str(len(windows))
    merged = Profile.from_bytes(binary.content)
    assert merged.rows == 250 and merged.traffic.endpoints["predict"].latency.count == 250
    assert merged.traffic.endpoints["predict"].latency.quantile(0.99) == exact.quantile(0.99)

    later = client.get(
        "/api/v1/profiles/merged",
        params={"project": "A", "subject": SUBJECT, "start": 4e9, "end": 5e9},
    ).json()
    assert (later["windows"], later["rows"], later["traffic"], later["runs"]) == (0, 0, None, [])


def test_samples_are_filtered_by_status_route_time_and_label(store_uri, client, clock):
    served = _serve(store_uri, clock)
    failed, ns = served["failed"], served["ns"]
    get = client.get
    errors = get("/api/v1/samples", params={"project": "A", "subject": SUBJECT, "status": "error"}).json()
    assert len(errors["rows"]) == int(failed.sum()) and not errors["truncated"]
    assert {row["data"]["status"] for row in errors["rows"]} == {"ValueError"}
    assert sorted(row["data"]["latency_ms"] for row in errors["rows"]) == pytest.approx(
        sorted(ns[failed] / 1e6), rel=1e-12
    )
    assert errors["filtered_in_python"] == [] and errors["scanned"] is None

    first = served["runs"][0]
    page = get("/api/v1/samples", params={"run_id": first, "status": "ok", "limit": 5}).json()
    assert len(page["rows"]) == 5 and page["truncated"]
    times = [row["t"] for row in page["rows"]]
    assert times == sorted(times, reverse=True)  # newest first
    assert {(row["run_id"], row["endpoint"], row["key"]) for row in page["rows"]} == {
        (first, "predict", "samples/predict")
    }
    newest = get("/api/v1/samples", params={"project": "A", "limit": 1000}).json()["rows"]
    assert len(newest) == 250
    cut = newest[100]["t"]
    older = get("/api/v1/samples", params={"project": "A", "end": cut, "limit": 1000}).json()["rows"]
    assert [row["sample_id"] for row in older] == [row["sample_id"] for row in newest if row["t"] < cut]

    ok = ~failed
    ones = int((np.minimum(1.0, served["amount"][ok] / 100) > 0.5).sum())
    labelled = get(
        "/api/v1/samples", params={"project": "A", "route": "predict", "label": "1", "limit": 1000}
    )
    doc = labelled.json()
    assert len(doc["rows"]) == ones and {row["data"]["outputs"]["label"] for row in doc["rows"]} == {1}
    assert doc["filtered_in_python"] == ["label"] and doc["scanned"] == 250 and not doc["scan_limited"]
    assert get("/api/v1/samples", params={"project": "A", "route": "explain"}).json()["rows"] == []


def test_signals_of_a_training_run_and_its_run_page(store_uri, store, client):
    run = wk.init(
        project="A", name="train-1", job_type="train", config={"lr": 0.1}, uri=store_uri, system_metrics=False
    )
    for step in range(20):
        run.log({"loss": float("nan") if step == 7 else 1.0 / (step + 1), "acc": step / 20})
    run.finish()
    hist = store.signals.history(run.id, "loss")
    doc = client.get("/api/v1/signals", params={"run_id": run.id, "name": "loss"}).json()
    (series,) = doc["series"]
    assert series["t"] == hist.t.tolist() and series["step"] == list(range(20))
    assert series["value"][7] is None and series["value"][:7] == hist.value[:7].tolist()
    assert series["value"][8:] == hist.value[8:].tolist() and not doc["truncated"]

    names = client.get("/api/v1/signals/names", params={"run_id": run.id}).json()["series"]
    assert [(s["name"], s["count"], s["step"], s["last"]) for s in names] == [
        ("acc", 20, 19, 19 / 20),
        ("loss", 20, 19, 1 / 20),
    ]

    page = client.get(f"/api/v1/runs/{run.id}").json()
    assert (page["name"], page["status"], page["job_type"], page["config"]) == (
        "train-1",
        "finished",
        "train",
        {"lr": 0.1},
    )
    loss = next(s for s in page["series"] if s["name"] == "loss")
    assert (loss["count"], loss["last"], loss["min"], loss["max"]) == (20, 1 / 20, 1 / 20, 1.0)
    assert page["ended_at"] >= page["created_at"] and page["tables"] == [] and page["artifacts"] == []

    store.write(Batch(runs=[RunStart("serve-1", "A", "s", 1.0, job_type="serve", model="m", version="1")]))
    listed = client.get("/api/v1/runs", params={"project": "A"}).json()
    assert [r["id"] for r in listed["runs"]] == [run.id, "serve-1"] and not listed["truncated"]
    assert [r["id"] for r in client.get("/api/v1/runs", params={"model": "m"}).json()["runs"]] == ["serve-1"]
    assert [r["id"] for r in client.get("/api/v1/runs", params={"status": "finished"}).json()["runs"]] == [
        run.id
    ]
    one = client.get("/api/v1/runs", params={"limit": 1}).json()
    assert len(one["runs"]) == 1 and one["truncated"]
    assert client.get("/api/v1/projects").json() == {
        "projects": [{"name": "A", "created_at": pytest.approx(page["created_at"], abs=60), "runs": 2}]
    }


def test_bucketed_signals_are_computed_in_sql_and_agree_with_numpy(store, client):
    t = np.sort(RNG.uniform(0, 3600, 2000)) + 1.7e9
    v = RNG.exponential(0.1, t.size)
    v[RNG.random(t.size) < 0.1] = np.nan
    t = np.delete(t, (t > 1.7e9 + 1200) & (t < 1.7e9 + 1500))  # empty buckets
    v = v[: t.size]
    for labels in ({"endpoint": "predict"}, {"endpoint": "explain"}):
        store.write(
            Batch(
                points=[
                    Points(
                        "A",
                        SUBJECT,
                        ["p99"] * t.size,
                        [None] * t.size,
                        t.tolist(),
                        v.tolist(),
                        labels=labels,
                    )
                ]
            )
        )
    start, end = 1.7e9 + 100.5, 1.7e9 + 3000.0
    params = {"project": "A", "subject": SUBJECT, "name": "p99", "start": start, "end": end}
    doc = client.get("/api/v1/signals", params={**params, "bucket": 60}).json()
    assert doc["bucket"] == 60 and len(doc["series"]) == 2
    got = next(s for s in doc["series"] if s["labels"] == {"endpoint": "predict"})
    keep = (t >= start) & (t < end)
    k = np.floor(t[keep] / 60.0)
    vals = v[keep]
    starts = np.unique(k)
    assert got["t"] == (starts * 60.0).tolist()
    assert (1.7e9 + 1260.0) not in got["t"]  # an empty bucket is left out
    for i, key in enumerate(starts):
        sel = vals[k == key]
        fin = sel[~np.isnan(sel)]
        assert (got["count"][i], got["nan"][i]) == (fin.size, int(np.isnan(sel).sum()))
        if fin.size:
            assert got["mean"][i] == pytest.approx(fin.mean(), rel=1e-12)
            assert (got["min"][i], got["max"][i]) == (fin.min(), fin.max())
        else:
            assert got["mean"][i] is None and got["min"][i] is None
        assert got["last"][i] == (None if np.isnan(sel[-1]) else sel[-1])
    assert sum(got["count"]) + sum(got["nan"]) == int(keep.sum())

    raw = client.get("/api/v1/signals", params=params).json()
    predict = next(s for s in raw["series"] if s["labels"] == {"endpoint": "predict"})
    assert predict["t"] == t[keep].tolist() and not raw["truncated"] and raw["limit"] == 10_000
    cut = client.get("/api/v1/signals", params={**params, "limit": 50}).json()
    assert cut["truncated"] and all(s["truncated"] and s["t"] == t[keep][:50].tolist() for s in cut["series"])

    fine = client.get("/api/v1/signals", params={**params, "bucket": 0.001})
    assert fine.status_code == 422 and fine.json()["detail"][0]["field"] == "query.bucket"
    assert "buckets" in fine.json()["detail"][0]["message"]


@pytest.mark.parametrize(
    ("url", "params", "field"),
    [
        ("/api/v1/signals", {"run_id": "r1", "name": "x", "start": 5, "end": 1}, "query.start"),
        ("/api/v1/signals", {"run_id": "r1", "name": "x", "bucket": 0}, "query.bucket"),
        ("/api/v1/signals", {"run_id": "r1", "name": "x", "limit": 10_001}, "query.limit"),
        ("/api/v1/signals", {"project": "A", "name": "x"}, "query.subject"),
        ("/api/v1/signals", {"subject": "s", "name": "x"}, "query.project"),
        ("/api/v1/signals", {"run_id": "r1", "name": "x", "start": "nan"}, "query.start"),
        ("/api/v1/samples", {"project": "A", "status": "failed"}, "query.status"),
        ("/api/v1/samples", {"project": "A", "limit": 0}, "query.limit"),
        ("/api/v1/samples", {"project": "A", "key": "k", "route": "r"}, "query.route"),
        ("/api/v1/samples", {}, "query.project"),
        ("/api/v1/runs", {"status": "done"}, "query.status"),
        ("/api/v1/runs", {"limit": 1001}, "query.limit"),
        ("/api/v1/profiles/merged", {"project": "A", "subject": "s", "q": 1.5}, "query.q[0]"),
        ("/api/v1/profiles/merged", {"project": "A", "subject": "s", "start": 9, "end": 2}, "query.start"),
        ("/api/v1/alerts", {"state": "on"}, "query.state"),
    ],
)
def test_bad_parameters_get_422_naming_the_parameter(store, client, url, params, field):
    store.write(Batch(runs=[RunStart("r1", "A", "n", 1.0)]))
    r = client.get(url, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["field"] == field


def test_unknown_runs_are_404(client):
    for url, params in (
        ("/api/v1/runs/nope", {}),
        ("/api/v1/signals", {"run_id": "nope", "name": "x"}),
        ("/api/v1/signals/names", {"run_id": "nope"}),
        ("/api/v1/samples", {"run_id": "nope"}),
    ):
        r = client.get(url, params=params)
        assert r.status_code == 404 and "nope" in r.json()["detail"]


def _alert(conn, project_id, name, labels, state, value):
    rule_id = conn.execute(
        alert_rules.insert()
        .values(
            project_id=project_id,
            name=name,
            spec={"expr": "p99 > 0.2"},
            enabled=True,
            created_at=1.0,
            updated_at=1.0,
        )
        .returning(alert_rules.c.id)
    ).scalar_one()
    conn.execute(
        alert_states.insert().values(
            rule_id=rule_id,
            labels_key=",".join(f"{k}={labels[k]}" for k in sorted(labels)),
            labels=labels,
            state=state,
            active_at=10.0,
            fired_at=20.0 if state == "firing" else None,
            last_value=value,
        )
    )


def test_a_read_only_token_sees_its_projects_only(store):
    store.write(
        Batch(
            runs=[RunStart("ra", "A", "a", 1.0), RunStart("rb", "B", "b", 2.0)],
            points=[
                Points("A", "ra", ["x"], [0], [1.0], [1.0], "ra"),
                Points("B", "rb", ["x"], [0], [1.0], [2.0], "rb"),
            ],
        )
    )

    def verify(token: str) -> Principal | None:
        if token == "a":
            return Principal(frozenset({"A"}), "read")
        return Principal(None, "read") if token == "all" else None

    with TestClient(create_app(store, verify_token=verify)) as c:
        everything = {"Authorization": "Bearer all"}
        # nothing writes alerts yet: the answer is the tables' real content, empty
        assert c.get("/api/v1/alerts", headers=everything).json() == {"alerts": []}
        with store.begin_write() as conn:
            ids = dict(
                conn.execute(projects.select().with_only_columns(projects.c.name, projects.c.id)).all()
            )
            _alert(conn, ids["A"], "slow-a", {"endpoint": "predict"}, "firing", 0.31)
            _alert(conn, ids["B"], "slow-b", {"endpoint": "predict"}, "pending", float("nan"))
            _alert(conn, None, "global", {"project": "A"}, "resolved", 0.1)
            _alert(conn, None, "global-b", {"project": "B"}, "firing", 0.5)

        a = {"Authorization": "Bearer a"}
        assert c.get("/api/v1/projects").status_code == 401
        assert c.get("/api/v1/projects", headers={"Authorization": "Bearer nope"}).status_code == 401
        assert [p["name"] for p in c.get("/api/v1/projects", headers=a).json()["projects"]] == ["A"]
        assert [p["name"] for p in c.get("/api/v1/projects", headers=everything).json()["projects"]] == [
            "A",
            "B",
        ]
        assert [r["id"] for r in c.get("/api/v1/runs", headers=a).json()["runs"]] == ["ra"]
        for url, params in (
            ("/api/v1/runs", {"project": "B"}),
            ("/api/v1/runs/rb", {}),
            ("/api/v1/signals", {"run_id": "rb", "name": "x"}),
            ("/api/v1/signals", {"project": "B", "subject": "rb", "name": "x"}),
            ("/api/v1/signals/names", {"run_id": "rb"}),
            ("/api/v1/profiles/merged", {"project": "B", "subject": SUBJECT}),
            ("/api/v1/profiles/references", {"project": "B"}),
            ("/api/v1/samples", {"project": "B"}),
            ("/api/v1/samples", {"run_id": "rb"}),
            ("/api/v1/alerts", {"project": "B"}),
        ):
            r = c.get(url, params=params, headers=a)
            assert r.status_code == 403, (url, params, r.text)
            assert "'B'" in r.json()["detail"]
        assert c.get("/api/v1/signals", params={"run_id": "ra", "name": "x"}, headers=a).json()["series"][0][
            "value"
        ] == [1.0]
        seen = c.get("/api/v1/alerts", headers=a).json()["alerts"]
        assert [(x["rule"]["name"], x["state"], x["last_value"]) for x in seen] == [
            ("global", "resolved", 0.1),
            ("slow-a", "firing", 0.31),
        ]
        assert seen[1]["rule"]["project"] == "A" and seen[1]["fired_at"] == 20.0
        assert seen[1]["labels"] == {"endpoint": "predict"} and seen[1]["rule"]["spec"] == {
            "expr": "p99 > 0.2"
        }
        every = c.get("/api/v1/alerts", headers=everything).json()["alerts"]
        assert [x["rule"]["name"] for x in every] == ["global", "global-b", "slow-a", "slow-b"]
        assert every[3]["last_value"] is None  # NaN
        firing = c.get("/api/v1/alerts", params={"state": "firing"}, headers=everything).json()["alerts"]
        assert [x["rule"]["name"] for x in firing] == ["global-b", "slow-a"]
        only_b = c.get("/api/v1/alerts", params={"project": "B"}, headers=everything).json()["alerts"]
        assert [x["rule"]["name"] for x in only_b] == ["global-b", "slow-b"]
