"""status page (samples, daily rollups, incidents, maintenance, subscribers) and alerts

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from garrison.db.types import BigId, UtcDateTime

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None
destructive = False  # expand only: new tables and columns (see garrison.ops.deploy.migrations)


def upgrade() -> None:
    op.create_table(
        "status_samples",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("detail", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_samples")),
    )
    op.create_index(
        "uq_status_samples_component_at", "status_samples", ["component", "at"], unique=True
    )
    op.create_index("ix_status_samples_at", "status_samples", ["at"])
    op.create_table(
        "status_days",
        sa.Column("component", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("operational", sa.Integer(), nullable=False),
        sa.Column("degraded", sa.Integer(), nullable=False),
        sa.Column("outage", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("component", "day", name=op.f("pk_status_days")),
    )
    op.create_table(
        "status_incidents",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("impact", sa.String(16), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incidents")),
    )
    op.create_index("ix_status_incidents_resolved_at", "status_incidents", ["resolved_at"])
    op.create_table(
        "status_incident_updates",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("incident_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["status_incidents.id"],
            name=op.f("fk_status_incident_updates_incident_id_status_incidents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_incident_updates")),
    )
    op.create_index(
        "ix_status_incident_updates_incident_id", "status_incident_updates", ["incident_id"]
    )
    op.create_table(
        "status_maintenances",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("components", sa.JSON(), nullable=False),
        sa.Column("starts_at", UtcDateTime(), nullable=False),
        sa.Column("ends_at", UtcDateTime(), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("cancelled_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_maintenances")),
    )
    op.create_index("ix_status_maintenances_ends_at", "status_maintenances", ["ends_at"])
    op.create_table(
        "status_subscribers",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("confirmed_at", UtcDateTime(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_status_subscribers")),
        sa.UniqueConstraint("email", name=op.f("uq_status_subscribers_email")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_status_subscribers_token_hash")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(191), nullable=False),
        sa.Column("open_key", sa.String(255), nullable=True),
        sa.Column("summary", sa.String(500), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("threshold", sa.Float(), nullable=True),
        sa.Column("opened_at", UtcDateTime(), nullable=False),
        sa.Column("resolved_at", UtcDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    op.create_index("uq_alerts_open_key", "alerts", ["open_key"], unique=True)
    op.create_index("ix_alerts_rule_resolved_at", "alerts", ["rule", "resolved_at"])
    op.create_table(
        "alert_silences",
        sa.Column("rule", sa.String(64), nullable=False),
        sa.Column("until", UtcDateTime(), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("rule", name=op.f("pk_alert_silences")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes (MariaDB refuses to drop one a foreign key needs).
    for table in (
        "alert_silences",
        "alerts",
        "status_subscribers",
        "status_maintenances",
        "status_incident_updates",
        "status_incidents",
        "status_days",
        "status_samples",
    ):
        op.drop_table(table)
