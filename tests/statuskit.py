"""Helpers for the status and alerting tests: an app on a database of its own (the page
shows the whole database), an admin token, and a worker driven by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from garrison.db.engine import Database
from garrison.ops.health import HealthService
from garrison.ops.status import notify
from garrison.ops.status.runtime import StatusRuntime
from garrison.outbox.registry import Message, Registry
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.worker import Worker
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings


@dataclass
class Kit:
    auth: AuthApp
    admin: dict[str, str] = field(default_factory=dict)
    topics: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)

    @property
    def client(self) -> httpx.AsyncClient:
        return self.auth.client

    @property
    def settings(self) -> Settings:
        return self.auth.settings

    @property
    def db(self) -> Database:
        return runtime_of(self.auth.running.app).db

    @property
    def health(self) -> HealthService:
        return runtime_of(self.auth.running.app).get(HealthService)

    @property
    def status(self) -> StatusRuntime:
        return runtime_of(self.auth.running.app).get(StatusRuntime)

    async def drain(self) -> None:
        """Seal the events written so far and deliver their messages (status handlers and a
        recorder of every topic)."""
        registry = Registry()

        async def remember(message: Message, db: Database) -> None:
            self.topics.append(message.topic)
            self.messages.append(message)

        registry.register("", remember)
        notify.install(registry, self.settings)
        worker = Worker(self.db, self.settings, handlers=registry)
        while await worker.run_once():
            pass

    async def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.admin)


@asynccontextmanager
async def status_kit(
    tmp_path: Path,
    database_url: str,
    *,
    client_addr: tuple[str, int] = ("127.0.0.1", 50000),
    **overrides: Any,
) -> AsyncIterator[Kit]:
    values: dict[str, Any] = {
        "database_url": database_url,
        "worker": {"in_process": False},
        "health": {"cache_seconds": 0},
        "status": {"cache_seconds": 0},
    }
    values.update(overrides)
    settings = make_settings(tmp_path, **values)
    async with auth_app(settings, client_addr=client_addr) as app:
        kit = Kit(app)
        kit.admin = bearer(await app.token(role="admin"))
        yield kit
