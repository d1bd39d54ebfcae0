"""API shapes of the privacy domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator

Action = Literal["delete", "anonymize", "retain"]


class ErasurePolicy(BaseModel):
    """What erasing a user does to the records they own in one collection."""

    model_config = ConfigDict(extra="forbid")

    action: Action = "delete"
    fields: dict[str, JsonValue] = Field(
        default_factory=dict, description="anonymize: field → replacement (null clears it)"
    )
    legal_basis: str | None = Field(default=None, max_length=500, description="retain: why")

    @model_validator(mode="after")
    def _coherent(self) -> ErasurePolicy:
        if self.action == "retain" and not self.legal_basis:
            raise ValueError("retain needs a legal_basis")
        if self.action == "anonymize" and not self.fields:
            raise ValueError("anonymize needs the fields to replace")
        return self


class Retention(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: str = Field(default="created_at", min_length=1, max_length=64)
    days: int = Field(ge=1, le=36_500)


class PolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    erasure: ErasurePolicy = Field(default_factory=ErasurePolicy)
    retention: Retention | None = None


class PolicyOut(PolicyIn):
    collection: str
    updated_at: datetime


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=36)


class ErasureIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=36)
    dry_run: bool = False


class JobOut(BaseModel):
    id: str
    kind: str
    subject_id: str
    status: str
    progress: int
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    expires_at: datetime | None
    download_url: str | None = None
