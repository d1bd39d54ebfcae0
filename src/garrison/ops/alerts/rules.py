"""Alert rules: pure functions from Garrison's own figures to findings.

Two sources feed them: the Prometheus registry (this process's, or every worker's files in
multi-process mode), read as deltas since the previous evaluation by ``MetricWindow``; and
the health report. A rule that has no data this round (no traffic, a check that is not
configured, the first round's missing baseline) returns no finding and so neither opens
nor resolves anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from garrison.ops.alerts.config_view import Thresholds
from garrison.ops.health import HealthReport

RULES = (
    "http_5xx_rate",
    "http_latency_p95",
    "db_query_p95",
    "replication_lag",
    "disk_free",
    "database_storage",
    "backup_age",
    "outbox_backlog",
    "webhooks_disabled",
    "component_unhealthy",
)
# components with a rule of their own (not repeated as component_unhealthy)
_OWN_RULES = frozenset({"disk", "outbox"})
_OWN_CHECKS = frozenset({"database:storage"})
# Prometheus label sets → a key in the flat figures dict
Figures = dict[tuple[str, ...], float]


@dataclass(frozen=True)
class Finding:
    rule: str
    subject: str
    firing: bool
    summary: str
    value: float | None = None
    threshold: float | None = None


@dataclass
class MetricWindow:
    """Cumulative figures of the previous round; ``delta`` gives what happened since."""

    multiproc_dir: Path | None = None
    previous: Figures | None = None
    skip_routes: frozenset[str] = field(default_factory=lambda: frozenset({"/metrics"}))

    def read(self) -> Figures:
        figures: Figures = {}
        # Not at import: `garrison serve` sets PROMETHEUS_MULTIPROC_DIR before its workers
        # import prometheus-client (garrison.metrics.registry).
        from garrison.metrics.exposition import registry_for

        for family in registry_for(self.multiproc_dir).collect():
            if family.name == "garrison_http_requests":
                for s in family.samples:
                    if s.name.endswith("_total"):
                        route = s.labels["route"]
                        key = ("req", route, s.labels["status"][:1])
                        figures[key] = figures.get(key, 0.0) + s.value
            elif family.name in (
                "garrison_http_request_duration_seconds",
                "garrison_db_query_duration_seconds",
            ):
                kind = "http" if family.name.startswith("garrison_http") else "db"
                for s in family.samples:
                    if s.name.endswith("_bucket"):
                        if kind == "http" and s.labels.get("route") in self.skip_routes:
                            continue
                        bucket: tuple[str, ...] = (f"{kind}_le", s.labels["le"])
                        figures[bucket] = figures.get(bucket, 0.0) + s.value
        return figures

    def delta(self) -> Figures | None:
        current = self.read()
        previous, self.previous = self.previous, current
        if previous is None:
            return None
        # a counter that went down was reset (a worker restarted): count from zero
        return {
            key: value - previous.get(key, 0.0) if value >= previous.get(key, 0.0) else value
            for key, value in current.items()
        }


def quantile(buckets: dict[float, float], q: float) -> tuple[float, float] | None:
    """(estimated quantile in seconds, observations) from cumulative bucket counts, by
    linear interpolation inside the bucket, as PromQL's histogram_quantile does."""
    bounds = sorted(buckets)
    if not bounds:
        return None
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower, total
            inside = count - below
            share = (rank - below) / inside if inside else 1.0
            return lower + (bound - lower) * share, total
        lower, below = bound, count
    return lower, total


def _buckets(delta: Figures, kind: str) -> dict[float, float]:
    return {float(key[1]): value for key, value in delta.items() if key[0] == f"{kind}_le"}


