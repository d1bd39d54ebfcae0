"""Tables owned by the ops domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import UtcDateTime


class Instance(Base):
    """The single row naming this deployment, written by the first migration."""

    __tablename__ = "garrison_instance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Lease(Base):
    """A named lease: the one process, on any host, that runs a job meant to run once per
    installation (the backup schedule). Held until ``expires_at`` unless renewed."""

    __tablename__ = "garrison_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
