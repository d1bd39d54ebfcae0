"""Settings of the status page, incidents, alerting and error tracking (``GARRISON_STATUS__*``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


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
