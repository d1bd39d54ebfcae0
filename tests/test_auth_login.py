from __future__ import annotations

import asyncio
import io
import json
import threading
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from garrison.auth.models import User
from garrison.auth.passwords import common_passwords
from garrison.settings import Settings
from tests.authkit import PASSWORD, AuthApp, auth_app, bearer
from tests.conftest import make_settings


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


def test_common_password_list_is_shipped_and_large() -> None:
    words = common_passwords()
    assert len(words) >= 10_000
    assert "password" in words
    assert "123456789" in words


async def test_register_login_me(kit: AuthApp) -> None:
    alice = f"alice-{uuid.uuid4().hex[:8]}@example.com"
    response = await kit.client.post(
        "/api/v1/auth/register", json={"email": f" {alice.upper()} ", "password": PASSWORD}
    )
    assert response.status_code == 201, response.text
    assert response.json()["email"] == alice
    assert response.json()["roles"] == ["user"]

    again = await kit.client.post(
        "/api/v1/auth/register", json={"email": alice, "password": PASSWORD}
    )
    assert again.status_code == 409

    tokens = await kit.login(alice.upper())
    assert tokens["token_type"] == "Bearer"
    assert tokens["expires_in"] == 900
    assert tokens["refresh_token"].startswith("grt_")
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == alice
    assert "api_keys:write" in me.json()["permissions"]


async def test_login_accepts_a_form(kit: AuthApp) -> None:
    email = await kit.user()
    response = await kit.client.post(
        "/api/v1/auth/login", data={"username": email, "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1!", "at least 8"),
        ("x" * 129, "at most 128"),
        ("password123", "too common"),
        ("Qwertyuiop", "too common"),
    ],
)
async def test_password_policy(kit: AuthApp, password: str, reason: str) -> None:
    bob = f"bob-{uuid.uuid4().hex[:8]}@example.com"
    response = await kit.client.post(
        "/api/v1/auth/register", json={"email": bob, "password": password}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["errors"][0]["pointer"] == "#/password"
    assert reason in body["errors"][0]["detail"]
    async with kit.runtime.db.read_session() as session:
        assert await session.scalar(select(User).where(User.email == bob)) is None


async def test_long_passphrases_without_composition_rules_are_accepted(kit: AuthApp) -> None:
    phrase = "all lower case words are fine here " * 3  # 105 characters, no digits
    response = await kit.client.post(
        "/api/v1/auth/register",
        json={"email": f"c-{uuid.uuid4().hex[:8]}@example.com", "password": phrase},
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address", "password": PASSWORD},
        {"email": "a@example.com"},
        {"email": 5, "password": PASSWORD},
        {"email": "a@example.com", "password": PASSWORD, "extra": 1},
    ],
)
async def test_bad_login_bodies_are_problems(kit: AuthApp, body: dict[str, object]) -> None:
    response = await kit.client.post("/api/v1/auth/login", json=body)
    assert response.status_code in (401, 422)
    assert response.headers["content-type"] == "application/problem+json"


async def test_malformed_json_is_400(kit: AuthApp) -> None:
    response = await kit.client.post(
        "/api/v1/auth/login", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


async def test_unknown_user_and_wrong_password_look_the_same(kit: AuthApp) -> None:
    email = await kit.user()
    wrong = await kit.client.post("/api/v1/auth/login", json={"email": email, "password": "x" * 12})
    unknown = await kit.client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "x" * 12}
    )
    assert wrong.status_code == unknown.status_code == 401
    strip = {"request_id"}
    assert {k: v for k, v in wrong.json().items() if k not in strip} == {
        k: v for k, v in unknown.json().items() if k not in strip
    }


async def test_unknown_user_still_costs_a_hash_verification(
    kit: AuthApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = kit.runtime.hasher._verify

    def counting(stored: str, password: str) -> bool:
        calls.append(stored)
        return original(stored, password)

    monkeypatch.setattr(kit.runtime.hasher, "_verify", counting)
    await kit.client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "x" * 12}
    )
    assert len(calls) == 1
    assert calls[0].startswith("$argon2id$")


