"""status: when each maintenance window's start and end were announced

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02

The worker claims each announcement (``status.maintenance.started`` / ``.ended``) by
setting its column with a conditional UPDATE. Windows whose start or end had already passed
when this revision ran are marked announced at that time (``starts_at`` / ``ends_at``):
the upgrade must not mail every subscriber about windows that are long over.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None
destructive = False  # expand only: new nullable columns (see garrison.ops.deploy.migrations)

TABLE = "status_maintenances"
INDEX = "ix_status_maintenances_ended_announced_at"


def upgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("started_announced_at", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("ended_announced_at", UtcDateTime(), nullable=True))
        batch.create_index(INDEX, ["ended_announced_at"])
    windows = sa.table(
        TABLE,
        sa.column("starts_at", UtcDateTime()),
        sa.column("ends_at", UtcDateTime()),
        sa.column("started_announced_at", UtcDateTime()),
        sa.column("ended_announced_at", UtcDateTime()),
    )
    now = datetime.now(UTC)
    op.execute(
        windows.update()
        .where(windows.c.starts_at <= now)
        .values(started_announced_at=windows.c.starts_at)
    )
    op.execute(
        windows.update()
        .where(windows.c.ends_at <= now)
        .values(ended_announced_at=windows.c.ends_at)
    )


def downgrade() -> None:
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_index(INDEX)
        batch.drop_column("ended_announced_at")
        batch.drop_column("started_announced_at")
