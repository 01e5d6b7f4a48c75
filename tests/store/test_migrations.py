"""The schema revisions: created on first open, checked on every open, upgraded only on request."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from watchkeeper.errors import SchemaOutdatedError, SchemaTooNewError
from watchkeeper.store import Store, migrate
from watchkeeper.store.engine import create_engine
from watchkeeper.store.schema import metadata

# the newest revision file in the migrations folder: the head every fresh store must reach
VERSIONS = Path(migrate.__file__).parent / "migrations" / "versions"
NEWEST = max(p.name.split("_", 1)[0] for p in VERSIONS.glob("[0-9]*_*.py"))


def test_first_open_creates_the_schema_at_head(empty_uri):
    Store(empty_uri).close()
    assert migrate.current(create_engine(empty_uri)) == migrate.head() == NEWEST


def test_migrations_build_exactly_the_schema_the_queries_use(empty_uri):
    engine = create_engine(empty_uri)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_an_old_schema_fails_with_the_upgrade_command_and_upgrades(empty_uri):
    engine = create_engine(empty_uri)
    migrate.upgrade(engine, "0001")
    with pytest.raises(SchemaOutdatedError) as info:
        Store(empty_uri)
    message = str(info.value)
    assert "revision 0001" in message and f"needs {NEWEST}" in message
    assert "watchkeeper db upgrade --uri" in message

    from typer.testing import CliRunner

    from watchkeeper.cli import app

    result = CliRunner().invoke(app, ["db", "upgrade", "--uri", empty_uri])
    assert result.exit_code == 0, result.output
    assert f"0001 -> {NEWEST}" in result.output
    Store(empty_uri).close()  # opens now


def test_a_newer_schema_is_refused(empty_uri):
    engine = create_engine(empty_uri)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaTooNewError, match="newer watchkeeper"):
        Store(empty_uri)


def test_a_foreign_database_is_not_taken_over(sqlite_uri):
    engine = create_engine(sqlite_uri)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE someone_elses (x INTEGER)"))
    with pytest.raises(SchemaOutdatedError, match="no watchkeeper schema revision"):
        Store(sqlite_uri)


def test_downgrade_then_upgrade_round_trips(sqlite_uri):
    engine = create_engine(sqlite_uri)
    migrate.upgrade(engine)
    from alembic import command

    cfg = migrate._config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    migrate.upgrade(engine)
    assert migrate.current(engine) == NEWEST


def test_sqlite_store_uses_wal(sqlite_uri):
    store = Store(sqlite_uri)
    with store.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    store.close()


def test_revision_0008_files_stored_samples_under_their_own_time(empty_uri):
    # rows stored before 0008: one with a numeric t (a sampled request), one whose t is text (a logged
    # table's column), one without t; each is filed under the time its queries read before
    engine = create_engine(empty_uri)
    migrate.upgrade(engine, "0007")
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', 0)"))
        for i, data in enumerate(['{"t": 1234.5, "x": 1}', '{"t": "noon"}', '{"x": 2}']):
            conn.execute(
                sa.text(
                    "INSERT INTO samples (project_id, key, t, row_index, data) "
                    "VALUES (1, 'k', 1000.0, :i, :d)"
                ),
                {"i": i, "d": data},
            )
    migrate.upgrade(engine)
    with engine.connect() as conn:
        got = conn.execute(sa.text("SELECT row_index, row_t FROM samples ORDER BY row_index")).all()
    assert [tuple(r) for r in got] == [(0, 1234.5), (1, 1000.0), (2, 1000.0)]
    engine.dispose()
