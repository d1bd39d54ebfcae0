"""Type aliases shared across the package, and the one canonical text form of a moment."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send", "State", "canonical_time"]

State = dict[str, Any]


def canonical_time(value: datetime) -> str:
    """``2026-11-25T03:42:59.000123Z``: UTC, microseconds, ``Z``. The audit chain hashes
    this text, so its form never changes."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
