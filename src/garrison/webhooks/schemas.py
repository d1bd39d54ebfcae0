"""Request and response bodies of ``/api/v1/webhooks``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_FILTERS = 100
MAX_HEADERS = 20


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2048)
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1, max_length=MAX_FILTERS)
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    headers: dict[str, str] = Field(default_factory=dict, max_length=MAX_HEADERS)
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, min_length=1, max_length=MAX_FILTERS)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None
    headers: dict[str, str] | None = Field(default=None, max_length=MAX_HEADERS)
    rate_per_second: float | None = Field(default=None, gt=0, le=10_000)


class EndpointOut(BaseModel):
    id: str
    url: str
    description: str
    events: list[str]
    enabled: bool
    headers: dict[str, str]
    rate_per_second: float | None
    disabled_reason: str | None
    failing_since: datetime | None
    last_success_at: datetime | None
    secret_rotated_until: datetime | None = Field(
        description="until then deliveries carry the previous secret's signature too"
    )
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="shown this once: whsec_ + base64")


class SecretOut(BaseModel):
    secret: str
    previous_valid_until: datetime | None


class EndpointPage(BaseModel):
    items: list[EndpointOut]


class MessageOut(BaseModel):
    id: int
    msg_id: str = Field(description="the webhook-id header")
    event_id: str
    event_type: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: int | None


class AttemptOut(BaseModel):
    id: int
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: float
    response_body: str | None
    error: str | None
    trigger: str


class AttemptPage(BaseModel):
    items: list[AttemptOut]


class RecoverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime


class RecoverOut(BaseModel):
    requeued: int


class StatsOut(BaseModel):
    window_hours: float
    attempts: int
    succeeded: int
    success_rate: float | None
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    backlog: int
    failed_messages: int
