"""A lease per job that must run in one process per store at a time (the monitors and alert rules), so that
several server replicas over one database elect one of them to run it, and another takes over when it stops
(see ``watchkeeper.store.leases``).

On SQLite, profile ids become AUTOINCREMENT: readers follow profiles by id (the monitor runner's cursor, the
/metrics totals), and since roll-ups delete old windows, SQLite's default (the largest id in use, plus one)
could hand a deleted id out again, below those cursors. The table is rebuilt (a copy of its rows).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("acquired_at", sa.Double, nullable=False),
        sa.Column("renewed_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
    )
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table("profiles", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
            pass


def downgrade() -> None:
    op.drop_table("leases")
    if op.get_bind().dialect.name == "sqlite":
        plain = {"sqlite_autoincrement": False}
        with op.batch_alter_table("profiles", recreate="always", table_kwargs=plain):
            pass
