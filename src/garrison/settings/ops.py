"""The operations domain's sections: health checks, backups, deploys, the status page and alerts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator


class HealthSettings(BaseModel):
    check_timeout: float = Field(default=0.8, gt=0, le=5, description="seconds per check")
    cache_seconds: float = Field(default=1.0, ge=0, le=60)
    disk_warn_mb: int = Field(default=1024, ge=0)
    disk_fail_mb: int = Field(default=100, ge=0)
    database_warn_mb: int | None = Field(
        default=None,
        ge=1,
        description="warn when the database takes more than this many MiB (none: report only)",
    )
    backlog_warn_seconds: int = Field(
        default=300, ge=1, description="warn when an event has waited this long for the worker"
    )
    details: Literal["loopback", "never"] = "loopback"


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


class DeploySettings(BaseModel):
    """``GARRISON_DEPLOY__*``: where ``garrison deploy`` finds its configuration (the rest is
    the deploy config file, ``garrison.ops.deploy.config``)."""

    config: Path = Field(default=Path("deploy.toml"), description="the deploy config file")


# The status page, incidents, alerting and error tracking (GARRISON_STATUS__*).
class AlertSettings(BaseModel):
    """Alert rules the worker evaluates on Garrison's own metrics and health checks."""

    enabled: bool = True
    interval_seconds: float = Field(default=60.0, ge=1, description="between evaluations")
    email_to: list[str] = Field(default_factory=list, description="operators' addresses")
    error_rate: float = Field(default=0.05, gt=0, le=1, description="5xx share per route")
    min_requests: int = Field(default=20, ge=1, description="per route and window")
    latency_p95_ms: float = Field(default=200.0, gt=0)
    db_query_p95_ms: float = Field(default=100.0, gt=0)
    replication_lag_seconds: float = Field(default=30.0, gt=0)
    backup_max_age_hours: float = Field(default=26.0, gt=0)
    suppress_minutes: dict[str, float] = Field(
        default_factory=dict,
        description="rule name → minutes a rule stays quiet after it resolved (flap guard)",
    )
    default_suppress_minutes: float = Field(default=10.0, ge=0)


class StatusSettings(BaseModel):
    title: str = Field(default="Garrison status", max_length=100)
    sample_interval_seconds: float = Field(
        default=60.0, ge=1, le=3600, description="the worker records a sample per component"
    )
    sample_retention_days: int = Field(default=3, ge=1, le=90, description="minute samples")
    history_days: int = Field(default=90, ge=7, le=365, description="days on the uptime bar")
    cache_seconds: float = Field(default=30.0, ge=0, le=600, description="page and JSON")
    maintenance_poll_seconds: float = Field(
        default=5.0, gt=0, le=300, description="how often the read-only switch is re-read"
    )
    subscribe_token_ttl: int = Field(default=172_800, ge=300, description="confirm link, s")
    sentry_environment: str | None = Field(default=None, description="default: GARRISON_ENV")
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
