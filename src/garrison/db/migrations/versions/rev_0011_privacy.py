"""privacy: per-subject keys, sealed audit data, policies and jobs

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import LongText, UtcDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None
destructive = False  # expand only: new tables and columns (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    with op.batch_alter_table("audit_entries") as batch:
        batch.add_column(sa.Column("subject_id", sa.String(36), nullable=True))
        batch.add_column(sa.Column("sealed", LongText, nullable=True))
        batch.create_index("ix_audit_entries_subject_id", ["subject_id"])
    op.create_table(
        "privacy_subject_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_subject_keys")),
        sa.UniqueConstraint("subject_id", name=op.f("uq_privacy_subject_keys_subject_id")),
    )
    op.create_table(
        "privacy_policies",
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("erasure", sa.JSON(), nullable=False),
        sa.Column("retention", sa.JSON(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("collection", name=op.f("pk_privacy_policies")),
    )
    op.create_table(
        "privacy_jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(36), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("active", sa.String(64), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("archive", sa.String(255), nullable=True),
        sa.Column("archive_bytes", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("finished_at", UtcDateTime(), nullable=True),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_privacy_jobs")),
        sa.UniqueConstraint("active", name=op.f("uq_privacy_jobs_active")),
    )
    op.create_index(op.f("ix_privacy_jobs_subject_id"), "privacy_jobs", ["subject_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_privacy_jobs_subject_id"), table_name="privacy_jobs")
    op.drop_table("privacy_jobs")
    op.drop_table("privacy_policies")
    op.drop_table("privacy_subject_keys")
    with op.batch_alter_table("audit_entries") as batch:
        batch.drop_index("ix_audit_entries_subject_id")
        batch.drop_column("sealed")
        batch.drop_column("subject_id")
