"""Prometheus metrics: definitions and the helpers domains call (``/metrics`` itself is
served by ``garrison.ops.metrics_router``).

Domains count what happens with ``metrics.ratelimit(decision)``, ``metrics.cache(result)``
and ``metrics.auth_event(kind, outcome)``; HTTP and database figures are collected by the
gateway middleware and engine listeners.
"""

from garrison.metrics.database import instrument_database
from garrison.metrics.registry import (
    AUTH_KINDS,
    REGISTRY,
    UNMATCHED_ROUTE,
    AuthOutcome,
    CacheResult,
    RateLimitDecision,
    auth_event,
    cache,
    observe_request,
    ratelimit,
)

METRICS_PATH = "/metrics"

__all__ = [
    "AUTH_KINDS",
    "METRICS_PATH",
    "REGISTRY",
    "UNMATCHED_ROUTE",
    "AuthOutcome",
    "CacheResult",
    "RateLimitDecision",
    "auth_event",
    "cache",
    "instrument_database",
    "observe_request",
    "ratelimit",
]
