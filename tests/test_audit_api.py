"""The audit trail through HTTP: changes made through the API appear in the search with their
actor, request context and diff; denied attempts are kept; the search, its filters, cursor
pagination and the NDJSON export; only callers holding ``audit:read`` may read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import pytest
from fastapi import APIRouter, Body, Header
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import text

from garrison import events
from garrison.audit.sealer import seal_pending
from garrison.db import Database
from garrison.deps import DatabaseDep, WriteSession
from garrison.errors import Conflict, Unauthorized
from garrison.events import Actor, Event
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.authkit import auth_app, bearer
from tests.conftest import make_settings, migrated
from tests.helpers import assert_problem

router = APIRouter(prefix="/api/v1/_audited")


@router.patch("/records/{record_id}")
async def update_record(
    record_id: str,
    session: WriteSession,
    body: Annotated[dict[str, Any], Body()],
    user: Annotated[str, Header(alias="x-test-user")] = "anon",
) -> dict[str, str]:
    await events.emit(
        session,
        Event(
            action="record.updated",
            actor=Actor("user", user),
            target_type="record",
            target_id=record_id,
            changes={k: (None, v) for k, v in body.items()},
        ),
    )
    return {"id": record_id}


@router.post("/login")
async def failed_login(session: WriteSession, db: DatabaseDep) -> None:
    await session.execute(text("SELECT 1"))  # the writer transaction is open (and held)
    await events.emit_standalone(
        db, Event(action="auth.login.failed", actor=Actor.anonymous(), outcome="failed")
    )
    raise Unauthorized("wrong email or password")


@router.post("/broken")
async def broken(session: WriteSession) -> None:
    await events.emit(session, Event(action="record.created", actor=Actor.system()))
    raise Conflict("the change could not be made")


@pytest.fixture
async def api_settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    settings = make_settings(
        tmp_path, database_url=fresh_database_url, worker={"in_process": False}
    )
    await migrated(settings)
    return settings


async def empty_audit_log(db: Database) -> None:
    """Forget what setting up the admin wrote (signing key, user, login), ids included, so
    each test reads only its own entries."""
    async with db.transaction() as session:
        if db.is_sqlite:
            await session.execute(text("DELETE FROM audit_entries"))
        else:
            await session.execute(text("TRUNCATE TABLE audit_entries"))


@pytest.fixture
async def client(api_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client holding an admin token (the audit log needs ``audit:read``)."""
    async with auth_app(api_settings) as api:
        api.running.app.include_router(router)
        token = await api.token(role="admin")
        await empty_audit_log(runtime_of(api.running.app).db)
        api.client.headers.update(bearer(token))
        yield api.client


async def search(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/api/v1/audit", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_api_change_appears_with_actor_context_and_diff(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/api/v1/_audited/records/r1",
        json={"title": "Hello", "password": "s3cret-value"},
        headers={"x-test-user": "alice", "user-agent": "audit-test/1.0"},
    )
    assert response.status_code == 200
    body = await search(client, target="record:r1")
    [entry] = body["items"]
    assert entry["action"] == "record.updated"
    assert entry["actor"] == {"kind": "user", "id": "alice"}
    assert entry["target"] == {"type": "record", "id": "r1"}
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["ip"] == "127.0.0.1"
    assert entry["user_agent"] == "audit-test/1.0"
    assert entry["changes"]["title"] == {"before": None, "after": "Hello"}
    assert entry["changes"]["password"] == {"before": "[redacted]", "after": "[redacted]"}
    assert "s3cret-value" not in response.text + orjson.dumps(body).decode()
    assert entry["occurred_at"].endswith("Z")
    assert entry["seq"] is None  # sealed by the worker, not in the request


async def test_denied_attempt_is_kept_and_failed_change_is_not(client: httpx.AsyncClient) -> None:
    denied = await client.post("/api/v1/_audited/login")
    assert_problem(denied, 401)
    failed = await client.post("/api/v1/_audited/broken")
    assert_problem(failed, 409)
    body = await search(client)
    assert [e["action"] for e in body["items"]] == ["auth.login.failed"]
    assert body["items"][0]["outcome"] == "failed"
    assert body["items"][0]["request_id"] == denied.headers["x-request-id"]


async def test_filters_and_cursor_pagination(client: httpx.AsyncClient) -> None:
    for n in range(7):
        user = "alice" if n % 2 else "bob"
        response = await client.patch(
            f"/api/v1/_audited/records/r{n}", json={"n": n}, headers={"x-test-user": user}
        )
        assert response.status_code == 200
    await client.post("/api/v1/_audited/login")

    assert len((await search(client, actor="user:alice"))["items"]) == 3
    assert len((await search(client, actor="user"))["items"]) == 7
    assert len((await search(client, actor="anonymous"))["items"]) == 1
    assert len((await search(client, action="record"))["items"]) == 7
    assert len((await search(client, action="auth.login"))["items"]) == 1
    assert (await search(client, action="rec"))["items"] == []
    assert len((await search(client, target="record"))["items"]) == 7
    assert len((await search(client, outcome="failed"))["items"]) == 1
    assert (await search(client, until="2000-01-01T00:00:00Z"))["items"] == []
    assert len((await search(client, since="2000-01-01T00:00:00"))["items"]) == 8

    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await search(client, **params)
        seen.extend(e["id"] for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(8, 0, -1))


async def test_ndjson_export(client: httpx.AsyncClient, api_settings: Settings) -> None:
    api_settings.audit.export_batch_size = 2
    for n in range(5):
        await client.patch(f"/api/v1/_audited/records/r{n}", json={"n": n})
    response = await client.get("/api/v1/audit/export", params={"action": "record.updated"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["id"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["seq"] is None  # not sealed yet: no worker runs in this test

    db = Database(api_settings.db_url, api_settings.db)
    try:
        assert await seal_pending(db, batch_size=2) == 5
    finally:
        await db.dispose()
    response = await client.get("/api/v1/audit/export")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[1]["prev_hash"] == lines[0]["hash"]


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"actor": "robot:1"}, "actor"),
        ({"target": ":7"}, "target"),
        ({"outcome": "maybe"}, "outcome"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2030-01-01T00:00:00Z", "until": "2020-01-01T00:00:00Z"}, "until"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "x" * 100}, "cursor"),
    ],
)
async def test_bad_parameters_are_named(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    response = await client.get("/api/v1/audit", params=params)
    body = assert_problem(response, 422)
    errors = body["errors"]
    assert isinstance(errors, list)
    assert errors[0]["parameter"] == parameter


async def test_only_audit_readers_read(api_settings: Settings) -> None:
    async with auth_app(api_settings) as api:
        user = bearer(await api.token(role="user"))
        for path in ("/api/v1/audit", "/api/v1/audit/export"):
            assert_problem(await api.client.get(path), 401)
            body = assert_problem(await api.client.get(path, headers=user), 403)
            assert "audit:read" in str(body)


@hsettings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    params=st.dictionaries(
        st.sampled_from(
            ["actor", "action", "target", "outcome", "since", "until", "limit", "cursor", "x"]
        ),
        st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80),
        max_size=5,
    )
)
async def test_no_query_gets_a_500(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    for path in ("/api/v1/audit", "/api/v1/audit/export"):
        response = await client.get(path, params=params)
        assert response.status_code in (200, 422), response.text
        if response.status_code == 422:
            assert response.headers["content-type"] == "application/problem+json"
