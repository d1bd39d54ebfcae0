"""``GARRISON_BACKUP__*`` settings."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class BackupSettings(BaseModel):
    storage_url: str | None = Field(
        default=None,
        description="file:///dir or s3://bucket/prefix; default <data_dir>/backups",
    )
    copy_url: str | None = Field(
        default=None, description="a second location every artifact is copied to"
    )
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    method: Literal["dump", "physical"] = Field(
        default="dump", description="MariaDB full backups: mariadb-dump or mariadb-backup"
    )
    full_at: str = Field(default="03:00", description="daily full backup time, HH:MM UTC")
    keep_daily: int = Field(default=7, ge=1)
    keep_weekly: int = Field(default=4, ge=0)
    verify_every_days: int = Field(default=7, ge=0, description="0: the worker never verifies")
    schedule: bool = Field(default=True, description="the worker takes the daily full")
    stream: bool = Field(default=False, description="the worker supervises log archiving")
    upload_interval: float = Field(default=1.0, gt=0, le=60, description="seconds")
    age_warn_hours: float = Field(default=26.0, gt=0)
    log_lag_warn_seconds: float = Field(default=60.0, gt=0)
    tools_dir: str | None = Field(default=None, description="where mariadb-* binaries live")

    @field_validator("full_at")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
        if match is None:
            raise ValueError("must be HH:MM (UTC), e.g. 03:00")
        return value
