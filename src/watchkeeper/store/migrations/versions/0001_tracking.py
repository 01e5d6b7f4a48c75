"""Tracking: projects, runs, signal series and points, table samples, artifacts.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Time = sa.Double
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_projects"),
        sa.UniqueConstraint("name", name="uq_projects_name"),
    )
    op.create_table(
        "runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("job_type", sa.String(64)),
        sa.Column("group_name", sa.String(256)),
        sa.Column("notes", sa.Text),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("model", sa.String(256)),
        sa.Column("version", sa.String(128)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("host", sa.String(256)),
        sa.Column("pid", sa.Integer),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("heartbeat_at", Time, nullable=False),
        sa.Column("ended_at", Time),
        sa.Column("exit_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("last_step", sa.BigInteger),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_runs_project_id_projects"),
    )
    op.create_index("ix_runs_project_id_created_at", "runs", ["project_id", "created_at"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "series",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("labels_key", sa.String(1024), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_series"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_series_project_id_projects"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_series_run_id_runs"),
        sa.UniqueConstraint(
            "project_id", "subject", "name", "labels_key", name="uq_series_project_id_subject_name_labels_key"
        ),
    )
    op.create_index("ix_series_run_id", "series", ["run_id"])
    op.create_table(
        "points",
        sa.Column("series_id", sa.Integer, nullable=False),
        sa.Column("step", sa.BigInteger),
        sa.Column("t", Time, nullable=False),
        sa.Column("value", sa.Double),
        sa.ForeignKeyConstraint(["series_id"], ["series.id"], name="fk_points_series_id_series"),
    )
    op.create_index("ix_points_series_id_t", "points", ["series_id", "t"])
    op.create_table(
        "samples",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("step", sa.BigInteger),
        sa.Column("t", Time, nullable=False),
        sa.Column("row_index", sa.Integer, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_samples_project_id_projects"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_samples_run_id_runs"),
    )
    op.create_index("ix_samples_run_id_key_step", "samples", ["run_id", "key", "step"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("metadata", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifacts"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_artifacts_project_id_projects"),
        sa.ForeignKeyConstraint(["created_by"], ["runs.id"], name="fk_artifacts_created_by_runs"),
        sa.UniqueConstraint("project_id", "name", "version", name="uq_artifacts_project_id_name_version"),
    )
    op.create_table(
        "artifact_files",
        sa.Column("artifact_id", sa.Integer, nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("artifact_id", "path", name="pk_artifact_files"),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name="fk_artifact_files_artifact_id_artifacts"
        ),
    )
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("artifact_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("t", Time, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "artifact_id", "role", name="pk_run_artifacts"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_run_artifacts_run_id_runs"),
        sa.ForeignKeyConstraint(
            ["artifact_id"], ["artifacts.id"], name="fk_run_artifacts_artifact_id_artifacts"
        ),
    )


def downgrade() -> None:
    for table in ("run_artifacts", "artifact_files", "artifacts", "samples", "points", "series", "runs"):
        op.drop_table(table)
    op.drop_table("projects")
