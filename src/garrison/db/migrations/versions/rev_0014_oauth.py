"""oauth: authorization-server clients and codes, identity providers, identities, sign-in
states; the client and scope of a refresh family

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import UtcDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None
destructive = False  # expand only: new tables and nullable columns


def upgrade() -> None:
    op.create_table(
        "auth_oauth_clients",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("client_type", sa.String(16), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=True),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("first_party", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_auth_oauth_clients")),
    )
    op.create_table(
        "auth_oauth_codes",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(255), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.Column("family_id", sa.String(36), nullable=True),
        sa.Column("access_jti", sa.String(64), nullable=True),
        sa.Column("access_expires_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_oauth_codes_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code_hash", name=op.f("pk_auth_oauth_codes")),
    )
    op.create_index(op.f("ix_auth_oauth_codes_user_id"), "auth_oauth_codes", ["user_id"])
    op.create_index(op.f("ix_auth_oauth_codes_expires_at"), "auth_oauth_codes", ["expires_at"])
    op.create_table(
        "auth_identity_providers",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("preset", sa.String(32), nullable=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("issuer", sa.String(2048), nullable=True),
        sa.Column("authorization_endpoint", sa.String(2048), nullable=True),
        sa.Column("token_endpoint", sa.String(2048), nullable=True),
        sa.Column("userinfo_endpoint", sa.String(2048), nullable=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("client_secret", sa.Text(), nullable=True),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("redirect_uris", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_auth_identity_providers")),
    )
    op.create_table(
        "auth_identities",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("last_used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_identities_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_auth_identities")),
        sa.UniqueConstraint(
            "provider", "subject", name=op.f("uq_auth_identities_provider_subject")
        ),
    )
    op.create_index(op.f("ix_auth_identities_user_id"), "auth_identities", ["user_id"])
    op.create_table(
        "auth_oauth_states",
        sa.Column("state_hash", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("browser_hash", sa.String(64), nullable=True),
        sa.Column("code_verifier", sa.Text(), nullable=True),
        sa.Column("nonce", sa.String(64), nullable=True),
        sa.Column("redirect_uri", sa.String(2048), nullable=True),
        sa.Column("user_id", sa.String(36), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.Column("used_at", UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["auth_users.id"],
            name=op.f("fk_auth_oauth_states_user_id_auth_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("state_hash", name=op.f("pk_auth_oauth_states")),
    )
    op.create_index(op.f("ix_auth_oauth_states_expires_at"), "auth_oauth_states", ["expires_at"])
    with op.batch_alter_table("auth_refresh_tokens") as batch:
        batch.add_column(sa.Column("client_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("scope", sa.JSON(), nullable=True))


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop an index a foreign key
    # needs while the table stays).
    with op.batch_alter_table("auth_refresh_tokens") as batch:
        batch.drop_column("scope")
        batch.drop_column("client_id")
    op.drop_table("auth_oauth_states")
    op.drop_table("auth_identities")
    op.drop_table("auth_identity_providers")
    op.drop_table("auth_oauth_codes")
    op.drop_table("auth_oauth_clients")
