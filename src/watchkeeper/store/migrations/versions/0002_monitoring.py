"""Monitoring and alerting: model versions, profiles, references, labels, alert rules, states and
notifications, and the ingest batch ids that make resends idempotent.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Time = sa.Double
BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("training_run_id", sa.String(64)),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name="fk_model_versions_project_id_projects"
        ),
        sa.ForeignKeyConstraint(
            ["training_run_id"], ["runs.id"], name="fk_model_versions_training_run_id_runs"
        ),
        sa.UniqueConstraint(
            "project_id", "model", "version", name="uq_model_versions_project_id_model_version"
        ),
    )
    op.create_table(
        "profiles",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("window_start", Time, nullable=False),
        sa.Column("window_end", Time, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("format_version", sa.SmallInteger, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_profiles"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_profiles_project_id_projects"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_profiles_run_id_runs"),
    )
    op.create_index(
        "ix_profiles_project_id_subject_window_start", "profiles", ["project_id", "subject", "window_start"]
    )
    op.create_table(
        "references",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("model", sa.String(256), nullable=False),
        sa.Column("version", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("profile_id", sa.BigInteger, nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("created_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_references"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_references_project_id_projects"),
        sa.ForeignKeyConstraint(["profile_id"], ["profiles.id"], name="fk_references_profile_id_profiles"),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_references_run_id_runs"),
        sa.UniqueConstraint(
            "project_id", "model", "version", "name", name="uq_references_project_id_model_version_name"
        ),
    )
    op.create_table(
        "labels",
        sa.Column("project_id", sa.Integer, nullable=False),
        sa.Column("subject", sa.String(320), nullable=False),
        sa.Column("prediction_id", sa.String(256), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("t", Time, nullable=False),
        sa.PrimaryKeyConstraint("project_id", "subject", "prediction_id", name="pk_labels"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_labels_project_id_projects"),
    )
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("project_id", sa.Integer),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("updated_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alert_rules"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name="fk_alert_rules_project_id_projects"),
        sa.UniqueConstraint("project_id", "name", name="uq_alert_rules_project_id_name"),
    )
    op.create_table(
        "alert_states",
        sa.Column("rule_id", sa.Integer, nullable=False),
        sa.Column("labels_key", sa.String(1024), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("active_at", Time),
        sa.Column("fired_at", Time),
        sa.Column("resolved_at", Time),
        sa.Column("last_value", sa.Double),
        sa.Column("last_notified_at", Time),
        sa.PrimaryKeyConstraint("rule_id", "labels_key", name="pk_alert_states"),
        sa.ForeignKeyConstraint(["rule_id"], ["alert_rules.id"], name="fk_alert_states_rule_id_alert_rules"),
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.Integer),
        sa.Column("labels_key", sa.String(1024), nullable=False),
        sa.Column("notifier", sa.String(128), nullable=False),
        sa.Column("t", Time, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_alert_notifications"),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], name="fk_alert_notifications_rule_id_alert_rules"
        ),
    )
    op.create_index("ix_alert_notifications_rule_id_t", "alert_notifications", ["rule_id", "t"])
    op.create_table(
        "ingest_batches",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("received_at", Time, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ingest_batches"),
    )


def downgrade() -> None:
    for table in (
        "ingest_batches",
        "alert_notifications",
        "alert_states",
        "alert_rules",
        "labels",
        "references",
        "profiles",
        "model_versions",
    ):
        op.drop_table(table)
