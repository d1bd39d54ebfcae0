"""Roles, permissions, require(), and the admin API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from garrison.auth.rbac import grants, narrow
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer

ADMIN = "/api/v1/admin"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


@pytest.mark.parametrize(
    ("held", "wanted", "expected"),
    [
        (["*"], "users:write", True),
        (["records:*"], "records:read", True),
        (["records:*"], "recordsx:read", False),
        (["records:read"], "records:write", False),
        (["records:read"], "records:read", True),
        ([], "records:read", False),
    ],
)
def test_grants(held: list[str], wanted: str, expected: bool) -> None:
    assert grants(held, wanted) is expected


def test_narrow() -> None:
    assert narrow(["records:*"], ["records:read", "users:read"]) == frozenset({"records:read"})


async def test_builtin_roles_exist(kit: AuthApp) -> None:
    admin = await kit.token(role="admin")
    response = await kit.client.get(f"{ADMIN}/roles", headers=bearer(admin))
    assert response.status_code == 200
    roles = {role["name"]: role for role in response.json()}
    assert {"admin", "user", "service"} <= set(roles)
    assert roles["admin"]["permissions"] == ["*"]
    assert all(roles[name]["builtin"] for name in ("admin", "user", "service"))


async def test_401_without_credentials_and_403_without_permission(kit: AuthApp) -> None:
    anonymous = await kit.client.get(f"{ADMIN}/users")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    user = await kit.token()
    forbidden = await kit.client.get(f"{ADMIN}/users", headers=bearer(user))
    assert forbidden.status_code == 403
    assert forbidden.headers["www-authenticate"] == (
        'Bearer realm="garrison", error="insufficient_scope", scope="users:read"'
    )
    assert forbidden.json()["required"] == "users:read"


async def test_custom_role_grants_its_permissions(kit: AuthApp) -> None:
    admin = await kit.token(role="admin")
    name = f"analyst-{uuid.uuid4().hex[:6]}"
    created = await kit.client.post(
        f"{ADMIN}/roles",
        json={"name": name, "description": "reads reports", "permissions": ["reports:read"]},
        headers=bearer(admin),
    )
    assert created.status_code == 201, created.text
    duplicate = await kit.client.post(
        f"{ADMIN}/roles", json={"name": name, "permissions": []}, headers=bearer(admin)
    )
    assert duplicate.status_code == 409

    email = await kit.user()
    token = (await kit.login(email))["access_token"]
    assert (
        await kit.client.get("/api/v1/_probe/reports", headers=bearer(token))
    ).status_code == 403
    me = (await kit.client.get("/api/v1/auth/me", headers=bearer(token))).json()
    assigned = await kit.client.put(
        f"{ADMIN}/users/{me['id']}/roles", json={"roles": ["user", name]}, headers=bearer(admin)
    )
    assert assigned.status_code == 200
    assert assigned.json()["roles"] == sorted(["user", name])
    # The same access token now passes: permissions are read at request time.
    assert (
        await kit.client.get("/api/v1/_probe/reports", headers=bearer(token))
    ).status_code == 200

    patched = await kit.client.patch(
        f"{ADMIN}/roles/{name}", json={"permissions": ["reports:write"]}, headers=bearer(admin)
    )
    assert patched.status_code == 200
    assert (
        await kit.client.get("/api/v1/_probe/reports", headers=bearer(token))
    ).status_code == 403
    deleted = await kit.client.delete(f"{ADMIN}/roles/{name}", headers=bearer(admin))
    assert deleted.status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X", "permissions": []},
        {"name": "ok-name", "permissions": ["not a permission"]},
        {"name": "ok-name", "permissions": "records:read"},
        {"name": "ok-name"},
    ],
)
async def test_bad_roles_are_422(kit: AuthApp, body: dict[str, object]) -> None:
    admin = await kit.token(role="admin")
    response = await kit.client.post(f"{ADMIN}/roles", json=body, headers=bearer(admin))
    assert response.status_code == 422
    assert response.json()["errors"]


async def test_builtin_roles_are_protected(kit: AuthApp) -> None:
    admin = await kit.token(role="admin")
    assert (
        await kit.client.delete(f"{ADMIN}/roles/admin", headers=bearer(admin))
    ).status_code == 403
    patched = await kit.client.patch(
        f"{ADMIN}/roles/user", json={"permissions": ["*"]}, headers=bearer(admin)
    )
    assert patched.status_code == 403
    unknown = await kit.client.put(
        f"{ADMIN}/users/{uuid.uuid4()}/roles", json={"roles": ["user"]}, headers=bearer(admin)
    )
    assert unknown.status_code == 404


async def test_admin_disables_enables_and_revokes(kit: AuthApp) -> None:
    admin = await kit.token(role="admin")
    email = await kit.user()
    session = await kit.login(email)
    user_id = (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))
    ).json()["id"]

    listed = await kit.client.get(f"{ADMIN}/users?limit=200", headers=bearer(admin))
    assert listed.status_code == 200
    assert listed.json()["total"] >= 2

    disabled = await kit.client.post(f"{ADMIN}/users/{user_id}/disable", headers=bearer(admin))
    assert disabled.status_code == 200
    assert disabled.json()["status"] == "disabled"
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(session["access_token"]))
    ).status_code == 401
    refused = await kit.client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": session["refresh_token"]},
    )
    assert refused.status_code == 400
    login = await kit.client.post(
        "/api/v1/auth/login", json={"email": email, "password": "correct horse battery staple"}
    )
    assert login.status_code == 401

    enabled = await kit.client.post(f"{ADMIN}/users/{user_id}/enable", headers=bearer(admin))
    assert enabled.json()["status"] == "active"
    again = await kit.login(email)

    revoked = await kit.client.post(
        f"{ADMIN}/users/{user_id}/revoke-sessions", headers=bearer(admin)
    )
    assert revoked.status_code == 204
    assert (
        await kit.client.get("/api/v1/auth/me", headers=bearer(again["access_token"]))
    ).status_code == 401


async def test_admin_creates_users_and_cannot_disable_itself(kit: AuthApp) -> None:
    admin = await kit.token(role="admin")
    me = (await kit.client.get("/api/v1/auth/me", headers=bearer(admin))).json()
    self_disable = await kit.client.post(f"{ADMIN}/users/{me['id']}/disable", headers=bearer(admin))
    assert self_disable.status_code == 403
    email = f"svc-{uuid.uuid4().hex[:6]}@example.com"
    created = await kit.client.post(
        f"{ADMIN}/users",
        json={"email": email, "password": "a reasonable passphrase", "roles": ["service"]},
        headers=bearer(admin),
    )
    assert created.status_code == 201
    assert created.json()["roles"] == ["service"]
    bad_role = await kit.client.post(
        f"{ADMIN}/users",
        json={"email": f"x{email}", "password": "a reasonable passphrase", "roles": ["nope"]},
        headers=bearer(admin),
    )
    assert bad_role.status_code == 422
    assert bad_role.json()["errors"][0]["pointer"] == "#/roles"


async def test_admin_health_details_with_an_admin_token(
    tmp_path: object, settings: Settings
) -> None:
    async with auth_app(settings, client_addr=("198.51.100.7", 4000)) as kit:
        public = await kit.client.get("/api/health")
        assert set(public.json()) == {"status"}
        user = await kit.token()
        assert set((await kit.client.get("/api/health", headers=bearer(user))).json()) == {"status"}
        forged = await kit.client.get("/api/health", headers=bearer("x.y.z"))
        assert set(forged.json()) == {"status"}
        admin = await kit.token(role="admin")
        detailed = await kit.client.get("/api/health", headers=bearer(admin))
        assert "checks" in detailed.json()
