"""Time helpers: one clock for the domain, and UTC for values read back from databases
that drop the zone (MySQL/MariaDB and SQLite return naive datetimes)."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)
