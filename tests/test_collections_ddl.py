"""Collection definitions become real tables, and schema changes apply and revert, on both
SQLite and MariaDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Connection, delete, insert, inspect, select
from sqlalchemy.exc import IntegrityError

from garrison.db import Database
from garrison.records.ddl import SchemaChange, apply_change, build_table, create_table, drop_table
from garrison.records.spec import CollectionSpec, FieldSpec, IndexSpec
from tests.conftest import make_settings

AUTHORS = CollectionSpec.model_validate(
    {
        "name": "authors",
        "fields": [{"name": "name", "type": "text", "required": True, "unique": True}],
    }
)
POSTS = CollectionSpec.model_validate(
    {
        "name": "posts",
        "fields": [
            {"name": "title", "type": "text", "max_length": 200, "indexed": True},
            {"name": "body", "type": "text", "max_length": 20000},
            {"name": "views", "type": "integer"},
            {"name": "score", "type": "number"},
            {"name": "published", "type": "boolean"},
            {"name": "day", "type": "date"},
            {"name": "at", "type": "datetime"},
            {"name": "contact", "type": "email"},
            {"name": "link", "type": "url"},
            {"name": "meta", "type": "json"},
            {"name": "status", "type": "select", "values": ["draft", "live"]},
            {"name": "author", "type": "relation", "collection": "authors", "on_delete": "cascade"},
        ],
        "indexes": [{"fields": ["status", "views"]}],
        "rules": {"list": "owner = @auth.id", "view": "", "create": "@auth.id != null"},
    }
)


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def row(id_: str, **values: Any) -> dict[str, Any]:
    return {"id": id_, "created_at": now(), "updated_at": now(), "version": 1, **values}


@pytest.fixture
async def db(database_url: str, tmp_path: Path) -> AsyncIterator[Database]:
    settings = make_settings(tmp_path, database_url=database_url)
    database = Database(settings.db_url, settings.db)

    def reset(conn: Connection) -> None:
        names = set(inspect(conn).get_table_names())
        for spec in (POSTS, AUTHORS):
            if f"c_{spec.name}" in names:
                drop_table(conn, spec)

    async with database.transaction() as session:
        await (await session.connection()).run_sync(reset)
    yield database
    async with database.transaction() as session:
        await (await session.connection()).run_sync(reset)
    await database.dispose()


async def run(db: Database, fn: Any, *args: Any) -> Any:
    async with db.transaction() as session:
        conn = await session.connection()
        return await conn.run_sync(fn, *args)


def describe(conn: Connection, table: str) -> dict[str, Any]:
    insp = inspect(conn)
    return {
        "columns": {c["name"] for c in insp.get_columns(table)},
        "indexes": {
            i["name"]: (tuple(i["column_names"]), bool(i["unique"]))
            for i in insp.get_indexes(table)
        },
        "fks": {
            fk["constrained_columns"][0]: fk["referred_table"]
            for fk in insp.get_foreign_keys(table)
        },
    }


# --- definitions ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"name": "Bad-Name"}, "pattern"),
        ({"name": "users"}, "reserved"),
        ({"name": "x", "fields": [{"name": "id", "type": "text"}]}, "system field"),
        ({"name": "x", "fields": [{"name": "s", "type": "select"}]}, "needs 'values'"),
        ({"name": "x", "fields": [{"name": "r", "type": "relation"}]}, "needs 'collection'"),
        (
            {
                "name": "x",
                "fields": [{"name": "a", "type": "text"}, {"name": "a", "type": "integer"}],
            },
            "duplicate",
        ),
        (
            {
                "name": "x",
                "fields": [{"name": "b", "type": "text", "max_length": 5000, "unique": True}],
            },
            "cannot be indexed",
        ),
        (
            {
                "name": "x",
                "fields": [{"name": "j", "type": "json", "json_schema": {"type": "nope"}}],
            },
            "JSON Schema",
        ),
        (
            {"name": "x", "fields": [{"name": "n", "type": "integer", "max_length": 3}]},
            "text fields only",
        ),
        ({"name": "x", "rules": {"list": "ghost = 1"}}, "unknown fields: ghost"),
        ({"name": "x", "rules": {"view": "a = "}}, "does not parse"),
        ({"name": "x", "indexes": [{"fields": ["nope"]}]}, "unknown fields"),
        ({"name": "x", "fields": [{"name": "a", "type": "text", "colour": "red"}]}, "Extra inputs"),
    ],
)
def test_invalid_definitions_are_refused(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        CollectionSpec.model_validate(data)
    assert fragment in str(info.value)


# --- tables --------------------------------------------------------------------------------


async def test_collection_is_a_real_typed_table(db: Database) -> None:
    await run(db, create_table, AUTHORS)
    await run(db, create_table, POSTS)
    shape = await run(db, describe, "c_posts")
    assert shape["columns"] == {
        "id",
        "created_at",
        "updated_at",
        "owner",
        "version",
        "title",
        "body",
        "views",
        "score",
        "published",
        "day",
        "at",
        "contact",
        "link",
        "meta",
        "status",
        "author",
    }
    assert shape["indexes"]["ix_c_posts_title"] == (("title",), False)
    assert shape["indexes"]["ix_c_posts_status_views"] == (("status", "views"), False)
    assert shape["indexes"]["ix_c_posts_author"] == (("author",), False)
    assert shape["fks"] == {"author": "c_authors"}
    authors = await run(db, describe, "c_authors")
    assert authors["indexes"]["uq_c_authors_name"] == (("name",), True)


async def test_unique_text_is_case_and_space_exact(db: Database) -> None:
    await run(db, create_table, AUTHORS)
    table = build_table(AUTHORS)
    async with db.transaction() as session:
        await session.execute(
            insert(table), [row("a1", name="Ada"), row("a2", name="ada"), row("a3", name="Ada ")]
        )
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(table), [row("a4", name="Ada")])


async def test_relation_on_delete_cascade(db: Database) -> None:
    await run(db, create_table, AUTHORS)
    await run(db, create_table, POSTS)
    authors, posts = build_table(AUTHORS), build_table(POSTS)
    async with db.transaction() as session:
        await session.execute(insert(authors), [row("a1", name="Ada")])
        await session.execute(insert(posts), [row("p1", title="t", author="a1")])
    with pytest.raises(IntegrityError):
        async with db.transaction() as session:
            await session.execute(insert(posts), [row("p2", title="t", author="missing")])
    async with db.transaction() as session:
        await session.execute(delete(authors).where(authors.c.id == "a1"))
    async with db.read_session() as session:
        assert (await session.execute(select(posts.c.id))).all() == []


# --- schema changes --------------------------------------------------------------------------


CHANGES = [
    SchemaChange("add_field", field=FieldSpec(name="rating", type="integer", indexed=True)),
    SchemaChange(
        "add_field",
        field=FieldSpec(name="editor", type="relation", collection="authors", on_delete="set_null"),
    ),
    SchemaChange("rename_field", old="title", new="headline"),
    SchemaChange("drop_field", field=POSTS.field("author")),
    SchemaChange("drop_field", field=POSTS.field("title")),
    SchemaChange("add_index", index=IndexSpec(fields=["published", "day"], unique=False)),
    SchemaChange("drop_index", index=IndexSpec(fields=["status", "views"])),
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: f"{c.kind}")
async def test_change_applies_and_reverts(db: Database, change: SchemaChange) -> None:
    await run(db, create_table, AUTHORS)
    await run(db, create_table, POSTS)
    posts = build_table(POSTS)
    async with db.transaction() as session:
        await session.execute(insert(posts), [row("p1", title="kept", views=7, status="draft")])
    original = await run(db, describe, "c_posts")

    after_spec = change.apply_to_spec(POSTS)
    await run(db, apply_change, POSTS, change)
    changed = await run(db, describe, "c_posts")
    expected = await _shape_of(db, after_spec)
    assert changed == expected

    await run(db, apply_change, after_spec, change.inverse())
    assert await run(db, describe, "c_posts") == original
    async with db.read_session() as session:
        ids = (await session.execute(select(posts.c.id))).scalars().all()
    assert ids == ["p1"]  # the row survived every change


async def _shape_of(db: Database, spec: CollectionSpec) -> dict[str, Any]:
    """What a fresh table for ``spec`` looks like (built under a scratch name)."""
    scratch = spec.model_copy(update={"name": "scratch_" + spec.name})
    table = build_table(scratch)

    def create_describe_drop(conn: Connection) -> dict[str, Any]:
        table.create(conn)
        try:
            shape = describe(conn, table.name)
        finally:
            table.drop(conn)
        rename = {k.replace("c_scratch_posts", "c_posts"): v for k, v in shape["indexes"].items()}
        return {**shape, "indexes": rename}

    result: dict[str, Any] = await run(db, create_describe_drop)
    return result


async def test_rename_keeps_data(db: Database) -> None:
    await run(db, create_table, AUTHORS)
    await run(db, create_table, POSTS)
    async with db.transaction() as session:
        await session.execute(insert(build_table(POSTS)), [row("p1", title="hello")])
    change = SchemaChange("rename_field", old="title", new="headline")
    await run(db, apply_change, POSTS, change)
    renamed = build_table(change.apply_to_spec(POSTS))
    async with db.read_session() as session:
        assert (await session.execute(select(renamed.c.headline))).scalar() == "hello"


def test_dropping_a_field_an_index_uses_is_refused() -> None:
    with pytest.raises(ValidationError, match="index on unknown fields: views"):
        SchemaChange("drop_field", field=POSTS.field("views")).apply_to_spec(POSTS)


def test_changes_round_trip_as_json() -> None:
    for change in CHANGES:
        assert SchemaChange.from_json(change.to_json()) == change
        assert change.inverse().inverse() == change
    assert [c.destructive for c in CHANGES] == [False, False, False, True, True, False, False]
