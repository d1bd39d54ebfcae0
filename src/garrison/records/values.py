"""Parsing the date and date-time strings that records and filters both accept."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def parse_date(value: Any) -> date | None:
    """``YYYY-MM-DD`` as a date; None when it is not one."""
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_datetime(value: Any) -> datetime | None:
    """An ISO 8601 date-time as an aware UTC datetime (no offset means UTC); None when it is
    not one."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return None
