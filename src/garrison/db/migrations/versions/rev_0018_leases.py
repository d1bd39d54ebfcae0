"""ops: named leases (one holder across every host), first used by the backup schedule

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07

The worker's backup jobs ran in one process per host (a lock file in the data directory), so
two hosts running workers against one database both took the daily full. A lease row names
the process that runs them; it is renewed while held and taken over once it has expired.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None
destructive = False  # expand only: a new table (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "garrison_leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("garrison_leases")
