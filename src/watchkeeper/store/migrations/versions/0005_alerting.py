"""Alerting and monitoring bookkeeping: silences, when each alert's condition last held and since
when it is kept firing (``keep_firing_for`` across restarts), and the monitors' cursors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Time = sa.Double


def upgrade() -> None:
    with op.batch_alter_table("alert_states") as batch:
        batch.add_column(sa.Column("last_true_at", Time))
        batch.add_column(sa.Column("keep_firing_since", Time))
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("project", sa.String(128)),
        sa.Column("matchers", sa.JSON, nullable=False),
        sa.Column("starts_at", Time, nullable=False),
        sa.Column("ends_at", Time, nullable=False),
        sa.Column("created_by", sa.String(256), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_silences"),
    )
    op.create_index("ix_alert_silences_ends_at", "alert_silences", ["ends_at"])
    op.create_table(
        "monitor_state",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_monitor_state"),
    )


def downgrade() -> None:
    op.drop_table("monitor_state")
    op.drop_index("ix_alert_silences_ends_at", table_name="alert_silences")
    op.drop_table("alert_silences")
    with op.batch_alter_table("alert_states") as batch:
        batch.drop_column("keep_firing_since")
        batch.drop_column("last_true_at")
