"""Helpers for the auth tests: an app with its auth runtime, users, tokens."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter

from garrison.app import create_app
from garrison.auth import service
from garrison.auth.deps import CurrentPrincipal, require
from garrison.auth.runtime import AuthRuntime
from garrison.events import Actor
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.conftest import Running, migrated, start

PASSWORD = "correct horse battery staple"


@dataclass
class AuthApp:
    running: Running
    settings: Settings

    @property
    def client(self) -> httpx.AsyncClient:
        return self.running.client

    @property
    def runtime(self) -> AuthRuntime:
        runtime = runtime_of(self.running.app).get(AuthRuntime)
        return runtime

    async def user(self, *, role: str = "user", email: str | None = None) -> str:
        address = email or f"u-{uuid.uuid4().hex[:10]}@example.com"
        await service.register(
            self.runtime, email=address, password=PASSWORD, roles=[role], actor=Actor.system()
        )
        return address

    async def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def token(self, *, role: str = "user") -> str:
        body = await self.login(await self.user(role=role))
        token: str = body["access_token"]
        return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


probe = APIRouter(prefix="/api/v1/_probe")


@probe.get("/records", dependencies=[require("records:read")])
async def read_records(principal: CurrentPrincipal) -> dict[str, Any]:
    """A stand-in for a domain endpoint guarded by a permission."""
    return {"kind": principal.kind, "id": principal.id, "key": principal.key}


@probe.get("/reports", dependencies=[require("reports:read")])
async def read_reports(principal: CurrentPrincipal) -> dict[str, Any]:
    return {"kind": principal.kind}


@asynccontextmanager
async def auth_app(
    settings: Settings, *, client_addr: tuple[str, int] = ("127.0.0.1", 50000)
) -> AsyncIterator[AuthApp]:
    await migrated(settings)
    app = create_app(settings)
    app.include_router(probe)
    async with start(app, client_addr=client_addr) as running:
        yield AuthApp(running, settings)
