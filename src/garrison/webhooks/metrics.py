"""Webhook metrics: deliveries by outcome, latency, backlog per endpoint."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

from garrison.metrics.registry import REGISTRY
from garrison.webhooks.sender import Outcome

DELIVERIES = Counter(
    "garrison_webhook_deliveries",
    "Webhook delivery attempts, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "garrison_webhook_delivery_seconds",
    "Time from the start of a webhook attempt to the end of the receiver's answer.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
BACKLOG = Gauge(
    "garrison_webhook_backlog",
    "Webhook messages waiting for delivery, per endpoint.",
    ["endpoint"],
    registry=REGISTRY,
    multiprocess_mode="livemax",
)
_known: set[str] = set()


def outcome_label(outcome: Outcome) -> str:
    if outcome.succeeded:
        return "success"
    if outcome.status_code is None:
        return "refused" if (outcome.error or "").startswith("refused") else "error"
    if outcome.status_code == 410:
        return "gone"
    return "http_error"


def delivery(outcome: Outcome) -> None:
    DELIVERIES.labels(outcome_label(outcome)).inc()
    LATENCY.observe(outcome.latency_ms / 1000)


def backlog(by_endpoint: Mapping[str, int]) -> None:
    for endpoint in _known - set(by_endpoint):
        BACKLOG.labels(endpoint).set(0)
    for endpoint, count in by_endpoint.items():
        BACKLOG.labels(endpoint).set(count)
    _known.update(by_endpoint)
