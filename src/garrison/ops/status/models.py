"""Tables owned by the status page."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from garrison.db.base import Base
from garrison.db.types import BigId, UtcDateTime


class StatusSample(Base):
    """One component's state in one minute (``at`` is the minute's start, UTC)."""

    __tablename__ = "status_samples"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    component: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    state: Mapped[str] = mapped_column(String(16))  # operational | degraded | outage
    detail: Mapped[str | None] = mapped_column(String(255))

    __table_args__ = (
        Index("uq_status_samples_component_at", "component", "at", unique=True),
        Index("ix_status_samples_at", "at"),
    )


class StatusDay(Base):
    """Minutes per state of one component on one UTC day: the uptime bar's data, kept
    for ``status.history_days`` while minute samples are kept only a few days."""

    __tablename__ = "status_days"

    component: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    operational: Mapped[int] = mapped_column(Integer, default=0)
    degraded: Mapped[int] = mapped_column(Integer, default=0)
    outage: Mapped[int] = mapped_column(Integer, default=0)


class Incident(Base):
    __tablename__ = "status_incidents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # investigating|identified|monitoring|resolved
    impact: Mapped[str] = mapped_column(String(16))  # minor | major | critical
    components: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_status_incidents_resolved_at", "resolved_at"),)


class IncidentUpdate(Base):
    __tablename__ = "status_incident_updates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("status_incidents.id", ondelete="CASCADE")
    )
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    __table_args__ = (Index("ix_status_incident_updates_incident_id", "incident_id"),)


class Maintenance(Base):
    __tablename__ = "status_maintenances"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    components: Mapped[list[str]] = mapped_column(JSON)
    starts_at: Mapped[datetime] = mapped_column(UtcDateTime)
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False)
    cancelled_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # When the worker announced the window's start and end (``status.maintenance.started``
    # / ``.ended``); each is claimed by one conditional UPDATE, so each is announced once.
    started_announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_announced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_status_maintenances_ends_at", "ends_at"),
        Index("ix_status_maintenances_ended_announced_at", "ended_announced_at"),
    )


class Subscriber(Base):
    """An e-mail address that asked for notices; ``confirmed_at`` set by the link."""

    __tablename__ = "status_subscribers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    confirmed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


def as_dict(row: Any) -> dict[str, Any]:
    return {c.name: getattr(row, c.name) for c in row.__table__.columns}
