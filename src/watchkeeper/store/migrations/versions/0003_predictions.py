"""Predictions that carry ids, kept so that labels arriving later can be joined to them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Time = sa.Double


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("prediction_id", sa.String(256), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("t", Time, nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "subject", "prediction_id", name="pk_predictions"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_predictions_project_id_projects"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_predictions_run_id_runs"),
    )
    op.create_index("ix_predictions_project_id_subject_t", "predictions", ["project_id", "subject", "t"])


def downgrade() -> None:
    op.drop_table("predictions")
