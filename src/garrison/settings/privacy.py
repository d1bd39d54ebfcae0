"""The privacy domain's section: export links and retention."""

from __future__ import annotations

from pydantic import BaseModel, Field


class PrivacySettings(BaseModel):
    export_link_seconds: int = Field(default=900, ge=30, le=86_400, description="signed link")
    export_keep_seconds: int = Field(
        default=86_400, ge=60, le=30 * 86_400, description="the archive is deleted after this"
    )
    export_lease_seconds: int = Field(
        default=120,
        ge=10,
        le=3600,
        description="an export's runner holds it this long past each step; then another may",
    )
    export_max_attempts: int = Field(
        default=3, ge=1, le=20, description="claims of one export before it is marked failed"
    )
    export_recover_seconds: float = Field(
        default=30, gt=0, le=3600, description="the worker's look for abandoned exports"
    )
    session_retention_days: int = Field(
        default=30, ge=1, le=3650, description="refresh tokens this long past expiry/revocation"
    )
    job_retention_days: int = Field(
        default=90, ge=1, le=3650, description="finished export/erasure records"
    )
    retention_batch_size: int = Field(default=500, ge=1, le=10_000)
