"""Refresh-token rotation, reuse detection, races, expiry and revocation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from garrison.auth.clock import utcnow
from garrison.auth.models import RefreshToken
from garrison.auth.opaque import digest
from garrison.db.retry import transact
from garrison.settings import Settings
from tests.authkit import PASSWORD, AuthApp, auth_app, bearer

TOKEN = "/api/v1/auth/token"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


async def _refresh(kit: AuthApp, token: str) -> Any:
    return await kit.client.post(
        TOKEN, data={"grant_type": "refresh_token", "refresh_token": token}
    )


async def test_refresh_rotates_and_is_single_use(kit: AuthApp) -> None:
    first = await kit.login(await kit.user())
    second = await _refresh(kit, first["refresh_token"])
    assert second.status_code == 200
    body = second.json()
    assert body["refresh_token"] != first["refresh_token"]
    assert body["token_type"] == "Bearer"
    assert second.headers["cache-control"] == "no-store"
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    ).status_code == 200
    third = await _refresh(kit, body["refresh_token"])
    assert third.status_code == 200
    async with kit.runtime.db.read_session() as session:
        rows = (
            await session.scalars(
                select(RefreshToken).where(
                    RefreshToken.token_hash.in_(
                        [digest(first["refresh_token"]), digest(body["refresh_token"])]
                    )
                )
            )
        ).all()
    assert len(rows) == 2
    assert all(row.used_at is not None for row in rows)
    assert len({row.family_id for row in rows}) == 1
    for row in rows:  # stored hashed, never as issued
        assert row.token_hash not in (first["refresh_token"], body["refresh_token"])


async def test_replayed_refresh_token_kills_the_family(kit: AuthApp) -> None:
    first = await kit.login(await kit.user())
    successor = (await _refresh(kit, first["refresh_token"])).json()["refresh_token"]
    replay = await _refresh(kit, first["refresh_token"])
    assert replay.status_code == 400
    assert replay.json()["error"] == "invalid_grant"
    assert replay.headers["content-type"] == "application/problem+json"
    # The legitimate-looking successor is dead too.
    after = await _refresh(kit, successor)
    assert after.status_code == 400
    assert after.json()["error"] == "invalid_grant"


async def test_other_sessions_survive_a_replay(kit: AuthApp) -> None:
    email = await kit.user()
    one = await kit.login(email)
    two = await kit.login(email)
    await _refresh(kit, one["refresh_token"])
    await _refresh(kit, one["refresh_token"])  # replay: family one dies
    assert (await _refresh(kit, two["refresh_token"])).status_code == 200


@pytest.mark.parametrize("racers", [8])
async def test_concurrent_refreshes_have_at_most_one_winner(kit: AuthApp, racers: int) -> None:
    first = await kit.login(await kit.user())
    results = await asyncio.gather(*(_refresh(kit, first["refresh_token"]) for _ in range(racers)))
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == racers - 1, statuses
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)


async def test_idle_expired_refresh_token_is_refused(kit: AuthApp) -> None:
    first = await kit.login(await kit.user())

    async def age(session: Any) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest(first["refresh_token"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    await transact(kit.runtime.db, age)
    response = await _refresh(kit, first["refresh_token"])
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_successor_never_outlives_the_family(kit: AuthApp) -> None:
    first = await kit.login(await kit.user())
    soon = utcnow() + timedelta(seconds=30)

    async def shorten(session: Any) -> None:
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.token_hash == digest(first["refresh_token"]))
            .values(family_expires_at=soon)
        )

    await transact(kit.runtime.db, shorten)
    successor = (await _refresh(kit, first["refresh_token"])).json()["refresh_token"]
    async with kit.runtime.db.read_session() as session:
        row = await session.scalar(
            select(RefreshToken).where(RefreshToken.token_hash == digest(successor))
        )
    assert row is not None
    assert (
        abs((row.expires_at.replace(tzinfo=None) - soon.replace(tzinfo=None)).total_seconds()) < 1
    )


@pytest.mark.parametrize("value", ["", "grt_unknown", "x" * 5000, "grt_" + "A" * 43, "' OR 1=1 --"])
async def test_bad_refresh_tokens_are_invalid_grant(kit: AuthApp, value: str) -> None:
    response = await _refresh(kit, value)
    assert response.status_code == 400
    assert response.json()["error"] in ("invalid_grant", "invalid_request")


async def test_logout_revokes_the_family_and_the_access_token(kit: AuthApp) -> None:
    email = await kit.user()
    session_a = await kit.login(email)
    session_b = await kit.login(email)
    out = await kit.client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": session_a["refresh_token"]},
        headers=bearer(session_a["access_token"]),
    )
    assert out.status_code == 204
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(session_a["access_token"]))
    assert me.status_code == 401
    assert (await _refresh(kit, session_a["refresh_token"])).status_code == 400
    # Another device's session is untouched.
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session_b["access_token"]))
    ).status_code == 200
    assert (await _refresh(kit, session_b["refresh_token"])).status_code == 200


async def test_password_change_ends_every_session(kit: AuthApp) -> None:
    email = await kit.user()
    session = await kit.login(email)
    new_password = "a different long passphrase"
    wrong = await kit.client.post(
        "/api/v1/auth/password",
        json={"current_password": "not it at all", "new_password": new_password},
        headers=bearer(session["access_token"]),
    )
    assert wrong.status_code == 401
    changed = await kit.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": new_password},
        headers=bearer(session["access_token"]),
    )
    assert changed.status_code == 204
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))
    ).status_code == 401
    assert (await _refresh(kit, session["refresh_token"])).status_code == 400
    old = await kit.client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert old.status_code == 401
    fresh = await kit.login(email, new_password)
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(fresh["access_token"]))
    ).status_code == 200


async def test_weak_new_password_is_refused_and_nothing_changes(kit: AuthApp) -> None:
    email = await kit.user()
    session = await kit.login(email)
    response = await kit.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "password1"},
        headers=bearer(session["access_token"]),
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/new_password"
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))
    ).status_code == 200
