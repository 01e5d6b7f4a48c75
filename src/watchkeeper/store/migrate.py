"""Schema revisions: what a database is on, what this watchkeeper needs, and the upgrade between them.

A new, empty database is brought to the current schema on first open (that is what an embedded store should
do). A database on an older revision is never migrated behind the user's back: opening it fails with the
exact command that upgrades it, because a migration of a shared PostgreSQL is a decision, not a side effect.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from watchkeeper.errors import SchemaOutdatedError, SchemaTooNewError

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    """The schema revision this version of watchkeeper is written for."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}


def current(engine: Engine) -> str | None:
    """The database's schema revision, or None when it has never been migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: this watchkeeper's head)."""
    with _lock(engine):
        _upgrade_locked(engine, revision)


def _upgrade_locked(engine: Engine, revision: str = "head") -> None:
    cfg = _config()
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)
        conn.commit()


def upgrade_command(uri: str) -> str:
    return f"watchkeeper db upgrade --uri '{uri}'"


def check(engine: Engine, uri: str, *, create: bool = True) -> None:
    """Fail with the upgrade command unless the database is on this watchkeeper's schema.

    An empty database is created at the head revision when ``create`` is true.
    """
    rev = current(engine)
    want = head()
    if rev == want:
        return
    if create:
        # Another process may be creating this database right now, and has committed part of it: wait for
        # its migration lock, then look again, and create the schema only if the database is still empty.
        with _lock(engine):
            rev = current(engine)
            if rev == want:
                return
            if rev is None and not sa.inspect(engine).get_table_names():
                _upgrade_locked(engine)
                return
        if rev is None:
            raise SchemaOutdatedError(
                f"the database at {_redact(uri)} has tables but no watchkeeper schema revision; "
                "point watchkeeper at an empty database or one it created"
            )
    if rev is not None and rev not in known_revisions():
        raise SchemaTooNewError(
            f"the database at {_redact(uri)} is on schema revision {rev}, which this watchkeeper "
            f"(schema {want}) does not know: it was migrated by a newer watchkeeper; upgrade the package"
        )
    raise SchemaOutdatedError(
        f"the database at {_redact(uri)} is on schema revision {rev or 'none'}, this watchkeeper needs "
        f"{want}. Upgrade it with:\n    {upgrade_command(_redact(uri))}"
    )


def _redact(uri: str) -> str:
    return sa.engine.make_url(uri).render_as_string(hide_password=True)


@contextmanager
def _lock(engine: Engine) -> Iterator[None]:
    """Serialise migrations between processes: a file lock beside a SQLite file, an advisory lock on
    PostgreSQL."""
    if engine.dialect.name == "sqlite":
        db = engine.url.database
        if not db or db == ":memory:":
            yield
            return
        fd = os.open(f"{db}.migrate.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
    elif engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(7415200)"))
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(7415200)"))
                conn.commit()
    else:
        yield