def from_metrics(delta: Figures | None, t: Thresholds) -> list[Finding]:
    if delta is None:
        return []
    findings: list[Finding] = []
    routes: dict[str, tuple[float, float]] = {}
    for key, value in delta.items():
        if key[0] == "req":
            total, errors = routes.get(key[1], (0.0, 0.0))
            routes[key[1]] = (total + value, errors + (value if key[2] == "5" else 0.0))
    for route, (total, errors) in sorted(routes.items()):
        if total < t.min_requests:
            continue
        rate = errors / total
        findings.append(
            Finding(
                "http_5xx_rate",
                route,
                rate > t.error_rate,
                f"{rate:.1%} of {int(total)} requests to {route} answered 5xx",
                round(rate, 4),
                t.error_rate,
            )
        )
    for kind, rule, limit, what in (
        ("http", "http_latency_p95", t.latency_p95_ms, "HTTP responses"),
        ("db", "db_query_p95", t.db_query_p95_ms, "database statements"),
    ):
        result = quantile(_buckets(delta, kind), 0.95)
        if result is None or result[1] < t.min_requests:
            continue
        p95_ms = result[0] * 1000
        findings.append(
            Finding(
                rule,
                "all",
                p95_ms > limit,
                f"p95 of {what} is {p95_ms:.0f} ms (limit {limit:.0f} ms)",
                round(p95_ms, 1),
                limit,
            )
        )
    return findings


def _check(report: HealthReport, *names: str) -> Iterable[tuple[str, float | int | None, str]]:
    for check in report.checks:
        if check.name in names:
            yield check.status, check.observed_value, check.name


def from_health(report: HealthReport, t: Thresholds) -> list[Finding]:
    findings: list[Finding] = []
    for status, value, _ in _check(report, "disk:free"):
        findings.append(
            Finding(
                "disk_free",
                "data_dir",
                status != "pass",
                f"{value} MiB free in the data directory (warn below {t.disk_warn_mb} MiB)",
                float(value) if value is not None else None,
                float(t.disk_warn_mb),
            )
        )
    for status, value, _ in _check(report, "outbox:backlog"):
        findings.append(
            Finding(
                "outbox_backlog",
                "outbox",
                status != "pass",
                f"{value} events wait for the worker beyond {t.backlog_warn_seconds} s",
                float(value) if value is not None else None,
                float(t.backlog_warn_seconds),
            )
        )
    for check in report.checks:  # one per reader (a lag it cannot tell: component_unhealthy)
        if check.name == "database:replication" and check.observed_value is not None:
            lag = float(check.observed_value)
            findings.append(
                Finding(
                    "replication_lag",
                    check.component_id or "replica",
                    lag > t.replication_lag_seconds,
                    f"{check.component_id or 'a replica'} is {lag:g} s behind",
                    lag,
                    t.replication_lag_seconds,
                )
            )
    for status, value, _ in _check(report, "database:storage"):
        limit = t.database_warn_mb
        findings.append(
            Finding(
                "database_storage",
                "database",
                status != "pass",
                f"the database takes {value} MiB"
                + (f" (warn above {limit} MiB)" if limit is not None else ""),
                float(value) if value is not None else None,
                float(limit) if limit is not None else None,
            )
        )
    for _status, value, _ in _check(report, "backup:age"):
        if value is not None:
            findings.append(
                Finding(
                    "backup_age",
                    "latest",
                    float(value) > t.backup_max_age_hours,
                    f"the latest backup is {value} h old",
                    float(value),
                    t.backup_max_age_hours,
                )
            )
    for _status, value, _ in _check(report, "webhooks:disabled"):
        if value is not None:
            findings.append(
                Finding(
                    "webhooks_disabled",
                    "endpoints",
                    float(value) > 0,
                    f"{value} webhook endpoint(s) disabled after failures",
                    float(value),
                    0.0,
                )
            )
    by_component: dict[str, list[str]] = {}
    for check in report.checks:
        component = check.name.split(":", 1)[0]
        if component in _OWN_RULES or check.name in _OWN_CHECKS:
            continue
        if check.status != "pass":
            by_component.setdefault(component, []).append(
                f"{check.name} {check.status}" + (f" ({check.output})" if check.output else "")
            )
        else:
            by_component.setdefault(component, [])
    for component, problems in sorted(by_component.items()):
        findings.append(
            Finding(
                "component_unhealthy",
                component,
                bool(problems),
                f"{component}: " + ("; ".join(problems) if problems else "healthy"),
            )
        )
    return findings
