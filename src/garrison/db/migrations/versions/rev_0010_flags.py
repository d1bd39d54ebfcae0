"""flags: feature flag definitions

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None
destructive = False  # expand only: new tables and columns (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "flags",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("description", sa.String(1000), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("variants", sa.JSON(), nullable=False),
        sa.Column("default_variant", sa.String(64), nullable=False),
        sa.Column("environments", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_flags")),
    )


def downgrade() -> None:
    op.drop_table("flags")
