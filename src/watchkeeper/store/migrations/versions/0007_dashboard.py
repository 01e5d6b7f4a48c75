"""The dashboard's tables: roll-ups of subject series' points (filled from the points already stored), and
the history of alert state changes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Time = sa.Double
_BACKFILL_SERIES = 200  # subject series rolled up per statement while filling the table


def upgrade() -> None:
    op.create_table(
        "point_rollups",
        sa.Column("series_id", sa.Integer, sa.ForeignKey("series.id"), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("k", sa.BigInteger, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("nan", sa.Integer, nullable=False),
        sa.Column("sum", sa.Double),
        sa.Column("min", sa.Double),
        sa.Column("max", sa.Double),
        sa.Column("last_t", Time, nullable=False),
        sa.Column("last_value", sa.Double),
        sa.PrimaryKeyConstraint("series_id", "width", "k", name="pk_point_rollups"),
    )
    op.create_table(
        "alert_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("rule_id", sa.Integer, sa.ForeignKey("alert_rules.id")),
        sa.Column("rule_name", sa.String(256), nullable=False),
        sa.Column("project", sa.String(128)),
        sa.Column("labels_key", sa.String(1024), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("t", Time, nullable=False),
        sa.Column("value", sa.Double),
        sa.PrimaryKeyConstraint("id", name="pk_alert_events"),
    )
    op.create_index("ix_alert_events_t", "alert_events", ["t"])
    op.create_index("ix_alert_events_project_t", "alert_events", ["project", "t"])
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Roll up the points already stored of every subject series (the same code the write path runs)."""
    from watchkeeper.store.signals import refresh_rollups

    found = conn.exec_driver_sql(
        "SELECT s.id, MIN(p.t), MAX(p.t) FROM series s JOIN points p ON p.series_id = s.id "
        "WHERE s.run_id IS NULL GROUP BY s.id"
    ).all()
    for i in range(0, len(found), _BACKFILL_SERIES):
        refresh_rollups(conn, {sid: (lo, hi) for sid, lo, hi in found[i : i + _BACKFILL_SERIES]})


def downgrade() -> None:
    op.drop_table("alert_events")
    op.drop_table("point_rollups")
