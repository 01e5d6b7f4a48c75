"""Shared fixtures: a fresh store per test on SQLite and, where a server is reachable, on PostgreSQL.

PostgreSQL: ``WATCHKEEPER_TEST_PG_URI`` names an admin connection (default: postgres on 127.0.0.1:5432,
trust auth). The session creates one migrated database and truncates its tables before each test that uses
it; tests of migrations get an empty database of their own. Databases are dropped at the end. Without a
reachable server those tests skip with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

PG_ADMIN = os.environ.get("WATCHKEEPER_TEST_PG_URI", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def _pg_admin_engine() -> sa.Engine:
    """An AUTOCOMMIT connection to the admin database, or a skip saying why there is none."""
    try:
        engine = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except Exception as exc:  # no server, no driver, refused: all mean "cannot run here"
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {type(exc).__name__}: {str(exc)[:200]}")
    return engine


@contextmanager
def _database(prefix: str) -> Iterator[str]:
    """A new, empty database, dropped afterwards; yields its URI."""
    engine = _pg_admin_engine()
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


@pytest.fixture(scope="session")
def pg_session_uri() -> Iterator[str]:
    """One database migrated to head for the whole session; skips when PostgreSQL is unreachable."""
    from watchkeeper.store import Store

    with _database("wk_test") as uri:
        Store(uri).close()
        yield uri


@pytest.fixture
def pg_uri(pg_session_uri: str) -> str:
    """The session's PostgreSQL database, emptied: every table truncated (a new database per test would
    cost a second or two each)."""
    from watchkeeper.store.schema import metadata

    engine = sa.create_engine(pg_session_uri)
    tables = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return pg_session_uri


@pytest.fixture
def empty_pg_uri() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no schema); skips when PostgreSQL is unreachable."""
    with _database("wk_empty") as uri:
        yield uri


@pytest.fixture
def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/store/watchkeeper.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_uri(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once per database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_uri")
    return request.getfixturevalue("pg_uri")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_uri(request: pytest.FixtureRequest) -> str:
    """A database with no schema yet, per dialect."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_uri")
    return request.getfixturevalue("empty_pg_uri")


@pytest.fixture
def store(store_uri: str, tmp_path) -> Iterator:
    from watchkeeper.store import Store

    s = Store(store_uri, artifact_root=tmp_path / "artifacts")
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _no_leftover_runs(monkeypatch) -> Iterator[None]:
    """Each test starts with no current run and does not see the developer's environment."""
    for var in ("WATCHKEEPER_URI", "WATCHKEEPER_PROJECT", "WATCHKEEPER_MODE"):
        monkeypatch.delenv(var, raising=False)
    yield
    from watchkeeper.sdk import api

    for run in list(api._active):
        run.finish()