async def test_hashes_are_argon2id_with_owasp_parameters(kit: AuthApp) -> None:
    email = await kit.user()
    async with kit.runtime.db.read_session() as session:
        stored = await session.scalar(select(User.password_hash).where(User.email == email))
    assert stored is not None
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert PASSWORD not in stored


async def test_login_rehashes_when_parameters_are_raised(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    async with auth_app(settings) as kit:
        email = await kit.user()
    stronger = make_settings(tmp_path, database_url=database_url, auth={"argon2_time_cost": 3})
    async with auth_app(stronger) as kit:
        await kit.login(email)
        async with kit.runtime.db.read_session() as session:
            stored = await session.scalar(select(User.password_hash).where(User.email == email))
    assert stored is not None
    assert ",t=3," in stored
    PasswordHasher().verify(stored, PASSWORD)


async def test_registration_modes(tmp_path: Path, database_url: str) -> None:
    closed = make_settings(tmp_path, database_url=database_url, auth={"registration": "closed"})
    async with auth_app(closed) as kit:
        response = await kit.client.post(
            "/api/v1/auth/register", json={"email": "d@example.com", "password": PASSWORD}
        )
        assert response.status_code == 403
    assert make_settings(tmp_path).auth.registration == "open"


async def test_no_secret_reaches_the_logs(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    stream = io.StringIO()
    settings.log.format = "json"
    from garrison.log import configure_logging

    configure_logging(settings, stream=stream)
    async with auth_app(settings) as kit:
        email = await kit.user()
        tokens = await kit.login(email)
        await kit.client.post("/api/v1/auth/login", json={"email": email, "password": "wrong pw 1"})
        refreshed = await kit.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        await kit.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        )
        key = await kit.client.post(
            "/api/v1/api-keys",
            json={"name": "ci", "scopes": ["records:read"]},
            headers=bearer(tokens["access_token"]),
        )
        await kit.client.get("/api/v1/auth/me", headers={"X-API-Key": key.json()["key"]})
    text = stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert any(line.get("action") == "auth.refresh.reuse_detected" for line in lines)
    for secret in (
        PASSWORD,
        "wrong pw 1",
        tokens["access_token"],
        tokens["refresh_token"],
        refreshed.json()["refresh_token"],
        key.json()["key"],
    ):
        assert secret not in text


async def test_hashing_runs_off_the_event_loop(
    kit: AuthApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """argon2 runs in worker threads, so the loop keeps serving while logins hash."""
    loop_thread = threading.get_ident()
    seen: list[int] = []
    original = kit.runtime.hasher._verify

    def recording(stored: str, password: str) -> bool:
        seen.append(threading.get_ident())
        return original(stored, password)

    monkeypatch.setattr(kit.runtime.hasher, "_verify", recording)
    email = await kit.user()
    burst = [
        kit.client.post("/api/v1/auth/login", json={"email": email, "password": f"wrong {n}"})
        for n in range(6)
    ]
    results = await asyncio.gather(*burst, kit.client.get("/api/health/live"))
    assert results[-1].status_code == 200
    assert len(seen) == 6
    assert loop_thread not in seen


async def test_password_hashing_runs_below_the_event_loops_priority() -> None:
    """argon2 is deliberately heavy: its threads run niced, so a login storm takes CPU
    only when nothing else wants it (Linux)."""
    import os
    import sys
    import threading

    from garrison.auth.passwords import HASH_NICENESS, Hasher
    from garrison.settings import AuthSettings

    hasher = Hasher(AuthSettings())
    here = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    there = await hasher.run(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
    if sys.platform == "linux":
        assert there == min(19, here + HASH_NICENESS)
    assert await hasher.verify(await hasher.hash(PASSWORD), PASSWORD)
    assert not await hasher.verify(None, PASSWORD)
