"""Tables owned by the quota domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base


class RateLimitQuota(Base):
    """An admin-set policy replacing the default rate limit for one API key or one role."""

    __tablename__ = "rate_limit_quotas"
    __table_args__ = (UniqueConstraint("subject_type", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    subject_type: Mapped[str] = mapped_column(String(16))  # "api_key" or "role"
    subject: Mapped[str] = mapped_column(String(191))
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    burst: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
