"""The thresholds the rules read, gathered from the alert and health settings."""

from __future__ import annotations

from dataclasses import dataclass

from garrison.settings import Settings


@dataclass(frozen=True)
class Thresholds:
    error_rate: float
    min_requests: int
    latency_p95_ms: float
    db_query_p95_ms: float
    replication_lag_seconds: float
    backup_max_age_hours: float
    disk_warn_mb: int
    backlog_warn_seconds: int
    database_warn_mb: int | None = None

    @classmethod
    def of(cls, settings: Settings) -> Thresholds:
        a = settings.status.alerts
        return cls(
            error_rate=a.error_rate,
            min_requests=a.min_requests,
            latency_p95_ms=a.latency_p95_ms,
            db_query_p95_ms=a.db_query_p95_ms,
            replication_lag_seconds=a.replication_lag_seconds,
            backup_max_age_hours=a.backup_max_age_hours,
            disk_warn_mb=settings.health.disk_warn_mb,
            backlog_warn_seconds=settings.health.backlog_warn_seconds,
            database_warn_mb=settings.health.database_warn_mb,
        )
