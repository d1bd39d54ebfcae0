"""The records service on both backends: collections, validation, access rules in SQL,
optimistic concurrency and keyset pagination."""

from __future__ import annotations

from typing import Any

import pytest

from garrison.db import Database
from garrison.errors import Conflict, ValidationFailed
from garrison.events import Actor
from garrison.records import query, registry, service
from garrison.records.ddl import SchemaChange
from garrison.records.errors import (
    CollectionExists,
    ConfirmationRequired,
    InvalidFilter,
    RecordNotFound,
    RuleDenied,
    StaleRecord,
)
from garrison.records.query import Caller
from garrison.records.registry import Collection
from garrison.records.spec import FieldSpec

ADMIN = Caller(actor=Actor("user", "admin-1"), id="admin-1", role="admin", admin=True)
ALICE = Caller(actor=Actor("user", "alice"), id="alice", role="user")
BOB = Caller(actor=Actor("user", "bob"), id="bob", role="user")
ANON = Caller(actor=Actor.anonymous())
POSTS: dict[str, Any] = {
    "name": "posts",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100, "required": True},
        {"name": "slug", "type": "text", "max_length": 100, "unique": True},
        {"name": "views", "type": "integer", "default": 0, "indexed": True},
        {"name": "status", "type": "select", "values": ["draft", "live"], "default": "draft"},
        {
            "name": "meta",
            "type": "json",
            "json_schema": {
                "type": "object",
                "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
            },
        },
    ],
    "rules": {
        "list": "owner = @auth.id",
        "view": "owner = @auth.id",
        "create": "@auth.id != null",
        "update": "owner = @auth.id",
        "delete": "owner = @auth.id && status = 'draft'",
    },
}


@pytest.fixture
def db(records_db: Database) -> Database:
    return records_db


@pytest.fixture
async def posts(db: Database) -> Collection:
    async with db.transaction() as session:
        return await registry.create_collection(session, data=POSTS, actor=ADMIN.actor)


async def create(db: Database, posts: Collection, caller: Caller, **data: Any) -> dict[str, Any]:
    async with db.transaction() as session:
        return await service.create_record(session, collection=posts, data=data, caller=caller)


async def listing(db: Database, posts: Collection, caller: Caller, **kw: Any) -> query.Page:
    async with db.read_session() as session:
        return await query.list_records(session, collection=posts, caller=caller, **kw)


async def test_each_user_sees_only_their_own(db: Database, posts: Collection) -> None:
    a = await create(db, posts, ALICE, title="Alice's")
    b = await create(db, posts, BOB, title="Bob's")
    assert a["owner"] == "alice"
    assert a["views"] == 0
    assert a["status"] == "draft"
    page = await listing(db, posts, ALICE, count=True)
    assert [r["id"] for r in page.items] == [a["id"]]
    assert page.total == 1
    async with db.read_session() as session:
        assert (
            await query.get_record(session, collection=posts, record_id=b["id"], caller=ALICE)
            is None
        )
        assert (
            await query.get_record(session, collection=posts, record_id=b["id"], caller=BOB)
            is not None
        )
    everyone = await listing(db, posts, ADMIN, count=True)
    assert everyone.total == 2
    assert (await listing(db, posts, ANON, count=True)).total == 0


async def test_anonymous_cannot_create(db: Database, posts: Collection) -> None:
    with pytest.raises(RuleDenied):
        await create(db, posts, ANON, title="x")
    assert (await listing(db, posts, ADMIN, count=True)).total == 0


async def test_invalid_input_names_every_field_and_changes_nothing(
    db: Database, posts: Collection
) -> None:
    with pytest.raises(ValidationFailed) as info:
        await create(
            db,
            posts,
            ALICE,
            views="many",
            status="gone",
            ghost=1,
            id="x",
            meta={"tags": [1]},
            slug="s" * 101,
        )
    errors = {e["pointer"]: e["detail"] for e in info.value.extensions["errors"]}
    assert set(errors) == {
        "#/title",
        "#/views",
        "#/status",
        "#/ghost",
        "#/id",
        "#/meta/tags/0",
        "#/slug",
    }
    assert errors["#/title"] == "is required"
    assert errors["#/id"] == "is read-only"
    assert (await listing(db, posts, ADMIN, count=True)).total == 0


