"""rate-limit quotas per API key or role

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "rate_limit_quotas",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("subject_type", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(191), nullable=False),
        sa.Column("requests_per_minute", sa.Integer(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_limit_quotas")),
        sa.UniqueConstraint(
            "subject_type", "subject", name=op.f("uq_rate_limit_quotas_subject_type_subject")
        ),
    )


def downgrade() -> None:
    op.drop_table("rate_limit_quotas")
