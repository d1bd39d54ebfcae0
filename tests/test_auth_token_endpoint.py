"""The OAuth 2.0 token endpoint, driven by a real OAuth client (authlib) and by hand."""

from __future__ import annotations

import base64
import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer

TOKEN = "/api/v1/auth/token"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


async def _client(kit: AuthApp, scopes: list[str]) -> dict[str, Any]:
    admin = await kit.token(role="admin")
    response = await kit.client.post(
        "/api/v1/admin/clients", json={"name": "billing", "scopes": scopes}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body: dict[str, Any] = response.json()
    assert body["client_secret"].startswith("gcs_")
    return body


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_client_credentials(kit: AuthApp, method: str) -> None:
    with warnings.catch_warnings():
        # authlib announces a move to "httpx2" when its httpx client is imported (and
        # installs an "always" filter for it); the httpx client is what this test drives.
        import authlib.deprecate

        warnings.simplefilter("ignore", authlib.deprecate.AuthlibDeprecationWarning)
        from authlib.integrations.httpx_client import AsyncOAuth2Client

    created = await _client(kit, ["records:read", "records:write"])
    transport = httpx.ASGITransport(app=kit.running.app, client=("127.0.0.1", 50001))
    async with AsyncOAuth2Client(
        client_id=created["client_id"],
        client_secret=created["client_secret"],
        scope="records:read",
        token_endpoint_auth_method=method,
        transport=transport,
        base_url="http://testserver",
    ) as oauth:
        token = await oauth.fetch_token(
            "http://testserver/api/v1/auth/token", grant_type="client_credentials"
        )
        assert token["token_type"] == "Bearer"
        assert token["scope"] == "records:read"
        assert "refresh_token" not in token
        probe = await oauth.get("/api/v1/_probe/records")
    assert probe.status_code == 200
    assert probe.json() == {
        "kind": "service",
        "id": created["client_id"],
        "key": f"client:{created['client_id']}",
    }


async def test_client_scope_is_limited_to_the_grant(kit: AuthApp) -> None:
    created = await _client(kit, ["records:read"])
    response = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials", "scope": "records:read users:write"},
        auth=(created["client_id"], created["client_secret"]),
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    granted = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    )
    token = granted.json()["access_token"]
    reports = await kit.client.get("/api/v1/_probe/reports", headers=bearer(token))
    assert reports.status_code == 403
    assert 'error="insufficient_scope"' in reports.headers["www-authenticate"]


async def test_disabled_client_tokens_stop_working(kit: AuthApp) -> None:
    created = await _client(kit, ["records:read"])
    granted = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    )
    token = granted.json()["access_token"]
    admin = await kit.token(role="admin")
    disabled = await kit.client.post(
        f"/api/v1/admin/clients/{created['client_id']}/disable", headers=bearer(admin)
    )
    assert disabled.status_code == 204
    assert (
        await kit.client.get("/api/v1/_probe/records", headers=bearer(token))
    ).status_code == 401
    again = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], created["client_secret"]),
    )
    assert again.status_code == 401


async def test_failed_basic_auth_is_401_with_a_challenge(kit: AuthApp) -> None:
    created = await _client(kit, ["records:read"])
    wrong = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        auth=(created["client_id"], "gcs_wrong"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    assert wrong.headers["www-authenticate"] == 'Basic realm="garrison"'
    garbled = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic !!!notbase64"},
    )
    assert garbled.status_code == 401
    assert garbled.headers["www-authenticate"] == 'Basic realm="garrison"'
    no_colon = base64.b64encode(b"just-an-id").decode()
    bare = await kit.client.post(
        TOKEN,
        data={"grant_type": "client_credentials"},
        headers={"Authorization": f"Basic {no_colon}"},
    )
    assert bare.status_code == 401


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        (
            {"grant_type": "password", "username": "a", "password": "b"},
            400,
            "unsupported_grant_type",
        ),
        # Supported since issue #19: a code needs the client it was issued to.
        ({"grant_type": "authorization_code", "code": "x"}, 401, "invalid_client"),
        ({"grant_type": "implicit"}, 400, "unsupported_grant_type"),
        ({}, 400, "invalid_request"),
        ({"grant_type": "refresh_token"}, 400, "invalid_request"),
        ({"grant_type": "client_credentials"}, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "client_id": "svc_x", "client_secret": "y"},
            401,
            "invalid_client",
        ),
    ],
)
async def test_rfc6749_error_shapes(
    kit: AuthApp, data: dict[str, str], status: int, error: str
) -> None:
    response = await kit.client.post(TOKEN, data=data)
    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert body["status"] == status
    assert response.headers["cache-control"] == "no-store"


async def test_token_endpoint_only_takes_posted_forms(kit: AuthApp) -> None:
    get = await kit.client.get(TOKEN)
    assert get.status_code == 405
    as_json = await kit.client.post(TOKEN, json={"grant_type": "refresh_token"})
    assert as_json.status_code == 400
    assert as_json.json()["error"] == "invalid_request"
