"""Backup gauges (Prometheus), set by the health check and the worker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from prometheus_client import Gauge

from garrison.metrics.registry import REGISTRY

LAST_FULL_AGE: Final = Gauge(
    "garrison_backup_last_full_age_seconds",
    "Seconds since the last full backup finished.",
    registry=REGISTRY,
    multiprocess_mode="min",
)
LAST_FULL_BYTES: Final = Gauge(
    "garrison_backup_last_full_bytes",
    "Stored size of the last full backup.",
    registry=REGISTRY,
    multiprocess_mode="max",
)
LAST_FULL_DURATION: Final = Gauge(
    "garrison_backup_last_full_duration_seconds",
    "How long the last full backup took.",
    registry=REGISTRY,
    multiprocess_mode="max",
)
LOG_LAG: Final = Gauge(
    "garrison_backup_log_lag_seconds",
    "Seconds the log archive is behind (since it was last known complete).",
    registry=REGISTRY,
    multiprocess_mode="min",
)
LAST_RESTORE: Final = Gauge(
    "garrison_backup_last_verify_restore_seconds",
    "Restore time measured by the last verification.",
    registry=REGISTRY,
    multiprocess_mode="max",
)


def observe(status: object) -> None:
    from garrison.ops.backup.service import Status

    assert isinstance(status, Status)
    now = datetime.now(UTC)
    if status.last_full is not None:
        LAST_FULL_AGE.set(status.full_age(now) or 0.0)
        LAST_FULL_BYTES.set(status.last_full.size)
        LAST_FULL_DURATION.set(status.last_full.duration_seconds)
    lag = status.log_lag(now)
    if lag is not None:
        LOG_LAG.set(lag)
