"""Tables owned by the ops domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base


class Instance(Base):
    """The single row naming this deployment, written by the first migration."""

    __tablename__ = "garrison_instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
