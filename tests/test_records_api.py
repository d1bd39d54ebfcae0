"""The data API over HTTP with real users and tokens, on SQLite and MariaDB: the issue's
walk-through (an admin defines posts related to users with an owner rule; two users each
see only their own), precise problems for bad input, ETags, If-Match and Idempotency-Key."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from garrison.db import Database
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.helpers import assert_problem, drop_all_collections

POSTS: dict[str, Any] = {
    "name": "posts",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100, "required": True},
        {"name": "views", "type": "integer", "default": 0, "indexed": True},
        {"name": "author", "type": "relation", "collection": "users", "on_delete": "cascade"},
    ],
    "rules": {
        "list": "owner = @auth.id",
        "view": "owner = @auth.id",
        "create": "@auth.id != null",
        "update": "owner = @auth.id",
        "delete": "owner = @auth.id",
    },
}
RECORDS = "/api/v1/collections/posts/records"


@pytest.fixture
async def api(settings: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(settings) as app:
        yield app
        # The MariaDB database is shared by the session: leave no collection behind.
        db: Database = runtime_of(app.running.app).db
        await drop_all_collections(db)


@pytest.fixture
async def admin(api: AuthApp) -> dict[str, str]:
    return bearer(await api.token(role="admin"))


@pytest.fixture
async def posts(api: AuthApp, admin: dict[str, str]) -> None:
    response = await api.client.post("/api/v1/collections", json=POSTS, headers=admin)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/api/v1/collections/posts"


async def me(api: AuthApp, headers: dict[str, str]) -> str:
    response = await api.client.get("/api/v1/auth/me", headers=headers)
    user_id: str = response.json()["id"]
    return user_id


async def test_each_user_sees_only_their_own(api: AuthApp, posts: None) -> None:
    alice, bob = bearer(await api.token()), bearer(await api.token())
    alice_id = await me(api, alice)
    created = await api.client.post(RECORDS, json={"title": "A", "author": alice_id}, headers=alice)
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["owner"] == alice_id
    assert created.headers["etag"] == '"1"'
    assert created.headers["location"] == f"{RECORDS}/{record['id']}"
    bobs = await api.client.post(RECORDS, json={"title": "B"}, headers=bob)
    assert bobs.status_code == 201

    listing = await api.client.get(RECORDS, params={"count": "true"}, headers=alice)
    assert [r["id"] for r in listing.json()["items"]] == [record["id"]]
    assert listing.json()["total"] == 1
    assert (
        await api.client.get(f"{RECORDS}/{bobs.json()['id']}", headers=alice)
    ).status_code == 404
    assert (await api.client.get(f"{RECORDS}/{record['id']}", headers=alice)).status_code == 200
    anonymous = await api.client.get(RECORDS, params={"count": "true"})
    assert anonymous.status_code == 200
    assert anonymous.json()["total"] == 0
    assert (await api.client.post(RECORDS, json={"title": "x"})).status_code == 403


async def test_bad_payloads_and_filters(api: AuthApp, posts: None) -> None:
    alice = bearer(await api.token())
    bad = await api.client.post(
        RECORDS, json={"views": "many", "ghost": 1, "id": "x", "title": "t" * 101}, headers=alice
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    pointers = {e["pointer"] for e in bad.json()["errors"]}
    assert pointers == {"#/views", "#/ghost", "#/id", "#/title"}
    not_object = await api.client.post(RECORDS, json=[1, 2], headers=alice)
    assert not_object.status_code == 422
    missing_author = await api.client.post(
        RECORDS,
        json={"title": "t", "author": "0190b0a0-0000-7000-8000-000000000000"},
        headers=alice,
    )
    assert missing_author.status_code == 422
    filtered = await api.client.get(RECORDS, params={"filter": "views >> 2"}, headers=alice)
    assert filtered.status_code == 400
    assert filtered.json()["position"] == 7
    unknown = await api.client.get(RECORDS, params={"filter": "secret = 1"}, headers=alice)
    assert unknown.status_code == 400
    assert (await api.client.get(RECORDS, params={"limit": 500}, headers=alice)).status_code == 422
    total = await api.client.get(RECORDS, params={"count": "true"}, headers=alice)
    assert total.json()["total"] == 0
    nowhere = await api.client.get("/api/v1/collections/nope/records", headers=alice)
    assert nowhere.status_code == 404


async def test_etags_and_if_match(api: AuthApp, posts: None) -> None:
    alice = bearer(await api.token())
    record = (await api.client.post(RECORDS, json={"title": "v1"}, headers=alice)).json()
    url = f"{RECORDS}/{record['id']}"
    cached = await api.client.get(url, headers=alice | {"If-None-Match": '"1"'})
    assert cached.status_code == 304
    changed = await api.client.patch(url, json={"title": "v2"}, headers=alice | {"If-Match": '"1"'})
    assert changed.status_code == 200
    assert changed.headers["etag"] == '"2"'
    stale = await api.client.patch(url, json={"title": "v3"}, headers=alice | {"If-Match": '"1"'})
    assert stale.status_code == 412
    stale_delete = await api.client.delete(url, headers=alice | {"If-Match": '"1"'})
    assert stale_delete.status_code == 412
    replaced = await api.client.put(url, json={"title": "v3"}, headers=alice | {"If-Match": '"2"'})
    assert replaced.json()["views"] == 0
    assert (await api.client.get(url, headers=alice)).json()["title"] == "v3"
    assert (await api.client.delete(url, headers=alice | {"If-Match": '"3"'})).status_code == 204
    assert (await api.client.get(url, headers=alice)).status_code == 404


async def test_idempotency_key_creates_once(api: AuthApp, posts: None) -> None:
    alice = bearer(await api.token())
    headers = alice | {"Idempotency-Key": "create-post-1"}
    first = await api.client.post(RECORDS, json={"title": "once"}, headers=headers)
    second = await api.client.post(RECORDS, json={"title": "once"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    other = await api.client.post(RECORDS, json={"title": "different"}, headers=headers)
    assert other.status_code == 422
    count = await api.client.get(RECORDS, params={"count": "true"}, headers=alice)
    assert count.json()["total"] == 1


async def test_collection_admin_is_for_admins(api: AuthApp, admin: dict[str, str]) -> None:
    user = bearer(await api.token())
    assert (
        await api.client.post("/api/v1/collections", json=POSTS, headers=user)
    ).status_code == 403
    assert (await api.client.post("/api/v1/collections", json=POSTS)).status_code == 401
    bad = await api.client.post(
        "/api/v1/collections",
        json={"name": "x", "fields": [{"name": "a", "type": "nope"}]},
        headers=admin,
    )
    assert bad.status_code == 422
    assert bad.json()["errors"]


async def test_schema_changes_over_http(api: AuthApp, posts: None, admin: dict[str, str]) -> None:
    changes = "/api/v1/collections/posts/changes"
    added = await api.client.post(
        changes,
        json={"kind": "add_field", "field": {"name": "score", "type": "number"}},
        headers=admin,
    )
    assert added.status_code == 200, added.text
    assert added.json()["version"] == 2
    drop = {"kind": "drop_field", "name": "score"}
    refused = await api.client.post(changes, json=drop, headers=admin)
    assert refused.status_code == 409
    assert (
        await api.client.post(changes, params={"confirm": "true"}, json=drop, headers=admin)
    ).status_code == 200
    history = (await api.client.get(changes, headers=admin)).json()
    assert [h["change"]["kind"] for h in history] == ["add_field", "drop_field"]
    reverted = await api.client.post(f"{changes}/{history[1]['id']}/revert", headers=admin)
    assert reverted.status_code == 200
    assert [f["name"] for f in reverted.json()["fields"]][-1] == "score"


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({"kind": "add_field"}, "field"),
        ({"kind": "drop_field"}, "name"),
        ({"kind": "rename_field", "old": "title"}, "new"),
        ({"kind": "add_index"}, "index"),
        ({"kind": "set_rules"}, "rules"),
        ({"kind": "set_rules", "rules": {}, "field": {"name": "a", "type": "text"}}, "field"),
        ({"kind": "rewrite_everything"}, "kind"),
    ],
)
async def test_a_schema_change_missing_its_part_names_it(
    api: AuthApp, posts: None, admin: dict[str, str], change: dict[str, object], missing: str
) -> None:
    """Each kind of change needs its own part (and takes no other): without it the change is
    a 422 naming what is missing, and the schema stays at its version."""
    response = await api.client.post(
        "/api/v1/collections/posts/changes", json=change, headers=admin
    )
    errors = assert_problem(response, 422)["errors"]
    assert isinstance(errors, list)
    assert any(missing in str(error) for error in errors), errors
    current = await api.client.get("/api/v1/collections/posts", headers=admin)
    assert current.json()["version"] == 1
