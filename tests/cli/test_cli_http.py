"""The reading commands and ``wk.load_reference`` against a server: a real one (uvicorn on 127.0.0.1 in a
thread of this process, over a temporary SQLite store), fed by runs that send to it with ``wk.init(uri=
"http://...")``. Each command prints exactly what it prints against the database file; tokens are checked,
and refusals, an unreachable server and commands that need a database are clear errors."""

from __future__ import annotations

import contextlib
import math
import re
import runpy
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import watchkeeper as wk
from watchkeeper.errors import StoreError
from watchkeeper.store import Store

pytest.importorskip("fastapi", reason="the server needs fastapi (the dev extra)")
uvicorn = pytest.importorskip("uvicorn", reason="the server needs uvicorn (the dev extra)")

from watchkeeper.cli import app  # noqa: E402
from watchkeeper.client import Client  # noqa: E402
from watchkeeper.server.auth import token_verifier  # noqa: E402

runner = CliRunner(env={"COLUMNS": "200", "WATCHKEEPER_TOKEN": None, "WATCHKEEPER_URI": None})


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


_servers = runpy.run_path(str(Path(__file__).parents[1] / "servers.py"))  # tests/servers.py
Server, _free_port = _servers["Server"], _servers["free_port"]


class Deployment:
    """What the module's runs logged, and where: the database, a server with token checks (``url``), one
    without (``open_url``), and a read and a write token per project."""

    uri: str
    url: str
    open_url: str
    tokens: dict[tuple[str, str], str]
    train: wk.Run
    reference: object


