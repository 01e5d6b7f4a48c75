"""API tokens of the server, stored as the sha256 of the token (see ``watchkeeper.store.tokens``).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Time = sa.Double


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.String(16), nullable=False),
        sa.Column("project", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", Time, nullable=False),
        sa.Column("last_used_at", Time),
        sa.Column("revoked_at", Time),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    )
    op.create_index("ix_tokens_project", "tokens", ["project"])


def downgrade() -> None:
    op.drop_table("tokens")