async def test_unique_field_conflict(db: Database, posts: Collection) -> None:
    await create(db, posts, ALICE, title="a", slug="same")
    with pytest.raises(Conflict) as info:
        await create(db, posts, BOB, title="b", slug="same")
    assert info.value.extensions["errors"][0]["pointer"] == "#/slug"


async def test_update_with_versions(db: Database, posts: Collection) -> None:
    record = await create(db, posts, ALICE, title="v1")
    async with db.transaction() as session:
        updated = await service.update_record(
            session,
            collection=posts,
            record_id=record["id"],
            data={"title": "v2"},
            mode="patch",
            caller=ALICE,
            if_match=1,
        )
    assert updated["version"] == 2
    assert updated["title"] == "v2"
    with pytest.raises(StaleRecord):
        async with db.transaction() as session:
            await service.update_record(
                session,
                collection=posts,
                record_id=record["id"],
                data={"title": "v3"},
                mode="patch",
                caller=ALICE,
                if_match=1,
            )
    with pytest.raises(RecordNotFound):  # bob may not even see it
        async with db.transaction() as session:
            await service.update_record(
                session,
                collection=posts,
                record_id=record["id"],
                data={"title": "hijack"},
                mode="patch",
                caller=BOB,
            )
    with pytest.raises(ValidationFailed):  # replace needs the required fields
        async with db.transaction() as session:
            await service.update_record(
                session,
                collection=posts,
                record_id=record["id"],
                data={"views": 3},
                mode="replace",
                caller=ALICE,
            )
    async with db.read_session() as session:
        stored = await query.get_record(
            session, collection=posts, record_id=record["id"], caller=ALICE
        )
    assert stored is not None
    assert (stored["title"], stored["version"]) == ("v2", 2)


async def test_delete_rule_and_if_match(db: Database, posts: Collection) -> None:
    record = await create(db, posts, ALICE, title="t", status="live")
    with pytest.raises(RuleDenied):
        async with db.transaction() as session:
            await service.delete_record(
                session, collection=posts, record_id=record["id"], caller=ALICE
            )
    draft = await create(db, posts, ALICE, title="d")
    with pytest.raises(StaleRecord):
        async with db.transaction() as session:
            await service.delete_record(
                session, collection=posts, record_id=draft["id"], caller=ALICE, if_match=7
            )
    async with db.transaction() as session:
        await service.delete_record(
            session, collection=posts, record_id=draft["id"], caller=ALICE, if_match=1
        )
    assert [r["id"] for r in (await listing(db, posts, ALICE)).items] == [record["id"]]


