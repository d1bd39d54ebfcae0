"""Admin quotas: the endpoints (SQLite and MariaDB), and quotas replacing the default policy."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from garrison.app import create_app
from garrison.db.engine import Database
from garrison.events import Actor
from garrison.quotas import service
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.store import Cache, MemoryStore, Rate
from garrison.types import Scope
from tests.authkit import AuthApp, bearer
from tests.conftest import make_settings, migrated, start

BASE = "/api/v1/admin/quotas"


@pytest.fixture
def quota_settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(
        tmp_path,
        database_url=database_url,
        rate_limit={"requests_per_minute": 60, "burst": 10, "quota_cache_seconds": 60},
    )


async def identify(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-test-key":
            return f"key:{value.decode()}"
    return None


@pytest.fixture
async def quota_app(quota_settings: Settings) -> FastAPI:
    await migrated(quota_settings)
    return create_app(quota_settings, identify=identify)


@pytest.fixture
async def admin(quota_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding an admin token (quotas need ``quotas:admin``)."""
    async with start(quota_app) as running:
        api = AuthApp(running, runtime_of(quota_app).settings)
        running.client.headers.update(bearer(await api.token(role="admin")))
        yield running.client


def unique(name: str) -> str:
    """Subjects unique per test: the MariaDB database is shared by the session's tests."""
    return f"{name}-{uuid.uuid4().hex[:8]}"


async def test_quota_lifecycle(admin: httpx.AsyncClient) -> None:
    key, role = unique("k"), unique("editor")
    created = await admin.put(f"{BASE}/api_key/{key}", json={"requests_per_minute": 30})
    assert created.status_code == 201
    assert created.json()["burst"] is None
    replaced = await admin.put(
        f"{BASE}/api_key/{key}", json={"requests_per_minute": 30, "burst": 5}
    )
    assert replaced.status_code == 200
    assert replaced.json()["burst"] == 5
    assert (await admin.put(f"{BASE}/role/{role}", json={"requests_per_minute": 9})).is_success
    listed = (await admin.get(BASE)).json()
    mine = [(q["subject_type"], q["subject"]) for q in listed if q["subject"] in (key, role)]
    assert mine == [("api_key", key), ("role", role)]
    assert (await admin.get(f"{BASE}/role/{role}")).json()["requests_per_minute"] == 9
    assert (await admin.delete(f"{BASE}/role/{role}")).status_code == 204
    missing = await admin.get(f"{BASE}/role/{role}")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert (await admin.delete(f"{BASE}/role/{role}")).status_code == 404


@pytest.mark.parametrize(
    ("path", "body", "where"),
    [
        (f"{BASE}/group/x", {"requests_per_minute": 5}, {"parameter": "subject_type"}),
        (f"{BASE}/role/bad%20name", {"requests_per_minute": 5}, {"parameter": "subject"}),
        (f"{BASE}/role/x", {"requests_per_minute": 0}, {"pointer": "#/requests_per_minute"}),
        (f"{BASE}/role/x", {"requests_per_minute": 5, "burst": -1}, {"pointer": "#/burst"}),
        (f"{BASE}/role/x", {"requests_per_minute": 5, "extra": 1}, {"pointer": "#/extra"}),
        (f"{BASE}/role/x", {}, {"pointer": "#/requests_per_minute"}),
    ],
)
async def test_bad_input_names_the_field_and_changes_nothing(
    admin: httpx.AsyncClient, path: str, body: dict[str, Any], where: dict[str, str]
) -> None:
    before = (await admin.get(BASE)).json()
    response = await admin.put(path, json=body)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert any(all(e.get(k) == v for k, v in where.items()) for e in errors), errors
    assert (await admin.get(BASE)).json() == before


async def test_only_admins_manage_quotas(quota_app: FastAPI) -> None:
    async with start(quota_app) as running:
        api = AuthApp(running, runtime_of(quota_app).settings)
        user = bearer(await api.token(role="user"))
        anonymous = await running.client.put(f"{BASE}/role/x", json={"requests_per_minute": 5})
        assert anonymous.status_code == 401
        response = await running.client.put(
            f"{BASE}/role/x", json={"requests_per_minute": 5}, headers=user
        )
        assert response.status_code == 403
        assert response.headers["content-type"] == "application/problem+json"
        assert (await running.client.get(BASE, headers=user)).status_code == 403
        admin = bearer(await api.token(role="admin"))
        assert (await running.client.get(BASE, headers=admin)).status_code == 200


