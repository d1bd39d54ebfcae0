"""Tables owned by the privacy domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import UtcDateTime


class PrivacyPolicy(Base):
    """Per collection: what erasure does to a user's records, and how long records live."""

    __tablename__ = "privacy_policies"

    collection: Mapped[str] = mapped_column(String(64), primary_key=True)
    erasure: Mapped[dict[str, Any]] = mapped_column(JSON)
    retention: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PrivacyJob(Base):
    """A subject access export or an erasure: its state, progress and result."""

    __tablename__ = "privacy_jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # export | erasure
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    requested_by: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # pending | running | done | failed | expired
    progress: Mapped[int] = mapped_column(Integer)  # percent
    active: Mapped[str | None] = mapped_column(String(64), unique=True)  # one running erasure
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    archive: Mapped[str | None] = mapped_column(String(255))  # file name in the data dir
    archive_bytes: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    # An export's runner holds the job until ``lease_until`` and renews it as it goes; each
    # claim bumps ``attempts``, which fences the writes of a runner that lost its claim.
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
