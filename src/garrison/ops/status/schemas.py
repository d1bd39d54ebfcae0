"""Request and response bodies of the status API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field

IncidentStatus = Literal["investigating", "identified", "monitoring", "resolved"]
Impact = Literal["minor", "major", "critical"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IncidentIn(_In):
    title: str = Field(min_length=1, max_length=200)
    message: str = Field(min_length=1, max_length=10_000, description="the first update")
    status: IncidentStatus = "investigating"
    impact: Impact = "minor"
    components: list[str] = Field(default_factory=list, max_length=50)


class IncidentPatch(_In):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    impact: Impact | None = None
    components: list[str] | None = Field(default=None, max_length=50)


class IncidentUpdateIn(_In):
    status: IncidentStatus
    message: str = Field(min_length=1, max_length=10_000)


class ResolveIn(_In):
    message: str = Field(
        default="This incident has been resolved.", min_length=1, max_length=10_000
    )


class UpdateOut(BaseModel):
    status: IncidentStatus
    message: str
    created_at: datetime


class IncidentOut(BaseModel):
    id: str
    title: str
    status: IncidentStatus
    impact: Impact
    components: list[str]
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    updates: list[UpdateOut]


class MaintenanceIn(_In):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=10_000)
    components: list[str] = Field(default_factory=list, max_length=50)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    read_only: bool = Field(default=False, description="writes get 503 during the window")


class MaintenancePatch(_In):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    components: list[str] | None = Field(default=None, max_length=50)
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    read_only: bool | None = None


class MaintenanceOut(BaseModel):
    id: str
    title: str
    description: str
    components: list[str]
    starts_at: datetime
    ends_at: datetime
    read_only: bool
    state: Literal["scheduled", "in_progress", "completed", "cancelled"]
    created_at: datetime
    updated_at: datetime


class SubscribeIn(_In):
    email: EmailStr = Field(max_length=320)


class SilenceIn(_In):
    minutes: float = Field(gt=0, le=60 * 24 * 30, description="how long the rule stays quiet")
    reason: str = Field(default="", max_length=500)


class AlertOut(BaseModel):
    id: int
    rule: str
    subject: str
    summary: str
    value: float | None
    threshold: float | None
    opened_at: datetime
    resolved_at: datetime | None


class StatusDoc(BaseModel):
    """The public document of ``GET /api/v1/status`` (see ``snapshot.Snapshot.public``)."""

    model_config = ConfigDict(extra="allow")
    status: dict[str, Any]
