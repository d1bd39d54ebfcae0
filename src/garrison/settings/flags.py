"""The feature-flag domain's section."""

from __future__ import annotations

from pydantic import BaseModel, Field


class FlagSettings(BaseModel):
    refresh_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="full reload of the snapshot, behind the change notifications",
    )
    channel: str = Field(default="flags:changed", min_length=1, max_length=64)
    principal_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        le=60,
        description="OFREP: how long a checked credential is trusted without a new check",
    )
