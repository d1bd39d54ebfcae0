"""instance identity

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    table = op.create_table(
        "garrison_instance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garrison_instance")),
    )
    # One row that names this deployment (backups and status pages refer to it).
    op.bulk_insert(
        table,
        [{"id": 1, "instance_id": str(uuid.uuid4()), "created_at": datetime.now(UTC)}],
    )


def downgrade() -> None:
    op.drop_table("garrison_instance")