@pytest.mark.parametrize(
    "sort", [None, "views", "-views", "-status,views", "title,-id", "-created_at"]
)
async def test_cursor_pages_cover_everything_once(
    db: Database, posts: Collection, sort: str | None
) -> None:
    made = []
    for i in range(23):
        views = None if i % 7 == 0 else i % 5
        made.append(
            await create(
                db,
                posts,
                ALICE,
                title=f"t{i % 4}",
                views=views,
                status="live" if i % 2 else "draft",
            )
        )
    full = await listing(db, posts, ALICE, sort=sort, limit=200)
    seen: list[str] = []
    cursor = None
    while True:
        page = await listing(db, posts, ALICE, sort=sort, limit=4, cursor=cursor)
        seen += [r["id"] for r in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == [r["id"] for r in full.items]
    assert sorted(seen) == sorted(r["id"] for r in made)


async def test_filters_fields_and_errors(db: Database, posts: Collection) -> None:
    await create(db, posts, ALICE, title="hello world", views=5)
    await create(db, posts, ALICE, title="other", views=1)
    page = await listing(db, posts, ALICE, filter="title ~ 'WORLD' && views >= 5", fields=["title"])
    assert page.items == [{"id": page.items[0]["id"], "title": "hello world"}]
    with pytest.raises(InvalidFilter) as info:
        await listing(db, posts, ALICE, filter="views >> 1")
    assert info.value.extensions["position"] == 7
    with pytest.raises(InvalidFilter):
        await listing(db, posts, ALICE, sort="meta")
    with pytest.raises(InvalidFilter):
        await listing(db, posts, ALICE, cursor="garbage!")
    with pytest.raises(InvalidFilter):
        await listing(db, posts, ALICE, fields=["nope"])


async def test_collection_lifecycle(db: Database, posts: Collection) -> None:
    with pytest.raises(CollectionExists):
        async with db.transaction() as session:
            await registry.create_collection(session, data=POSTS, actor=ADMIN.actor)
    await create(db, posts, ALICE, title="keep")
    add = SchemaChange("add_field", field=FieldSpec(name="score", type="number"))
    async with db.transaction() as session:
        changed = await registry.change_schema(
            session, name="posts", change=add, confirm=False, actor=ADMIN.actor
        )
    assert changed.version == 2
    assert [r["score"] for r in (await listing(db, changed, ALICE)).items] == [None]
    drop = SchemaChange("drop_field", field=FieldSpec(name="score", type="number"))
    with pytest.raises(ConfirmationRequired):
        async with db.transaction() as session:
            await registry.change_schema(
                session, name="posts", change=drop, confirm=False, actor=ADMIN.actor
            )
    async with db.transaction() as session:
        await registry.change_schema(
            session, name="posts", change=drop, confirm=True, actor=ADMIN.actor
        )
        log = await registry.history(session, name="posts")
    assert [entry.change["kind"] for entry in log] == ["add_field", "drop_field"]
    assert log[1].inverse["kind"] == "add_field"
    with pytest.raises(ConfirmationRequired):
        async with db.transaction() as session:
            await registry.delete_collection(
                session, name="posts", confirm=False, actor=ADMIN.actor
            )
    async with db.transaction() as session:
        await registry.delete_collection(session, name="posts", confirm=True, actor=ADMIN.actor)
        assert await registry.list_collections(session) == []


async def test_collection_cache_follows_versions(db: Database, posts: Collection) -> None:
    from garrison.records.cache import CollectionCache

    cache = CollectionCache(ttl=0)  # every look-up re-checks the version
    async with db.read_session() as session:
        first = await cache.get(session, "posts")
        again = await cache.get(session, "posts")
    assert again is first  # same version: the same Table object, compiled SQL stays cached
    add = SchemaChange("add_field", field=FieldSpec(name="extra", type="text"))
    async with db.transaction() as session:  # as another worker would
        await registry.change_schema(
            session, name="posts", change=add, confirm=False, actor=ADMIN.actor
        )
    async with db.read_session() as session:
        fresh = await cache.get(session, "posts")
    assert fresh.version == first.version + 1
    assert "extra" in fresh.table.c


def test_dates_and_datetimes_are_validated() -> None:
    from datetime import UTC, date, datetime

    from garrison.records.spec import CollectionSpec
    from garrison.records.validation import validate

    spec = CollectionSpec.model_validate(
        {
            "name": "events",
            "fields": [{"name": "day", "type": "date"}, {"name": "at", "type": "datetime"}],
        }
    )
    values, errors = validate(
        spec, {"day": "2026-01-31", "at": "2026-01-31T12:00:00+02:00"}, "create"
    )
    assert errors == []
    assert values == {"day": date(2026, 1, 31), "at": datetime(2026, 1, 31, 10, 0, tzinfo=UTC)}
    _, errors = validate(spec, {"day": "31/01/2026", "at": "noon"}, "create")
    assert {e["pointer"] for e in errors} == {"#/day", "#/at"}
