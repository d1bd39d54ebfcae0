"""privacy: export jobs carry a lease and an attempt count; subject keys are stored wrapped

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03

An export job is claimed with a conditional UPDATE that sets ``lease_until`` and bumps
``attempts``; the runner renews the lease with each progress step, and every write it makes
names its attempt, so a job whose runner died (a crash, a deploy) is claimed again by the
worker once the lease has passed, and the old runner, should it come back, changes nothing.
A job that was ``running`` before this revision has no lease and counts as abandoned.

``privacy_subject_keys.key`` widens to hold a key sealed with the installation's keyring
(``gv1.<master key id>.<…>``, about 100 characters) instead of its bare base64. Rows written
before stay readable as they are; ``garrison secrets rotate`` wraps them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None
destructive = False  # expand only: new columns, a wider one (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    with op.batch_alter_table("privacy_jobs") as batch:
        batch.add_column(sa.Column("lease_until", UtcDateTime(), nullable=True))
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("privacy_subject_keys") as batch:
        batch.alter_column(
            "key", existing_type=sa.String(64), type_=sa.String(255), existing_nullable=False
        )


def downgrade() -> None:
    # The key column stays wide: narrowing it would fail on wrapped keys, and a wider column
    # harms nothing. A release before 0017 cannot open wrapped keys: run it only on a
    # database whose keys it wrote.
    with op.batch_alter_table("privacy_jobs") as batch:
        batch.drop_column("attempts")
        batch.drop_column("lease_until")
