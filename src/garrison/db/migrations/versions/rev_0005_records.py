"""records: collection registry, schema changes, idempotency keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import AsciiId, UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "garrison_collections",
        sa.Column("id", AsciiId(), nullable=False),
        sa.Column("name", sa.String(48), nullable=False),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garrison_collections")),
        sa.UniqueConstraint("name", name=op.f("uq_garrison_collections_name")),
    )
    op.create_table(
        "garrison_schema_changes",
        sa.Column("id", AsciiId(), nullable=False),
        sa.Column("collection", sa.String(48), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("inverse", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(80), nullable=True),
        sa.Column("applied_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garrison_schema_changes")),
    )
    op.create_index(
        op.f("ix_garrison_schema_changes_collection"), "garrison_schema_changes", ["collection"]
    )
    op.create_table(
        "garrison_idempotency_keys",
        sa.Column("id", AsciiId(), nullable=False),
        sa.Column("scope", sa.String(160), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("fingerprint", sa.LargeBinary(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_garrison_idempotency_keys")),
        sa.UniqueConstraint("scope", "key", name=op.f("uq_garrison_idempotency_keys_scope_key")),
    )
    op.create_index(
        op.f("ix_garrison_idempotency_keys_expires_at"), "garrison_idempotency_keys", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("garrison_idempotency_keys")
    op.drop_table("garrison_schema_changes")
    op.drop_table("garrison_collections")
