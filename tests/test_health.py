from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from garrison.app import create_app
from garrison.db import migrate
from garrison.db.size import storage_bytes
from garrison.ops.health import CheckResult, HealthService
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.conftest import make_settings, migrated, start
from tests.metrics_helpers import parse, value

MEDIA = "application/health+json"


@pytest.fixture
def settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    """A database of its own: the report covers the whole database, so the audit entries
    and outbox messages other tests leave in a shared one would show in its backlog."""
    return make_settings(tmp_path, database_url=fresh_database_url)


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A real TCP server that accepts connections and never answers: a hung dependency."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        await reader.read()

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    yield port
    for writer in held:
        writer.close()
    server.close()


async def _get(
    settings: Settings, path: str, client_addr: tuple[str, int] = ("127.0.0.1", 1)
) -> httpx.Response:
    async with start(create_app(settings), client_addr=client_addr) as running:
        return await running.client.get(path)


@pytest.mark.parametrize("path", ["/api/health", "/api/health/ready", "/api/health/live"])
async def test_healthy(settings: Settings, path: str) -> None:
    await migrated(settings)
    response = await _get(settings, path)
    assert response.status_code == 200
    assert response.headers["content-type"] == MEDIA
    assert response.json()["status"] == "pass"


async def test_operator_sees_checks(settings: Settings) -> None:
    await migrated(settings)
    body = (await _get(settings, "/api/health/ready")).json()
    assert body["checks"]["database:responseTime"][0]["status"] == "pass"
    assert body["checks"]["database:migrations"][0]["observedValue"] == 0
    assert body["checks"]["disk:free"][0]["observedUnit"] == "MiB"


async def test_public_sees_status_only(settings: Settings) -> None:
    await migrated(settings)
    response = await _get(settings, "/api/health", client_addr=("203.0.113.9", 443))
    assert response.json() == {"status": "pass"}


