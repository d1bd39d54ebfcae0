"""Alert rules on Garrison's own figures: the rules alone, then opening once, resolving,
suppression and silences on SQLite and MariaDB, then the whole path with a real Redis that
stops and a real SMTP server that receives the alert."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import APIRouter
from starlette.responses import Response

from garrison.ops.alerts import evaluator, rules, service
from garrison.ops.alerts.config_view import Thresholds
from garrison.ops.alerts.rules import Finding, MetricWindow
from garrison.ops.status import sampler
from tests.statuskit import Kit, status_kit
from tests.test_auth_email import SmtpServer, body_of, smtp  # noqa: F401  (fixture)
from tests.throwaway_redis import throwaway_redis

T = Thresholds(
    error_rate=0.05,
    min_requests=20,
    latency_p95_ms=200,
    db_query_p95_ms=100,
    replication_lag_seconds=30,
    backup_max_age_hours=26,
    disk_warn_mb=1024,
    backlog_warn_seconds=300,
)


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = {0.1: 50.0, 0.25: 90.0, 0.5: 100.0, float("inf"): 100.0}
    value, count = rules.quantile(buckets, 0.95) or (0.0, 0.0)
    assert count == 100
    assert value == pytest.approx(0.375)
    assert rules.quantile({float("inf"): 0.0}, 0.95) is None


def test_metric_rules() -> None:
    delta = {
        ("req", "/api/v1/things", "2"): 80.0,
        ("req", "/api/v1/things", "5"): 20.0,
        ("req", "/api/v1/quiet", "5"): 5.0,  # too few requests to judge
        ("http_le", "0.1"): 10.0,
        ("http_le", "0.25"): 50.0,
        ("http_le", "0.5"): 100.0,
        ("http_le", "+Inf"): 100.0,
        ("db_le", "0.01"): 100.0,
        ("db_le", "+Inf"): 100.0,
    }
    found = {(f.rule, f.subject): f for f in rules.from_metrics(delta, T)}
    assert found[("http_5xx_rate", "/api/v1/things")].firing
    assert found[("http_5xx_rate", "/api/v1/things")].value == 0.2
    assert ("http_5xx_rate", "/api/v1/quiet") not in found
    assert found[("http_latency_p95", "all")].firing  # 475 ms
    assert not found[("db_query_p95", "all")].firing
    assert rules.from_metrics(None, T) == []  # the first round is a baseline


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> Kit:  # type: ignore[misc]
    async with status_kit(tmp_path, fresh_database_url) as value:
        yield value


def _down(subject: str = "cache") -> Finding:
    return Finding("component_unhealthy", subject, True, f"{subject} down")


def _up(subject: str = "cache") -> Finding:
    return Finding("component_unhealthy", subject, False, f"{subject} fine")


async def test_alerts_open_once_resolve_and_are_suppressed(kit: Kit) -> None:
    now = datetime.now(UTC)

    async def apply(found: list[Finding], at: datetime, suppress: float = 10) -> tuple[int, int]:
        async with kit.db.transaction() as session:
            opened, resolved = await service.apply(
                session, findings=found, suppress_minutes={}, default_suppress=suppress, now=at
            )
            return len(opened), len(resolved)

    assert await apply([_down()], now) == (1, 0)
    assert await apply([_down()], now + timedelta(minutes=1)) == (0, 0)  # deduplicated
    assert await apply([], now + timedelta(minutes=2)) == (0, 0)  # rule not evaluated: kept
    assert await apply([_up()], now + timedelta(minutes=3)) == (0, 1)  # cleared: resolved
    assert await apply([_down()], now + timedelta(minutes=5)) == (0, 0)  # within 10 min
    assert await apply([_down()], now + timedelta(minutes=20)) == (1, 0)
    assert await apply([_up()], now + timedelta(minutes=21)) == (0, 1)

    silenced = await kit.client.put(
        "/api/v1/status/alerts/component_unhealthy/silence",
        json={"minutes": 60, "reason": "Redis migration"},
        headers=kit.admin,
    )
    assert silenced.status_code == 204
    assert await apply([_down()], now + timedelta(minutes=40), suppress=0) == (0, 0)
    await kit.client.delete("/api/v1/status/alerts/component_unhealthy/silence", headers=kit.admin)
    assert await apply([_down()], now + timedelta(minutes=41), suppress=0) == (1, 0)
    unknown = await kit.client.put(
        "/api/v1/status/alerts/nope/silence", json={"minutes": 5}, headers=kit.admin
    )
    assert unknown.status_code == 422

    listed = (await kit.client.get("/api/v1/status/alerts", headers=kit.admin)).json()
    assert [a["resolved_at"] is None for a in listed] == [True, False, False]
    await kit.drain()
    # delivered in order per alert, not across alerts
    got = sorted(t for t in kit.topics if t.startswith("alert."))
    expected = ["alert.opened", "alert.resolved"] * 2
    expected += ["alert.silenced", "alert.unsilenced", "alert.opened"]
    assert got == sorted(expected)


failing = APIRouter()


@failing.get("/api/v1/_flaky")
async def flaky() -> Response:
    return Response(status_code=500)


async def test_the_5xx_rule_fires_on_real_traffic(tmp_path: Path) -> None:
    async with status_kit(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'g.db'}") as kit:
        kit.auth.running.app.include_router(failing)
        window = MetricWindow()

        async def evaluate() -> tuple[int, int]:
            return await evaluator.run_once(
                db=kit.db, health=kit.health, settings=kit.settings, window=window
            )

        await evaluate()  # the baseline
        for _ in range(25):
            await kit.client.get("/api/v1/_flaky")
        opened, _ = await evaluate()
        assert opened == 1
        [alert] = (await kit.client.get("/api/v1/status/alerts", headers=kit.admin)).json()
        assert alert["rule"] == "http_5xx_rate"
        assert alert["subject"] == "/api/v1/_flaky"
        _, resolved = await evaluate()  # a quiet round: the rule has no data
        assert resolved == 0


async def test_redis_stopping_degrades_the_cache_and_mails_an_alert(
    tmp_path: Path,
    smtp: SmtpServer,  # noqa: F811
) -> None:
    operator = "oncall@example.com"
    with throwaway_redis() as redis:
        async with status_kit(
            tmp_path,
            f"sqlite+aiosqlite:///{tmp_path / 'g.db'}",
            redis_url=redis.url,
            smtp={"host": "127.0.0.1", "port": smtp.port, "security": "none"},
            status={"cache_seconds": 0, "alerts": {"email_to": [operator]}},
        ) as kit:
            window = MetricWindow()
            first = datetime.now(UTC).replace(second=0, microsecond=0)
            await sampler.run_once(
                db=kit.db, health=kit.health, settings=kit.settings.status, now=first
            )
            await evaluator.run_once(
                db=kit.db, health=kit.health, settings=kit.settings, window=window
            )
            doc = (await kit.client.get("/api/v1/status")).json()
            assert {c["id"]: c["state"] for c in doc["components"]}["cache"] == "operational"

            redis.kill()
            later = first + timedelta(minutes=1)
            await sampler.run_once(
                db=kit.db, health=kit.health, settings=kit.settings.status, now=later
            )
            opened, _ = await evaluator.run_once(
                db=kit.db, health=kit.health, settings=kit.settings, window=window
            )
            assert opened == 1
            doc = (await kit.client.get("/api/v1/status")).json()
            cache = next(c for c in doc["components"] if c["id"] == "cache")
            assert cache["state"] == "degraded"
            assert cache["days"][-1]["minutes_degraded"] == 1
            assert doc["status"]["indicator"] == "degraded"

            await kit.drain()
            [mail] = [m for m in smtp.messages_to(operator) if "[FIRING]" in m["Subject"]]
            assert "component_unhealthy" in mail["Subject"]
            assert "cache" in body_of(mail)


def test_health_rules_per_replica_lag_and_database_storage() -> None:
    """Each reader's lag is judged on its own (the health check is ``database:replication``,
    one per reader); the storage check has a rule of its own, not ``component_unhealthy``."""
    from garrison.ops.health import CheckResult, HealthReport

    report = HealthReport(
        status="warn",
        checks=(
            CheckResult("database:replication", "datastore", "pass", 2.0, "s", None, "r1:3306"),
            CheckResult("database:replication", "datastore", "warn", 45.0, "s", "45 s", "r2:3306"),
            CheckResult("database:replication", "datastore", "warn", None, "s", "down", "r3:3306"),
            CheckResult("database:storage", "datastore", "warn", 2100.0, "MiB", "over"),
            CheckResult("database:responseTime", "datastore", "pass", 1.0, "ms"),
        ),
    )
    thresholds = replace(T, database_warn_mb=2048)
    found = {(f.rule, f.subject): f for f in rules.from_health(report, thresholds)}
    assert not found[("replication_lag", "r1:3306")].firing
    assert found[("replication_lag", "r2:3306")].firing
    assert found[("replication_lag", "r2:3306")].summary == "r2:3306 is 45 s behind"
    assert ("replication_lag", "r3:3306") not in found  # no lag to judge: the component rule
    storage = found[("database_storage", "database")]
    assert storage.firing
    assert (storage.value, storage.threshold) == (2100.0, 2048.0)
    database = found[("component_unhealthy", "database")]
    assert database.firing
    assert "database:replication warn (down)" in database.summary
    assert "database:storage" not in database.summary