async def test_an_api_key_quota_replaces_the_default(admin: httpx.AsyncClient) -> None:
    k9 = unique("k9")
    key = {"x-test-key": k9}
    first = await admin.get(BASE, headers=key)  # cached: no quota for k9 yet
    assert first.headers["ratelimit-policy"] == '"default";q=60;w=60'
    put = await admin.put(
        f"{BASE}/api_key/{k9}", json={"requests_per_minute": 2, "burst": 2}, headers=key
    )
    assert put.status_code == 201
    # The change invalidated the cached table after it committed: the quota applies now.
    statuses = [(await admin.get(BASE, headers=key)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = await admin.get(BASE, headers=key)
    assert refused.json()["violated-policies"] == ["quota"]
    assert refused.headers["ratelimit-policy"] == '"quota";q=2;w=60'
    # Other callers keep the default policy.
    other = await admin.get(BASE, headers={"x-test-key": unique("k10")})
    assert other.headers["ratelimit-policy"] == '"default";q=60;w=60'


async def test_lookup_resolution_and_caching(quota_settings: Settings) -> None:
    await migrated(quota_settings)
    db = Database(quota_settings.db_url, quota_settings.db)
    cache = Cache(MemoryStore(max_entries=10))
    lookup = service.QuotaLookup(db=db, cache=cache, ttl=60)
    k1, editor, viewer = unique("k1"), unique("editor"), unique("viewer")
    try:
        async with db.transaction() as session:
            for subject_type, subject, rpm, burst in [
                ("api_key", k1, 5, None),
                ("role", editor, 50, 10),
                ("role", viewer, 20, 40),
            ]:
                await service.set_quota(
                    session,
                    subject_type=subject_type,  # type: ignore[arg-type]
                    subject=subject,
                    requests_per_minute=rpm,
                    burst=burst,
                    actor=Actor.system(),
                )
        assert await lookup("ip:127.0.0.1", ()) is None
        assert cache.stats.misses == 0  # anonymous callers cost no lookup at all
        assert await lookup(f"key:{k1}", [editor]) == Rate.per_minute(5)
        assert await lookup("user:1", [viewer, editor]) == Rate.per_minute(50, 10)
        assert await lookup("user:1", ["nobody"]) is None
        assert cache.stats.loads == 1
        async with db.transaction() as session:
            await service.delete_quota(
                session, subject_type="api_key", subject=k1, actor=Actor.system()
            )
        assert await lookup(f"key:{k1}", ()) == Rate.per_minute(5)  # cached until invalidated
        await lookup.invalidate()
        assert await lookup(f"key:{k1}", ()) is None
        assert cache.stats.loads == 2
    finally:
        await db.dispose()


async def test_a_broken_lookup_falls_back_to_the_default(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}")
    db = Database(settings.db_url, settings.db)  # never migrated: the table is missing
    lookup = service.QuotaLookup(db=db, cache=Cache(MemoryStore()), ttl=60)
    try:
        assert await lookup("key:k1", ["admin"]) is None
    finally:
        await db.dispose()


def test_cli_sets_lists_and_deletes_quotas(tmp_path: Path) -> None:
    from tests.helpers import garrison

    env = {"GARRISON_DATA_DIR": str(tmp_path / "var")}
    assert garrison("migrate", "up", env=env).returncode == 0
    created = garrison("quotas", "set", "role", "editor", "--rpm", "120", "--burst", "30", env=env)
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["requests_per_minute"] == 120
    listed = garrison("quotas", "list", env=env)
    assert [json.loads(line)["subject"] for line in listed.stdout.splitlines()] == ["editor"]
    bad = garrison("quotas", "set", "role", "bad name", "--rpm", "1", env=env)
    assert bad.returncode == 2
    assert "SUBJECT" in bad.stderr
    wrong_kind = garrison("quotas", "set", "group", "x", "--rpm", "1", env=env)
    assert wrong_kind.returncode == 2
    assert garrison("quotas", "delete", "role", "editor", env=env).returncode == 0
    missing = garrison("quotas", "delete", "role", "editor", env=env)
    assert missing.returncode == 1
    assert "no quota" in missing.stderr
    assert garrison("quotas", "list", env=env).stdout == ""
    assert garrison("quotas", "--help").returncode == 0


async def test_a_role_quota_applies_to_that_roles_tokens(quota_settings: Settings) -> None:
    """Wired as in production: the limiter identifies callers from their access token and
    reads their roles from it, so a quota set on a role limits that role's users."""
    await migrated(quota_settings)
    app = create_app(quota_settings)  # the default identify: the authenticated principal
    role = unique("tier")
    async with start(app) as running:
        api = AuthApp(running, quota_settings)
        admin = bearer(await api.token(role="admin"))
        made = await running.client.post(
            "/api/v1/admin/roles",
            json={"name": role, "permissions": ["records:read"]},
            headers=admin,
        )
        assert made.status_code == 201, made.text
        put = await running.client.put(
            f"{BASE}/role/{role}", json={"requests_per_minute": 2, "burst": 2}, headers=admin
        )
        assert put.status_code == 201
        limited = bearer(await api.token(role=role))
        statuses = [
            (await running.client.get("/api/v1/auth/me", headers=limited)).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        # An admin's own requests keep the default policy.
        assert (await running.client.get("/api/v1/auth/me", headers=admin)).status_code == 200
