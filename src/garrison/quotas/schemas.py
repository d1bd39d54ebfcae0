"""API shapes of the quota domain."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

SubjectType = Literal["api_key", "role"]
SUBJECT_PATTERN = r"^[A-Za-z0-9._:@-]{1,191}$"
MAX_RATE = 1_000_000


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests_per_minute: int = Field(ge=1, le=MAX_RATE)
    burst: int | None = Field(
        default=None, ge=1, le=MAX_RATE, description="requests at once; default: the rate"
    )


def _as_utc(value: datetime) -> datetime:
    """Stored in UTC; SQLite gives the value back without its zone, so it is put back."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class QuotaOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    subject_type: SubjectType
    subject: str
    requests_per_minute: int
    burst: int | None
    created_at: Annotated[datetime, AfterValidator(_as_utc)]
    updated_at: Annotated[datetime, AfterValidator(_as_utc)]
