"""hardening: the deny list and lockouts in the database; audit and outbox text past 64 KiB

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None
# expand only: two new tables, three columns widened (TEXT to MEDIUMTEXT); a release
# before 0006 reads and writes them unchanged (see garrison.ops.deploy.migrations)
destructive = False

_WIDENED = (("audit_entries", "changes"), ("audit_entries", "data"), ("outbox_messages", "payload"))
_NULLABLE = {"changes": True, "data": True, "payload": False}


def _timestamp() -> sa.types.TypeEngine[Any]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "auth_denied_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("expires_at", _timestamp(), nullable=False),
        sa.Column("created_at", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("jti", name=op.f("pk_auth_denied_tokens")),
    )
    op.create_index(op.f("ix_auth_denied_tokens_expires_at"), "auth_denied_tokens", ["expires_at"])
    op.create_index(op.f("ix_auth_denied_tokens_created_at"), "auth_denied_tokens", ["created_at"])
    op.create_table(
        "auth_lockouts",
        sa.Column("tag", sa.String(64), nullable=False),
        sa.Column("locked_until", _timestamp(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_auth_lockouts")),
    )
    op.create_index(op.f("ix_auth_lockouts_locked_until"), "auth_lockouts", ["locked_until"])
    if op.get_bind().dialect.name == "mysql":
        for table, column in _WIDENED:
            op.alter_column(
                table,
                column,
                type_=mysql.MEDIUMTEXT(),
                existing_type=sa.Text(),
                existing_nullable=_NULLABLE[column],
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "mysql":
        for table, column in _WIDENED:
            op.alter_column(
                table,
                column,
                type_=sa.Text(),
                existing_type=mysql.MEDIUMTEXT(),
                existing_nullable=_NULLABLE[column],
            )
    op.drop_index(op.f("ix_auth_lockouts_locked_until"), table_name="auth_lockouts")
    op.drop_table("auth_lockouts")
    op.drop_index(op.f("ix_auth_denied_tokens_created_at"), table_name="auth_denied_tokens")
    op.drop_index(op.f("ix_auth_denied_tokens_expires_at"), table_name="auth_denied_tokens")
    op.drop_table("auth_denied_tokens")