async def test_pending_migrations_fail_readiness(fresh_database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrate.upgrade(settings.db_url, settings.db)
    await migrate.downgrade(settings.db_url, settings.db, "base")
    response = await _get(settings, "/api/health/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database:migrations"][0]["status"] == "fail"
    public = await _get(settings, "/api/health/ready", client_addr=("203.0.113.9", 1))
    assert public.json() == {"status": "fail"}
    live = await _get(settings, "/api/health/live")
    assert live.status_code == 200


async def test_redis_checked_when_configured(tmp_path: Path, redis_url: str) -> None:
    settings = make_settings(tmp_path, redis_url=redis_url)
    await migrated(settings)
    body = (await _get(settings, "/api/health")).json()
    assert body["status"] == "pass"
    assert body["checks"]["cache:responseTime"][0]["status"] == "pass"


async def test_hung_redis_is_a_warning_not_a_hang(tmp_path: Path, silent_port: int) -> None:
    # The budget bounds the hung Redis check (the store's own timeout is set beyond it);
    # it must also cover the SQLite check on a busy machine (0.3 s did not, beside
    # stress-ng).
    settings = make_settings(
        tmp_path,
        redis_url=f"redis://127.0.0.1:{silent_port}/0",
        redis_timeout=5.0,
        health={"check_timeout": 2.0},
    )
    await migrated(settings)
    response = await asyncio.wait_for(_get(settings, "/api/health"), timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "warn"
    assert body["checks"]["cache:responseTime"][0] | {"time": None} == {
        "componentType": "datastore",
        "status": "warn",
        "output": "timed out",
        "time": None,
    }


async def test_hung_database_fails_fast(tmp_path: Path, silent_port: int) -> None:
    settings = make_settings(
        tmp_path,
        database_url=f"mysql+asyncmy://root@127.0.0.1:{silent_port}/x",
        health={"check_timeout": 0.3},
    )
    response = await asyncio.wait_for(_get(settings, "/api/health/ready"), timeout=10)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["checks"]["database:responseTime"][0]["output"] == "timed out"
    public = await asyncio.wait_for(
        _get(settings, "/api/health/ready", client_addr=("198.51.100.1", 1)), timeout=10
    )
    assert public.text == '{"status":"fail"}'


async def test_low_disk_warns(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, health={"disk_warn_mb": 10**12, "disk_fail_mb": 0})
    await migrated(settings)
    response = await _get(settings, "/api/health")
    assert response.status_code == 200
    assert response.json()["status"] == "warn"
    assert response.json()["checks"]["disk:free"][0]["status"] == "warn"


async def test_no_secrets_hosts_or_versions_in_public_body(
    tmp_path: Path, silent_port: int
) -> None:
    settings = make_settings(
        tmp_path,
        database_url=f"mysql+asyncmy://root:dbpass@127.0.0.1:{silent_port}/x",
        health={"check_timeout": 0.2},
    )
    response = await _get(settings, "/api/health", client_addr=("192.0.2.1", 1))
    assert set(response.json()) == {"status"}


async def test_report_cached_between_probes(settings: Settings) -> None:
    await migrated(settings)
    async with start(create_app(settings)) as running:
        first = await runtime_of(running.app).get(HealthService).report()
        second = await runtime_of(running.app).get(HealthService).report()
        assert first is second
        runtime_of(running.app).get(HealthService).settings.cache_seconds = 0
        third = await runtime_of(running.app).get(HealthService).report()
        assert third is not first


async def test_a_write_in_progress_does_not_hold_up_the_database_probe(settings: Settings) -> None:
    """The probe reads the writer without taking its write lock. On SQLite a probe that began
    a writer transaction (BEGIN IMMEDIATE) waited behind every write and timed out; a
    timed-out one could leave the lock held, and the next request's write failed with 503."""
    await migrated(settings)
    async with start(create_app(settings)) as running:
        runtime = runtime_of(running.app)
        health = runtime.get(HealthService)
        health.settings.cache_seconds = 0
        async with runtime.db.transaction() as session:
            await session.execute(text("SELECT 1"))  # the transaction has begun: SQLite's lock
            report = await health.report()
    checks = {check.name: check for check in report.checks}
    assert checks["database:responseTime"].status == "pass", checks["database:responseTime"]
    assert checks["database:migrations"].status == "pass"


async def test_database_storage_is_reported_and_warns_past_its_threshold(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """The storage alert: ``database:storage`` in MiB, a warning past
    ``GARRISON_HEALTH__DATABASE_WARN_MB``, and the figure in ``/metrics``."""
    settings = make_settings(
        tmp_path,
        database_url=fresh_database_url,
        health={"cache_seconds": 0, "database_warn_mb": 2},
    )
    await migrated(settings)
    async with start(create_app(settings)) as running:
        runtime = runtime_of(running.app)
        health = runtime.get(HealthService)

        async def storage() -> CheckResult:
            await storage_bytes(runtime.db, max_age=0)  # read now, not within the minute
            report = await health.report()
            return next(c for c in report.checks if c.name == "database:storage")

        before = await storage()
        assert before.status == "pass", before
        assert before.observed_unit == "MiB"
        assert 0 < float(before.observed_value or 0) < 2
        # Three MiB of incompressible rows take it past the 2 MiB threshold.
        async with runtime.db.transaction() as session:
            await session.execute(text("CREATE TABLE ballast (id INT PRIMARY KEY, pad LONGTEXT)"))
            for row in range(3):
                pad = os.urandom(1024 * 1024).hex()[: 1024 * 1024]
                await session.execute(
                    text("INSERT INTO ballast (id, pad) VALUES (:id, :pad)"),
                    {"id": row, "pad": pad},
                )
        if not runtime.db.is_sqlite:  # InnoDB's table sizes are statistics: refresh them
            async with runtime.db.transaction() as session:
                await session.execute(text("ANALYZE TABLE ballast"))
        after = await storage()
        assert after.status == "warn", after
        assert float(after.observed_value or 0) > 3
        assert "GARRISON_HEALTH__DATABASE_WARN_MB" in str(after.output)
        scraped = parse((await running.client.get("/metrics")).text)
    assert value(scraped, "garrison_db_storage_bytes") > 3 * 1024 * 1024
    assert value(scraped, "garrison_db_storage_warn_bytes") == 2 * 1024 * 1024


async def test_a_stale_outbox_backlog_and_parked_messages_warn(
    tmp_path: Path, fresh_database_url: str
) -> None:
    from datetime import timedelta

    from sqlalchemy import func, select, update

    from garrison.audit.models import AuditEntry
    from garrison.db import Database
    from garrison.db.types import utcnow
    from garrison.outbox import service as outbox
    from garrison.outbox.models import PARKED, OutboxMessage

    settings = make_settings(
        tmp_path,
        database_url=fresh_database_url,  # a database of its own: exact counts
        worker={"in_process": False},  # nothing drains the backlog meanwhile
        health={"backlog_warn_seconds": 300},
    )
    await migrated(settings)
    healthy = (await _get(settings, "/api/health")).json()
    assert healthy["checks"]["outbox:backlog"][0]["status"] == "pass"

    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await outbox.enqueue(
                session,
                messages=[
                    outbox.NewMessage(
                        event_id=f"e-{n}",
                        topic="test.stale",
                        target_type="thing",
                        target_id=str(n),
                        payload={"n": n},
                    )
                    for n in range(3)
                ],
            )
            await session.execute(
                update(OutboxMessage).values(created_at=utcnow() - timedelta(minutes=10))
            )
            await session.execute(
                update(OutboxMessage).where(OutboxMessage.event_id == "e-2").values(status=PARKED)
            )
        async with db.read_session() as session:
            # Audit entries the app's start wrote; no worker has sealed them either.
            unsealed = await session.scalar(
                select(func.count()).select_from(AuditEntry).where(AuditEntry.seq.is_(None))
            )
    finally:
        await db.dispose()

    response = await _get(settings, "/api/health")
    body = response.json()
    assert response.status_code == 200  # a late worker does not take the API down
    assert body["status"] == "warn"
    backlog = body["checks"]["outbox:backlog"][0]
    assert backlog["status"] == "warn"
    assert backlog["observedValue"] == 2 + (unsealed or 0)
    assert "waited" in backlog["output"]
    parked = body["checks"]["outbox:parked"][0]
    assert (parked["status"], parked["observedValue"]) == ("warn", 1)
