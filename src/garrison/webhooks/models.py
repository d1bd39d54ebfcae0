"""Webhook tables: endpoints, one message per (endpoint, event), and every attempt.

A message is the unit of delivery for one endpoint: its ``msg_id`` is the ``webhook-id``
header, the same on every retry and resend. ``body`` is the exact JSON that is signed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import BigId, UtcDateTime

PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str] = mapped_column(String(500), default="")
    events: Mapped[list[str]] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    rate_per_second: Mapped[float | None] = mapped_column(Float)
    secret: Mapped[str] = mapped_column(Text)  # sealed (garrison.crypto)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    failing_since: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_success_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WebhookMessage(Base):
    __tablename__ = "webhook_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    endpoint_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[str] = mapped_column(String(64))
    msg_id: Mapped[str] = mapped_column(String(80))
    event_type: Mapped[str] = mapped_column(String(160))
    ordering_key: Mapped[str | None] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # The claim looks up pending messages of the endpoints with room, so a hanging
        # endpoint's backlog is never scanned.
        Index(
            "ix_webhook_messages_status_endpoint_id_next_attempt_at",
            "status",
            "endpoint_id",
            "next_attempt_at",
        ),
        Index("ix_webhook_messages_endpoint_id_id", "endpoint_id", "id"),
    )


class WebhookAttempt(Base):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(BigId)
    endpoint_id: Mapped[str] = mapped_column(String(40))
    attempted_at: Mapped[datetime] = mapped_column(UtcDateTime)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float] = mapped_column(Float)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(1000))
    trigger: Mapped[str] = mapped_column(String(16), default="scheduled")

    __table_args__ = (
        Index("ix_webhook_attempts_message_id", "message_id"),
        Index("ix_webhook_attempts_endpoint_id_attempted_at", "endpoint_id", "attempted_at"),
        Index("ix_webhook_attempts_attempted_at", "attempted_at"),
    )
