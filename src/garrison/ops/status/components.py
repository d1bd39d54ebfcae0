"""Status components, derived from the health checks.

A health check is named ``<component>:<measurement>`` (``database:responseTime``); every
check sharing a component name makes one component, whose state is its worst check:
pass → operational, warn → degraded, fail → outage. Components other domains add to the
health report (``webhooks:…``, ``backup:…``) appear on the page with no change here. The
``api`` component is the process itself, out only when the database is. ``monitor:<name>``
components come from ``garrison monitor`` samples, not from this process's checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from garrison.ops.health import CheckResult, HealthReport

State = Literal["operational", "degraded", "outage", "maintenance", "unknown"]
_RANK: dict[str, int] = {
    "operational": 0,
    "unknown": 1,
    "maintenance": 2,
    "degraded": 3,
    "outage": 4,
}
_FROM_HEALTH: dict[str, State] = {"pass": "operational", "warn": "degraded", "fail": "outage"}
MONITOR_PREFIX = "monitor:"

# Known names in display order; anything else is shown after them, by its name.
NAMES: dict[str, str] = {
    "api": "API",
    "database": "Database",
    "cache": "Cache",
    "outbox": "Background jobs",
    "webhooks": "Webhook delivery",
    "files": "File storage",
    "disk": "Disk",
    "backup": "Backups",
    "replication": "Replication",
}
DESCRIPTIONS: dict[str, str] = {
    "api": "HTTP API and authentication",
    "database": "Primary database",
    "cache": "Redis: rate limits, sessions, cache",
    "outbox": "Audit sealing, e-mail and webhook queue",
    "webhooks": "Outgoing webhook endpoints",
    "files": "Uploaded files",
    "disk": "Free space in the data directory",
    "backup": "Latest backup",
    "replication": "Read replicas",
}
_PUBLIC_DETAIL: dict[State, str] = {
    "operational": "Operational",
    "degraded": "Degraded performance",
    "outage": "Outage",
    "maintenance": "Under maintenance",
    "unknown": "No recent data",
}


@dataclass(frozen=True)
class ComponentState:
    key: str
    name: str
    description: str
    state: State

    @property
    def label(self) -> str:
        return _PUBLIC_DETAIL[self.state]


def worst(states: list[State]) -> State:
    return max(states, key=_RANK.__getitem__, default="operational")


def display_name(key: str) -> str:
    if key.startswith(MONITOR_PREFIX):
        return key[len(MONITOR_PREFIX) :]
    return NAMES.get(key, key.replace("_", " ").capitalize())


def order_key(key: str) -> tuple[int, int, str]:
    known = list(NAMES)
    if key in NAMES:
        return (0, known.index(key), key)
    return (2 if key.startswith(MONITOR_PREFIX) else 1, 0, key)


def component(key: str, state: State) -> ComponentState:
    description = DESCRIPTIONS.get(
        key, "Watched from outside" if key.startswith("monitor:") else ""
    )
    return ComponentState(key, display_name(key), description, state)


def from_report(report: HealthReport) -> list[ComponentState]:
    """One component per health-check prefix, plus ``api``, in display order."""
    grouped: dict[str, list[CheckResult]] = {}
    for check in report.checks:
        grouped.setdefault(check.name.split(":", 1)[0], []).append(check)
    states: dict[str, State] = {
        key: worst([_FROM_HEALTH[c.status] for c in checks]) for key, checks in grouped.items()
    }
    states["api"] = "outage" if states.get("database") == "outage" else "operational"
    return [component(key, states[key]) for key in sorted(states, key=order_key)]
