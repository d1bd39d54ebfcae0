from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from garrison.app import create_app
from garrison.db import migrate
from garrison.settings import Settings
from tests.conftest import make_settings, migrated, start

MEDIA = "application/health+json"


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
    settings = make_settings(
        tmp_path, redis_url=f"redis://127.0.0.1:{silent_port}/0", health={"check_timeout": 0.3}
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
        first = await running.app.state.health.report()
        second = await running.app.state.health.report()
        assert first is second
        running.app.state.health.settings.cache_seconds = 0
        third = await running.app.state.health.report()
        assert third is not first
