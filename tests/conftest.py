"""Shared fixtures: settings per backend, a migrated database, the app over ASGI."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Connection, MetaData, inspect, text

from garrison.app import create_app
from garrison.audit import install_keyring, install_recorder
from garrison.db import Database, migrate
from garrison.log import configure_logging
from garrison.settings import Settings, load_settings
from tests import services
from tests.helpers import (
    GOOD_SECRET,
    WORKER_REDIS_PREFIX,
    LoggedProcess,
    free_port,
    shares_the_suite_database,
    wait_until_accepting,
)


@pytest.fixture(autouse=True, scope="session")
def _audit_recorder() -> None:
    """Events that tests emit through the services are recorded, as in the app and CLI."""
    install_recorder()


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests see only the configuration they set themselves."""
    for name in list(os.environ):
        if name.startswith(("GARRISON_", "PROD_DB_")) and not name.startswith("GARRISON_TEST_"):
            monkeypatch.delenv(name)
    if WORKER_REDIS_PREFIX:
        monkeypatch.setenv("GARRISON_REDIS_PREFIX", WORKER_REDIS_PREFIX)


@pytest.fixture(scope="session")
def mysql_url() -> Iterator[str]:
    url = services.create_mysql_database()
    yield url
    services.drop_mysql_database(url)


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.check_redis()


@pytest.fixture(params=["sqlite", "mariadb"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'garrison.db'}"
    url: str = request.getfixturevalue("mysql_url")
    return url


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"_env_file": None, "data_dir": tmp_path / "var"}
    # The health checks' 0.8 s budget is for failing fast in production; with the suite's
    # parallel processes on two cores a SQLite check can take longer and turn "pass" into
    # "fail". Tests of the budget itself set their own; other health settings a test passes
    # are merged with it (replacing the section dropped the budget back to 0.8 s: a stressed
    # run saw /api/health answer 503 in a test that only set disk thresholds).
    health = overrides.pop("health", {})
    values["health"] = {"check_timeout": 5.0, **health} if isinstance(health, dict) else health
    values.update(overrides)
    if shares_the_suite_database(values.get("database_url")):
        values.setdefault("secret_key", GOOD_SECRET)  # one installation per shared database
    settings = load_settings(**values)
    install_keyring(settings)  # as the app and the CLI do with theirs
    return settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url=database_url)


@pytest.fixture
def log_stream(settings: Settings) -> io.StringIO:
    """Everything the app logs during the test, as JSON lines."""
    stream = io.StringIO()
    settings.log.format = "json"
    settings.log.level = "debug"
    configure_logging(settings, stream=stream)
    return stream


async def migrated(settings: Settings) -> None:
    await migrate.upgrade(settings.db_url, settings.db)


class Running:
    """An app with its lifespan entered, and an HTTP client talking to it in-process."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client


@asynccontextmanager
async def start(
    app: FastAPI, *, client_addr: tuple[str, int] = ("127.0.0.1", 50000)
) -> AsyncIterator[Running]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=client_addr)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Running(app, client)


@pytest.fixture
async def app(settings: Settings) -> FastAPI:
    await migrated(settings)
    return create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with start(app) as running:
        yield running.client


@pytest.fixture(params=["sqlite", "mariadb"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own (for tests that move the schema up and down)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}"
        return
    url = services.create_mysql_database()
    yield url
    services.drop_mysql_database(url)


@pytest.fixture
async def records_db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database on each backend; the collections a test makes are dropped after."""
    settings = make_settings(tmp_path, database_url=database_url)
    await migrated(settings)
    database = Database(settings.db_url, settings.db)
    yield database

    def cleanup(conn: Connection) -> None:
        # Dropped in dependency order: a collection a relation points at goes last.
        made = MetaData()
        names = [name for name in inspect(conn).get_table_names() if name.startswith("c_")]
        made.reflect(conn, only=names)
        made.drop_all(conn)
        conn.execute(text("DELETE FROM garrison_collections"))
        conn.execute(text("DELETE FROM garrison_schema_changes"))

    async with database.transaction() as session:
        await (await session.connection()).run_sync(cleanup)
    await database.dispose()


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[tuple[LoggedProcess, int]]:
    """``garrison serve`` on the embedded default (as ``make run`` starts it), on a free
    port; yields the process and its port."""
    port = free_port()
    server = LoggedProcess(
        [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
        {"GARRISON_DATA_DIR": str(tmp_path / "var"), "GARRISON_LOG__FORMAT": "json"},
    )
    try:
        server.wait_for("garrison.ready")
        wait_until_accepting(port)
        yield server, port
    finally:
        server.stop()
