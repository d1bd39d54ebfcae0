"""files: metadata of stored objects, bound to records' file fields

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import AsciiId, UtcDateTime

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", AsciiId(), nullable=False),
        sa.Column("collection", sa.String(48), nullable=True),
        sa.Column("record_id", AsciiId(), nullable=True),
        sa.Column("field", sa.String(48), nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(200), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("attached_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_files")),
    )
    op.create_index("ix_files_record", "files", ["collection", "record_id", "field"])
    op.create_index("ix_files_pending", "files", ["record_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_files_pending", table_name="files")
    op.drop_index("ix_files_record", table_name="files")
    op.drop_table("files")
