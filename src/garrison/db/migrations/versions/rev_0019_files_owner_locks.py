"""files: a lock row per uploader (quota checks one at a time on MariaDB), an owner index

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07

Two uploads of one owner at the same moment each counted the owner's bytes before the other
committed, so together they could pass the storage quota. The transaction that stores an
owner's files now writes the owner's row of ``files_owner_locks`` first; the second upload
waits for the first to commit and then counts its bytes. ``ix_files_owner`` makes that count
an index range instead of a scan of every file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None
destructive = False  # expand only: a new table and an index (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "files_owner_locks",
        sa.Column("owner", sa.String(64), primary_key=True),
        sa.Column("locked_at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_files_owner", "files", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_files_owner", table_name="files")
    op.drop_table("files_owner_locks")
