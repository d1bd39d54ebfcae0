"""Tables owned by the deploy domain: the deploy history and promotion approvals."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import UtcDateTime


class DeployRecord(Base):
    """One deploy, rollback or promotion of a release to an environment."""

    __tablename__ = "deploy_history"
    __table_args__ = (Index("ix_deploy_history_env_started", "environment", "started_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    environment: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # deploy, rollback, promote
    release_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(32))
    colour: Mapped[str] = mapped_column(String(8))
    actor: Mapped[str] = mapped_column(String(191))
    outcome: Mapped[str] = mapped_column(String(16))  # running, success, rolled_back, failed
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    checks_passed: Mapped[bool] = mapped_column(Boolean, default=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class DeployApproval(Base):
    """An admin's approval to promote a release to an environment."""

    __tablename__ = "deploy_approvals"
    __table_args__ = (UniqueConstraint("release_id", "environment", "approver_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    release_id: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(32))
    approver_id: Mapped[str] = mapped_column(String(36))
    approver_email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
