"""API keys: shown once, hashed, scoped, revocable, accepted in both headers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from garrison.auth.identify import principal_key
from garrison.auth.models import ApiKey
from garrison.db.retry import transact
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer

KEYS = "/api/v1/api-keys"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


async def _key(kit: AuthApp, token: str, **body: Any) -> dict[str, Any]:
    payload = {"name": "ci", "scopes": ["records:read"], **body}
    response = await kit.client.post(KEYS, json=payload, headers=bearer(token))
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


async def test_key_lifecycle(kit: AuthApp) -> None:
    token = await kit.token()
    created = await _key(kit, token)
    secret = created["key"]
    assert secret.startswith("gar_")
    assert len(secret) >= 4 + 43  # 256 bits, base64url
    assert created["prefix"] == secret[:10]

    by_bearer = await kit.client.get("/api/v1/_probe/records", headers=bearer(secret))
    assert by_bearer.status_code == 200
    assert by_bearer.json() == {
        "kind": "api_key",
        "id": created["id"],
        "key": f"key:{created['id']}",
    }
    by_header = await kit.client.get("/api/v1/_probe/records", headers={"X-API-Key": secret})
    assert by_header.status_code == 200
    # Scoped: the owner may write records, the key may not.
    assert (
        await kit.client.get("/api/v1/_probe/reports", headers={"X-API-Key": secret})
    ).status_code == 403

    listed = await kit.client.get(KEYS, headers=bearer(token))
    assert listed.status_code == 200
    [row] = [k for k in listed.json() if k["id"] == created["id"]]
    assert "key" not in row
    assert secret not in listed.text
    assert row["last_used_at"] is not None

    async with kit.runtime.db.read_session() as session:
        stored = await session.scalar(select(ApiKey).where(ApiKey.id == created["id"]))
    assert stored is not None
    assert secret not in (stored.key_hash, stored.prefix)

    revoked = await kit.client.delete(f"{KEYS}/{created['id']}", headers=bearer(token))
    assert revoked.status_code == 204
    after = await kit.client.get("/api/v1/_probe/records", headers={"X-API-Key": secret})
    assert after.status_code == 401


async def test_scopes_must_be_held_by_the_owner(kit: AuthApp) -> None:
    token = await kit.token()
    response = await kit.client.post(
        KEYS, json={"name": "x", "scopes": ["users:write"]}, headers=bearer(token)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["pointer"] == "#/scopes"


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": []},
        {"name": "", "scopes": ["records:read"]},
        {"name": "x", "scopes": ["BAD SCOPE"]},
        {"name": "x", "scopes": ["records:read"], "expires_at": "2001-01-01T00:00:00Z"},
        {"name": "x", "scopes": ["records:read"], "expires_at": "not a date"},
    ],
)
async def test_bad_key_requests_are_422(kit: AuthApp, body: dict[str, Any]) -> None:
    token = await kit.token()
    response = await kit.client.post(KEYS, json=body, headers=bearer(token))
    assert response.status_code == 422


async def test_expired_keys_and_keys_of_disabled_owners_stop_working(kit: AuthApp) -> None:
    token = await kit.token()
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    created = await _key(kit, token, expires_at=soon)
    assert (
        await kit.client.get("/api/v1/_probe/records", headers=bearer(created["key"]))
    ).status_code == 200

    async def expire(session: Any) -> None:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.id == created["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )

    await transact(kit.runtime.db, expire)
    assert (
        await kit.client.get("/api/v1/_probe/records", headers=bearer(created["key"]))
    ).status_code == 401

    other = await _key(kit, token)
    admin = await kit.token(role="admin")
    me = (await kit.client.get("/api/v1/auth/me", headers=bearer(token))).json()
    await kit.client.post(f"/api/v1/admin/users/{me['id']}/disable", headers=bearer(admin))
    assert (
        await kit.client.get("/api/v1/_probe/records", headers=bearer(other["key"]))
    ).status_code == 401


async def test_keys_cannot_mint_keys_or_touch_others(kit: AuthApp) -> None:
    token = await kit.token()
    created = await _key(kit, token, scopes=["api_keys:write", "records:read"])
    minted = await kit.client.post(
        KEYS, json={"name": "y", "scopes": ["records:read"]}, headers={"X-API-Key": created["key"]}
    )
    assert minted.status_code == 403
    stranger = await kit.token()
    theirs = await kit.client.delete(f"{KEYS}/{created['id']}", headers=bearer(stranger))
    assert theirs.status_code == 404


async def test_principal_key_identifies_cheaply(kit: AuthApp) -> None:
    email = await kit.user()
    tokens = await kit.login(email)
    me = (await kit.client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))).json()
    created = await _key(kit, tokens["access_token"])
    app = kit.running.app

    def scope(headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
        return {"type": "http", "app": app, "headers": headers}

    auth = tokens["access_token"].encode()
    assert await principal_key(scope([(b"authorization", b"Bearer " + auth)])) == f"user:{me['id']}"
    key = created["key"].encode()
    assert await principal_key(scope([(b"x-api-key", key)])) == f"key:{created['id']}"
    assert (
        await principal_key(scope([(b"authorization", b"Bearer " + key)])) == f"key:{created['id']}"
    )
    for junk in (b"Bearer x.y.z", b"Basic abc", b"Bearer gar_nope", b"Bearer \xff\xfe", b""):
        assert await principal_key(scope([(b"authorization", junk)])) is None
    assert await principal_key(scope([])) is None
    assert await principal_key({"type": "http", "headers": []}) is None
