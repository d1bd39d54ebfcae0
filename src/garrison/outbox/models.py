"""The outbox table. A row is a message waiting for (or parked after) delivery; delivered
messages are deleted, so the table holds only work that is still owed."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import BigId, LongText, UtcDateTime

PENDING = "pending"
PARKED = "parked"


class OutboxMessage(Base):
    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(128))
    # Messages with the same key are delivered in id order ("type:id" of the target).
    ordering_key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(LongText)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    available_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_outbox_messages_status_available_at", "status", "available_at"),
        Index("ix_outbox_messages_ordering_key_id", "ordering_key", "id"),
    )