def _log(d: Deployment, tmp) -> None:
    """A training run of project net (NaN and inf values, a table, an artifact, a reference profile), and a
    watched deployment ranker@7 of project shop, both sent to the server."""
    train = wk.init(
        project="net",
        name="ae-1",
        job_type="train",
        config={"lr": 0.001, "dropout": math.nan},
        model="kpi-ae",
        version=2,
        uri=d.url,
        token=d.tokens["net", "write"],
        system_metrics=False,
    )
    for i in range(5):
        train.log({"loss": 1.0 / (i + 1), "bad": math.nan, "big": math.inf})
    train.log({"examples": wk.Table(columns=["a"], data=[[1], [2]])})
    train.summary["best_auc"] = 0.97
    train.summary["worst"] = -math.inf
    (tmp / "model").mkdir()
    (tmp / "model" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    train.log_artifact(tmp / "model", name="model", type="model")
    d.reference = train.log_reference(
        {"x": np.random.default_rng(1).normal(size=300), "c": ["a", "b", "c"] * 100}
    )
    train.finish(exit_code=3)
    d.train = train

    serve = wk.init(
        project="shop",
        model="ranker",
        version="7",
        uri=d.url,
        token=d.tokens["shop", "write"],
        window=3600,
        system_metrics=False,
    )

    @serve.watch
    def predict(x):
        if x % 4 == 0:
            raise TimeoutError
        return x

    for i in range(40):
        with contextlib.suppress(TimeoutError):
            predict(i)
    serve.log_usage(100, 10, model="gpt-x")
    serve.finish()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-http")
    d = Deployment()
    d.uri = f"sqlite:///{tmp}/store/watchkeeper.db"
    store = Store(d.uri, artifact_root=tmp / "server-artifacts")
    d.tokens = {(p, s): store.tokens.create(p, s)[1] for p in ("net", "shop") for s in ("read", "write")}
    with (
        pytest.MonkeyPatch.context() as mp,
        Server(store, verify_token=token_verifier(store.tokens)) as server,
        Server(store) as open_server,
    ):
        mp.setenv("WATCHKEEPER_SPOOL_DIR", str(tmp / "spool"))  # never the developer's ~/.cache
        mp.delenv("WATCHKEEPER_TOKEN", raising=False)
        d.url, d.open_url = server.url, open_server.url
        _log(d, tmp)
        yield d
    store.close()


@pytest.fixture(autouse=True)
def _no_token_from_the_environment(monkeypatch):
    monkeypatch.delenv("WATCHKEEPER_TOKEN", raising=False)


def _invoke(*args: str, **kw):
    return runner.invoke(app, list(args), **kw)


@pytest.mark.parametrize(
    ("args", "project"),
    [
        (["runs", "list", "-p", "net"], "net"),
        (["runs", "list", "-p", "shop", "--status", "finished"], "shop"),
        (["runs", "show", "ae-1"], "net"),
        (["runs", "show", "ae-1", "-p", "net"], "net"),
        (["artifacts", "list", "-p", "net"], "net"),
        (["traffic", "ranker@7", "-p", "shop"], "shop"),
        (["traffic", "ranker@7", "-p", "shop", "--since", "7d"], "shop"),
        # errors print the same too
        (["runs", "show", "nope"], "net"),
        (["runs", "list", "-p", "net", "--status", "sleeping"], "net"),
        (["traffic", "ranker@8", "-p", "shop"], "shop"),
    ],
)
def test_a_command_prints_the_same_over_http_with_a_read_token(deployment, args, project):
    local = _invoke(*args, "--uri", deployment.uri)
    remote = _invoke(*args, "--uri", deployment.url, "--token", deployment.tokens[project, "read"])
    assert remote.exit_code == local.exit_code, remote.output
    assert remote.output == local.output


def test_runs_show_by_id_prints_every_section_the_same(deployment):
    run_id = deployment.train.id
    local = _invoke("runs", "show", run_id, "--uri", deployment.uri)
    remote = _invoke(
        "runs", "show", run_id, "--uri", deployment.url, "--token", deployment.tokens["net", "read"]
    )
    assert local.exit_code == 0 and remote.output == local.output
    out = local.output
    for section in ("config", "summary", "logged keys (3)", "tables", "reference profiles", "artifacts"):
        assert section in out
    assert "failed (exit code 3)" in out
    big = next(line for line in out.splitlines() if "│ big" in line).split("│")
    assert [c.strip() for c in big[2:7]] == ["inf", "4", "5", "inf", "inf"]  # last, step, points, min, max
    bad = next(line for line in out.splitlines() if "│ bad" in line).split("│")
    assert [c.strip() for c in bad[2:7]] == ["NaN", "4", "5", "NaN", "NaN"]
    assert "│ dropout │ NaN" in out and "│ worst    │ -inf" in out


def test_listings_of_every_project_through_a_server_without_token_checks(deployment):
    for args in (["runs", "list"], ["artifacts", "list"]):
        local = _invoke(*args, "--uri", deployment.uri)
        remote = _invoke(*args, "--uri", deployment.open_url)
        assert local.exit_code == 0 and remote.output == local.output
    listed = _plain(_invoke("runs", "list", "--uri", deployment.open_url).output)
    assert "runs (2)" in listed and "ae-1" in listed and "ranker@7" in listed


def test_the_client_returns_what_the_store_returns(deployment):
    store = Store(deployment.uri)
    run_id = deployment.train.id
    with Client(deployment.url, deployment.tokens["net", "read"]) as client:
        detail = client.run(run_id)
        assert repr(detail.info) == repr(store.runs.get(run_id))  # repr: NaN != NaN, its repr is equal
        assert repr(detail.series) == repr(store.signals.summaries(run_id))
        assert detail.tables == store.samples.tables(run_id)
        assert detail.references == store.profiles.references("net")
        assert detail.artifacts == store.artifacts.list(run_id=run_id)
        assert client.artifacts("net") == store.artifacts.list("net")
        assert repr(client.runs("net")) == repr(store.runs.list("net"))
        with pytest.raises(KeyError, match="no run with id or name 'ranker'"):
            client.run("ranker")  # runs of project shop are not among those this token reads
    store.close()


def test_the_token_comes_from_the_environment_and_so_may_the_uri(deployment):
    local = _invoke("runs", "list", "-p", "net", "--uri", deployment.uri)
    env = {"WATCHKEEPER_URI": deployment.url, "WATCHKEEPER_TOKEN": deployment.tokens["net", "read"]}
    remote = _invoke("runs", "list", "-p", "net", env=env)
    assert remote.exit_code == 0 and remote.output == local.output


def test_a_token_of_another_project_or_none_is_a_clear_error(deployment):
    shop = deployment.tokens["shop", "read"]
    for args in (
        ["runs", "list", "-p", "net"],
        ["runs", "show", deployment.train.id],
        ["artifacts", "list", "-p", "net"],
    ):
        result = _invoke(*args, "--uri", deployment.url, "--token", shop)
        out = _plain(result.output)
        assert result.exit_code == 1, out
        assert f"the server at {deployment.url} does not let this token read that (HTTP 403" in out
        assert "this token may not read project 'net'" in out

    result = _invoke("runs", "list", "-p", "net", "--uri", deployment.url)
    out = _plain(result.output)
    assert result.exit_code == 1
    assert f"the server at {deployment.url} needs a token (HTTP 401: missing bearer token" in out
    assert "pass a valid token with --token or WATCHKEEPER_TOKEN" in out

    result = _invoke("runs", "list", "--uri", deployment.url, "--token", "wk_00000000_nope")
    out = _plain(result.output)
    assert result.exit_code == 1 and "refused the token (HTTP 401: unknown or revoked token)" in out


def test_an_unreachable_server_is_named(deployment):
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    result = _invoke("runs", "list", "--uri", url)
    out = _plain(result.output)
    assert result.exit_code == 1 and f"cannot reach the watchkeeper server at {url}" in out
    result = _invoke("runs", "list", "--uri", deployment.url, "--limit", "5000")
    assert result.exit_code == 2 and "a server answers 1 to 1000 runs at a time, got 5000" in _plain(
        result.output
    )


@pytest.mark.parametrize(
    "args",
    [
        ["db", "upgrade"],
        ["db", "current"],
        ["token", "list"],
        ["token", "create", "-p", "net", "--scope", "read"],
        ["token", "revoke", "1f3a9c2e"],
        ["server", "--no-auth"],
    ],
)
def test_commands_on_the_database_itself_refuse_a_server_url(args):
    command = " ".join(a for a in args[:2] if not a.startswith("-"))
    result = _invoke(*args, "--uri", "http://127.0.0.1:1")
    out = _plain(result.output)
    assert result.exit_code == 2, out
    assert (
        f"error: watchkeeper {command} works on the database itself and needs a database URI "
        "(sqlite:///... or postgresql+psycopg://...), but --uri is the server URL http://127.0.0.1:1"
    ) in out
    result = runner.invoke(app, args, env={"WATCHKEEPER_URI": "https://wk.example"})
    out = _plain(result.output)
    assert result.exit_code == 2 and "but WATCHKEEPER_URI is the server URL https://wk.example" in out


def test_load_reference_over_http_is_the_logged_profile(deployment, monkeypatch):
    read = deployment.tokens["net", "read"]
    ref = wk.load_reference("kpi-ae", 2, project="net", uri=deployment.url, token=read)
    assert ref == deployment.reference and ref.rows == 300
    assert ref == wk.load_reference("kpi-ae", "2", project="net", uri=deployment.uri)

    with pytest.raises(
        KeyError, match="no reference 'holdout' for model 'kpi-ae' version '2' in project 'net'"
    ):
        wk.load_reference("kpi-ae", 2, "holdout", project="net", uri=deployment.url, token=read)
    with pytest.raises(StoreError, match="this token may not read project 'net'"):
        wk.load_reference(
            "kpi-ae", 2, project="net", uri=deployment.url, token=deployment.tokens["shop", "read"]
        )
    with pytest.raises(
        StoreError, match=r"needs a token .*wk\.load_reference\(token=\.\.\.\) or WATCHKEEPER_TOKEN"
    ):
        wk.load_reference("kpi-ae", 2, project="net", uri=deployment.url)

    monkeypatch.setenv("WATCHKEEPER_URI", deployment.url)
    monkeypatch.setenv("WATCHKEEPER_TOKEN", read)
    monkeypatch.setenv("WATCHKEEPER_PROJECT", "net")
    assert wk.load_reference("kpi-ae", 2) == deployment.reference
