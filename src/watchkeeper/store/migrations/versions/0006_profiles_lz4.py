"""PostgreSQL: compress the profiles' bytes with lz4 instead of pglz when they are TOASTed.

A serialised profile (100+ KiB) is stored out of line and compressed by PostgreSQL's default, pglz, which
spent most of the time of writing a window profile to shrink it by about a third; lz4 (PostgreSQL 14 and
later, when built with it) compresses at several times the speed. Only values written from now on use it;
stored ones stay as they are and read as before. A no-op on SQLite, on PostgreSQL before 14, and on a server
built without lz4 (it keeps pglz).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LZ4 = 140000  # server_version_num of PostgreSQL 14, the first with per-column compression


def _lz4_available(conn: sa.Connection) -> bool:
    if conn.dialect.name != "postgresql":
        return False
    if int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) < _LZ4:
        return False
    # a server built without lz4 refuses the setting: try it in a savepoint rather than parse its build flags
    savepoint = conn.begin_nested()
    try:
        conn.exec_driver_sql("SET LOCAL default_toast_compression = 'lz4'")
    except sa.exc.DBAPIError:
        savepoint.rollback()
        return False
    savepoint.rollback()
    return True


def upgrade() -> None:
    conn = op.get_bind()
    if _lz4_available(conn):
        op.execute("ALTER TABLE profiles ALTER COLUMN data SET COMPRESSION lz4")


def downgrade() -> None:
    conn = op.get_bind()
    if (
        conn.dialect.name == "postgresql"
        and int(conn.exec_driver_sql("SHOW server_version_num").scalar_one()) >= _LZ4
    ):
        op.execute("ALTER TABLE profiles ALTER COLUMN data SET COMPRESSION default")
