"""Flags through HTTP (SQLite and MariaDB): definitions under /api/v1/flags, evaluation over
OFREP, the audit trail of every change, and the in-process snapshot following changes made
on another instance (memory broadcast and Redis pub/sub)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from garrison import flags
from garrison.app import create_app
from garrison.audit import personal
from garrison.audit.models import AuditEntry
from garrison.flags.runtime import FlagRuntime
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings, migrated, start

FLAGS = "/api/v1/flags"
OFREP = "/ofrep/v1/evaluate/flags"


def boolean_flag(**environment: Any) -> dict[str, Any]:
    return {
        "description": "new checkout",
        "type": "boolean",
        "variants": {"on": True, "off": False},
        "default_variant": "off",
        "environments": {"development": environment},
    }


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def kit(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app


@pytest.fixture
async def admin(kit: AuthApp) -> dict[str, str]:
    return bearer(await kit.token(role="admin"))


async def evaluator_key(kit: AuthApp, admin: dict[str, str], scopes: list[str]) -> dict[str, str]:
    response = await kit.client.post(
        "/api/v1/api-keys", json={"name": "flags", "scopes": scopes}, headers=admin
    )
    assert response.status_code == 201, response.text
    return {"X-API-Key": response.json()["key"]}


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.01)  # a poll interval, not a wait for an expected duration


async def test_flag_lifecycle_is_audited(kit: AuthApp, admin: dict[str, str]) -> None:
    key = unique("checkout")
    created = await kit.client.post(FLAGS, json={"key": key, **boolean_flag()}, headers=admin)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == 1
    assert created.json()["environments"]["development"]["enabled"] is True
    assert (
        await kit.client.post(FLAGS, json={"key": key, **boolean_flag()}, headers=admin)
    ).status_code == 409
    killed = await kit.client.patch(
        f"{FLAGS}/{key}", json={"environments": {"development": {"enabled": False}}}, headers=admin
    )
    assert killed.status_code == 200, killed.text
    assert killed.json()["version"] == 2
    assert killed.json()["description"] == "new checkout"
    exported = (await kit.client.get(f"{FLAGS}/{key}", headers=admin)).json()
    assert exported["environments"]["development"]["enabled"] is False
    # Applying the exported definition elsewhere (here: under a new key) is a PUT.
    body = {
        k: exported[k]
        for k in ("description", "type", "variants", "default_variant", "environments")
    }
    other = unique("applied")
    assert (await kit.client.put(f"{FLAGS}/{other}", json=body, headers=admin)).status_code == 201
    same = await kit.client.put(f"{FLAGS}/{other}", json=body, headers=admin)
    assert same.status_code == 200
    assert same.json()["version"] == 1  # the same definition again changes nothing
    listed = [f["key"] for f in (await kit.client.get(FLAGS, headers=admin)).json()]
    assert key in listed
    assert other in listed
    assert (await kit.client.delete(f"{FLAGS}/{key}", headers=admin)).status_code == 204
    missing = await kit.client.get(f"{FLAGS}/{key}", headers=admin)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"

    async with kit.runtime.db.read_session() as session:
        rows = (
            await session.execute(
                select(AuditEntry.__table__)
                .where(AuditEntry.target_type == "flag", AuditEntry.target_id == key)
                .order_by(AuditEntry.id)
            )
        ).all()
        entries = await personal.open_rows(session, rows)  # sealed under the acting admin
    assert [e["action"] for e in entries] == ["flag.updated"] * 3
    assert ['"created"' in (e["data"] or "") for e in entries] == [True, False, False]
    assert '"deleted"' in (entries[-1]["data"] or "")
    assert "enabled" in (entries[1]["changes"] or "")


@pytest.mark.parametrize(
    ("body", "pointer"),
    [
        (
            boolean_flag(
                rules=[
                    {
                        "conditions": [{"attribute": "a", "operator": "regex", "value": "x"}],
                        "variant": "on",
                    }
                ]
            ),
            "#/environments/development/rules/0/conditions/0/operator",
        ),
        ({**boolean_flag(), "default_variant": "maybe"}, "#/default_variant"),
        ({**boolean_flag(), "type": "colour"}, "#/type"),
        ({**boolean_flag(), "extra": 1}, "#/extra"),
    ],
)
async def test_bad_definitions_are_422_naming_the_field(
    kit: AuthApp, admin: dict[str, str], body: dict[str, Any], pointer: str
) -> None:
    key = unique("bad")
    response = await kit.client.put(f"{FLAGS}/{key}", json=body, headers=admin)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert pointer in [e.get("pointer") for e in response.json()["errors"]]
    assert (await kit.client.get(f"{FLAGS}/{key}", headers=admin)).status_code == 404


async def test_only_flag_managers_manage_and_only_evaluators_evaluate(
    kit: AuthApp, admin: dict[str, str]
) -> None:
    user = bearer(await kit.token(role="user"))
    assert (await kit.client.get(FLAGS)).status_code == 401
    assert (await kit.client.get(FLAGS, headers=user)).status_code == 403
    assert (await kit.client.post(OFREP, json={})).status_code == 401
    wrong = await evaluator_key(kit, admin, ["records:read"])
    assert (await kit.client.post(OFREP, json={}, headers=wrong)).status_code == 403
    right = await evaluator_key(kit, admin, ["flags:evaluate"])
    assert (await kit.client.post(OFREP, json={}, headers=right)).status_code == 200
    assert (await kit.client.post(OFREP, json={}, headers=user)).status_code == 200


async def test_ofrep_single_and_bulk(kit: AuthApp, admin: dict[str, str]) -> None:
    key = unique("beta")
    definition = boolean_flag(
        rules=[
            {
                "conditions": [
                    {"attribute": "email_domain", "operator": "equals", "value": "corp.io"}
                ],
                "variant": "on",
            }
        ]
    )
    assert (
        await kit.client.put(f"{FLAGS}/{key}", json=definition, headers=admin)
    ).status_code == 201
    await (
        runtime_of(kit.running.app).get(FlagRuntime).reload()
    )  # the announcement runs after the response
    caller = await evaluator_key(kit, admin, ["flags:evaluate"])
    hit = await kit.client.post(
        f"{OFREP}/{key}",
        json={"context": {"targetingKey": "u1", "email": "a@corp.io"}},
        headers=caller,
    )
    assert hit.status_code == 200, hit.text
    assert hit.json() == {
        "key": key,
        "value": True,
        "reason": "TARGETING_MATCH",
        "variant": "on",
        "metadata": {},
    }
    miss = (
        await kit.client.post(
            f"{OFREP}/{key}", json={"context": {"email": "a@b.c"}}, headers=caller
        )
    ).json()
    assert (miss["value"], miss["reason"]) == (False, "DEFAULT")

    unknown = await kit.client.post(f"{OFREP}/nope-{key}", json={"context": {}}, headers=caller)
    assert unknown.status_code == 404
    assert unknown.json()["errorCode"] == "FLAG_NOT_FOUND"
    bodies: list[Any] = [{"context": []}, {"context": {"targetingKey": 7}}, [1]]
    for bad in bodies:
        invalid = await kit.client.post(f"{OFREP}/{key}", json=bad, headers=caller)
        assert invalid.status_code == 400
        assert invalid.json()["errorCode"] == "INVALID_CONTEXT"
    garbage = await kit.client.post(
        f"{OFREP}/{key}", content=b"{nope", headers={**caller, "content-type": "application/json"}
    )
    assert garbage.json()["errorCode"] == "PARSE_ERROR"

    bulk = await kit.client.post(OFREP, json={"context": {"email": "z@corp.io"}}, headers=caller)
    assert bulk.status_code == 200
    mine = [f for f in bulk.json()["flags"] if f["key"] == key]
    assert mine[0]["value"] is True
    etag = bulk.headers["etag"]
    cached = await kit.client.post(
        OFREP, json={"context": {"email": "z@corp.io"}}, headers={**caller, "If-None-Match": etag}
    )
    assert cached.status_code == 304
    other_context = await kit.client.post(
        OFREP, json={"context": {"email": "y@x.io"}}, headers=caller
    )
    assert other_context.headers["etag"] != etag
    assert (
        await kit.client.patch(f"{FLAGS}/{key}", json={"description": "x"}, headers=admin)
    ).is_success
    await runtime_of(kit.running.app).get(FlagRuntime).reload()
    changed = await kit.client.post(
        OFREP, json={"context": {"email": "z@corp.io"}}, headers={**caller, "If-None-Match": etag}
    )
    assert changed.status_code == 200  # the definitions changed: a new ETag


async def test_a_user_token_seeds_the_context(kit: AuthApp, admin: dict[str, str]) -> None:
    key = unique("staff")
    definition = boolean_flag(
        rules=[
            {
                "conditions": [{"attribute": "roles", "operator": "in", "value": ["admin"]}],
                "variant": "on",
            }
        ]
    )
    assert (await kit.client.put(f"{FLAGS}/{key}", json=definition, headers=admin)).is_success
    await runtime_of(kit.running.app).get(FlagRuntime).reload()
    user = bearer(await kit.token(role="user"))
    body = {"context": {"roles": ["admin"], "targetingKey": "someone-else"}}
    assert (await kit.client.post(f"{OFREP}/{key}", json=body, headers=user)).json()[
        "value"
    ] is False
    assert (await kit.client.post(f"{OFREP}/{key}", json={}, headers=admin)).json()["value"] is True


@asynccontextmanager
async def _two_instances(settings: Settings) -> AsyncIterator[tuple[AuthApp, FastAPI]]:
    await migrated(settings)
    async with auth_app(settings) as first:
        second_app = create_app(settings)
        async with start(second_app):
            yield first, second_app


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_a_change_reaches_the_other_instance(
    tmp_path: Path, database_url: str, backend: str, request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {"database_url": database_url, "flags": {"refresh_seconds": 3600}}
    if backend == "redis":
        overrides |= {
            "redis_url": request.getfixturevalue("redis_url"),
            "redis_prefix": f"t-{uuid.uuid4().hex[:8]}:",
        }
    settings = make_settings(tmp_path, **overrides)
    key = unique("kill")
    async with _two_instances(settings) as (first, second):
        admin = bearer(await first.token(role="admin"))
        created = await first.client.put(f"{FLAGS}/{key}", json=boolean_flag(), headers=admin)
        assert created.status_code == 201

        def served() -> Any:
            return runtime_of(second).get(FlagRuntime).evaluate(key, {"targetingKey": "u"})

        async def reached() -> bool:
            return served().error_code is None

        await eventually(reached)
        assert served().reason == "STATIC"
        flip = {"environments": {"development": {"default_variant": "on"}}}
        assert (await first.client.patch(f"{FLAGS}/{key}", json=flip, headers=admin)).is_success

        async def flipped() -> bool:
            return served().value is True

        await eventually(flipped)
        # The module-level entry point reads the snapshot of the app started last.
        assert flags.evaluate(key, {"targetingKey": "u"}).value is True
        assert flags.value("no-such-flag", default="fallback") == "fallback"
