"""Engines for the store's URIs, and the few places where SQL dialects differ.

SQLite is the embedded default. Several processes may write one file (a server's workers, a training job and
a notebook), so every connection uses WAL journaling, a generous busy timeout, and write transactions that
take the write lock up front (``BEGIN IMMEDIATE``): a deferred transaction that later upgrades to a writer can
fail with SQLITE_BUSY without waiting, an immediate one waits its turn.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import StaticPool

from watchkeeper.errors import StoreError

DEFAULT_DIR = ".watchkeeper"
BUSY_TIMEOUT_MS = 60_000
POOL_SIZE = 10
"""Connections an engine keeps open once it has needed them (opened on demand, not up front)."""


def default_uri() -> str:
    """The store URI when none is given: ``WATCHKEEPER_URI``, else a SQLite file under ``./.watchkeeper``."""
    return os.environ.get("WATCHKEEPER_URI") or f"sqlite:///{DEFAULT_DIR}/watchkeeper.db"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a SQLite URI, or None for other databases and in-memory SQLite."""
    url = make_url(uri)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


# one encoder: json.dumps with options builds a new encoder on every call, which cost about a third of the
# time of serialising a sampled request row
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))


def json_text(value: Any) -> str:
    """The stored text of a JSON column's value. JSON has no NaN: values are tagged by
    watchkeeper.store.codec before they get here, so a NaN at this point is an error (``ValueError``) that
    must surface rather than be written as invalid JSON; ``TypeError`` for a value JSON cannot hold."""
    return _ENCODER.encode(value)


_dumps = json_text


def create_engine(uri: str) -> Engine:
    """An engine for ``uri``: ``sqlite:///path``, ``sqlite://`` (in memory) or ``postgresql+psycopg://...``."""
    try:
        url = make_url(uri)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"store uri {uri!r} is not a database URL (expected e.g. sqlite:///path/to/watchkeeper.db "
            "or postgresql+psycopg://user@host/db)"
        ) from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        try:
            # SQLAlchemy's default pool keeps 5 connections: under a server's 8 concurrent requests it closed
            # and reopened a connection (a new PostgreSQL backend) for most requests past the fifth. The
            # most connections per process stays 15, as with the default.
            return sa.create_engine(
                url, json_serializer=_dumps, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=5
            )
        except ModuleNotFoundError as exc:
            raise StoreError(
                "PostgreSQL needs the psycopg driver: pip install 'watchkeeper[postgres]'"
            ) from exc
    raise StoreError(f"store uri {uri!r}: unsupported database {backend!r} (expected sqlite or postgresql)")


def _sqlite_engine(url: sa.URL) -> Engine:
    memory = url.database in (None, "", ":memory:")
    if memory:
        engine = sa.create_engine(
            url,
            json_serializer=_dumps,
            poolclass=StaticPool,
            connect_args={"check_same_thread": False},
        )
    else:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        # pooled connections keep their page cache; one closed as overflow took it along
        engine = sa.create_engine(
            url,
            json_serializer=_dumps,
            connect_args={"timeout": BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=20,
        )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide when a transaction starts.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # index pages of a growing points table stay cached: ~1.5x the bulk insert rate past 1M rows
            cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def begin_write(engine: Engine) -> Any:
    """A context manager for a write transaction (takes SQLite's write lock at the start)."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE").begin()
    return engine.begin()


def insert_ignore(engine_or_dialect: Engine | sa.Dialect, table: sa.Table) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the engine's dialect."""
    name = (
        engine_or_dialect.name
        if isinstance(engine_or_dialect, sa.Dialect)
        else engine_or_dialect.dialect.name
    )
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise StoreError(f"unsupported database {name!r}")


def positional_insert(dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]) -> str:
    """``INSERT INTO table (cols) VALUES (?, ...)`` in the driver's own placeholder style, for executemany
    over plain tuples: the bulk path for points, where SQLAlchemy's per-row dict handling would cost more
    than half the insert rate."""
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s", "numeric": None}.get(dialect.paramstyle)
    if mark is None:
        raise StoreError(f"unsupported parameter style {dialect.paramstyle!r}")
    prep = dialect.identifier_preparer
    cols = ", ".join(prep.quote(c) for c in columns)
    marks = ", ".join([mark] * len(columns))
    return f"INSERT INTO {prep.format_table(table)} ({cols}) VALUES ({marks})"


def bulk_insert(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Insert ``rows`` (plain tuples in the order of ``columns``, JSON columns as their text) in the
    connection's transaction: ``COPY ... FROM STDIN`` on PostgreSQL, which took a third of the time of an
    executemany of 80 sampled request rows; an executemany of :func:`positional_insert` elsewhere. A driver
    error is raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``, ...), as ``execute`` would."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg":
        conn.exec_driver_sql(positional_insert(conn.dialect, table, columns), rows)
        return
    prep = conn.dialect.identifier_preparer
    sql = f"COPY {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) FROM STDIN"
    dbapi = conn.connection.dbapi_connection
    try:
        with dbapi.cursor() as cursor, cursor.copy(sql) as copy:  # type: ignore[union-attr]
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise sa.exc.DBAPIError.instance(
            sql, None, exc, conn.dialect.loaded_dbapi.Error, dialect=conn.dialect
        ) from exc
