"""deploy: history of deploys, rollbacks and promotions; promotion approvals

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "deploy_history",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("release_id", sa.String(64), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("colour", sa.String(8), nullable=False),
        sa.Column("actor", sa.String(191), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("checks_passed", sa.Boolean(), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_history")),
    )
    op.create_index(
        "ix_deploy_history_env_started", "deploy_history", ["environment", "started_at"]
    )
    op.create_table(
        "deploy_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("release_id", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(32), nullable=False),
        sa.Column("approver_id", sa.String(36), nullable=False),
        sa.Column("approver_email", sa.String(320), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_approvals")),
        sa.UniqueConstraint(
            "release_id",
            "environment",
            "approver_id",
            name=op.f("uq_deploy_approvals_release_id_environment_approver_id"),
        ),
    )


def downgrade() -> None:
    op.drop_table("deploy_approvals")
    op.drop_index("ix_deploy_history_env_started", table_name="deploy_history")
    op.drop_table("deploy_history")
