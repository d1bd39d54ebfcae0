"""The audit domain's section: retention and the batch sizes of its jobs."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AuditSettings(BaseModel):
    retention_days: int = Field(default=90, ge=1, le=36_500)
    purge_batch_size: int = Field(default=500, ge=1, le=10_000)
    seal_batch_size: int = Field(default=500, ge=1, le=2_000)  # one UPDATE per batch
    purge_interval_seconds: float = Field(default=3600.0, gt=0, description="worker job")
    export_batch_size: int = Field(default=500, ge=1, le=10_000)
