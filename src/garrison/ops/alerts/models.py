"""Tables owned by alerting: one row per rule and subject (the route, for per-route rules)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import BigId, UtcDateTime


class Alert(Base):
    """An alert opens once per (rule, subject) and stays open until the condition clears;
    a resolved one is kept as history. ``AlertSilence`` rows keep a rule from opening."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(191))
    # One open alert per rule and subject: ``open_key`` is "rule|subject" while open and
    # NULL once resolved, and unique (NULLs never collide), which is the deduplication.
    open_key: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str] = mapped_column(String(500))
    value: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float | None] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("uq_alerts_open_key", "open_key", unique=True),
        Index("ix_alerts_rule_resolved_at", "rule", "resolved_at"),
    )


class AlertSilence(Base):
    __tablename__ = "alert_silences"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    until: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
