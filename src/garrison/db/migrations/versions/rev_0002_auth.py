"""auth: users, roles, refresh tokens, signing keys, service clients, API keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
destructive = False  # expand only (see garrison.ops.deploy.migrations)


def _ts(nullable: bool = False) -> sa.types.TypeEngine[datetime]:
    return sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


# Written out here (not imported) so this revision never changes when the code does.
BUILTIN_ROLES = [
    ("admin", "Everything, including user and key administration", ["*"]),
    (
        "user",
        "A signed-in person: own profile, own API keys, records",
        ["profile:read", "profile:write", "api_keys:read", "api_keys:write", "records:*"],
    ),
    ("service", "Machine callers: records", ["records:*"]),
]


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("email_verified_at", _ts(), nullable=True),
        sa.Column("token_generation", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_users")),
        sa.UniqueConstraint("email", name=op.f("uq_auth_users_email")),
    )
    roles = op.create_table(
        "auth_roles",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("permissions", sa.JSON(), nullable=False),
        sa.Column("builtin", sa.Boolean(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_auth_roles")),
    )
    op.create_table(
        "auth_user_roles",
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_user_roles_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["role_name"],
            ["auth_roles.name"],
            name=op.f("fk_auth_user_roles_role_name_auth_roles"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name=op.f("pk_auth_user_roles")),
    )
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("family_id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("used_at", _ts(), nullable=True),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.Column("family_expires_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_refresh_tokens_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_refresh_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_refresh_tokens_token_hash")),
    )
    op.create_index(op.f("ix_auth_refresh_tokens_family_id"), "auth_refresh_tokens", ["family_id"])
    op.create_index(op.f("ix_auth_refresh_tokens_user_id"), "auth_refresh_tokens", ["user_id"])
    op.create_table(
        "auth_signing_keys",
        sa.Column("kid", sa.String(64), nullable=False),
        sa.Column("alg", sa.String(16), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("signs_from", _ts(), nullable=False),
        sa.Column("retired_at", _ts(), nullable=True),
        sa.Column("published_until", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("kid", name=op.f("pk_auth_signing_keys")),
    )
    op.create_table(
        "auth_service_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_auth_service_clients")),
    )
    op.create_table(
        "auth_api_keys",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.Column("last_used_at", _ts(), nullable=True),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_api_keys_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_auth_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_auth_api_keys_user_id"), "auth_api_keys", ["user_id"])
    op.create_table(
        "auth_one_time_tokens",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=True),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.Column("used_at", _ts(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_one_time_tokens_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_one_time_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_auth_one_time_tokens_token_hash")),
    )
    op.create_index(op.f("ix_auth_one_time_tokens_user_id"), "auth_one_time_tokens", ["user_id"])
    now = datetime.now(UTC)
    op.bulk_insert(
        roles,
        [
            {
                "name": name,
                "description": description,
                "permissions": permissions,
                "builtin": True,
                "created_at": now,
            }
            for name, description, permissions in BUILTIN_ROLES
        ],
    )


def downgrade() -> None:
    op.drop_table("auth_one_time_tokens")
    op.drop_table("auth_api_keys")
    op.drop_table("auth_service_clients")
    op.drop_table("auth_signing_keys")
    op.drop_table("auth_refresh_tokens")
    op.drop_table("auth_user_roles")
    op.drop_table("auth_roles")
    op.drop_table("auth_users")
