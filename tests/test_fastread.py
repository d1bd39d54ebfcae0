"""The hot-path reader on both backends: the same rows and types as through SQLAlchemy, a
compiled statement reused with new values (never the first call's), IN lists of any
width, and driver errors surfacing as SQLAlchemy errors the callers already handle."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Select, literal_column, select, text
from sqlalchemy.exc import DBAPIError

from garrison.db import Database
from garrison.db.fastread import FastReader, rows_of
from garrison.db.retry import is_transient
from garrison.events import Actor
from garrison.records import query, registry, service
from garrison.records.cache import CollectionCache
from garrison.records.query import Caller
from garrison.records.registry import Collection
from tests.conftest import make_settings

ADMIN = Caller(actor=Actor("user", "admin-1"), id="admin-1", role="admin", admin=True)
ALICE = Caller(actor=Actor("user", "alice"), id="alice", role="user")
BOB = Caller(actor=Actor("user", "bob"), id="bob", role="user")
THINGS: dict[str, Any] = {
    "name": "things",
    "fields": [
        {"name": "title", "type": "text", "max_length": 50},
        {"name": "n", "type": "integer", "indexed": True},
        {"name": "ratio", "type": "number"},
        {"name": "ok", "type": "boolean"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "datetime"},
        {"name": "meta", "type": "json"},
        {"name": "kind", "type": "select", "values": ["a", "b"]},
    ],
    "rules": {"list": "owner = @auth.id", "view": "owner = @auth.id", "create": ""},
}


@pytest.fixture
def db(records_db: Database) -> Database:
    return records_db


@pytest.fixture
async def things(db: Database) -> Collection:
    async with db.transaction() as session:
        collection = await registry.create_collection(session, data=THINGS, actor=ADMIN.actor)
        for i in range(6):
            await service.create_record(
                session,
                collection=collection,
                caller=ALICE if i % 2 == 0 else BOB,
                data={
                    "title": f"thing {i}",
                    "n": i,
                    "ratio": i / 4,
                    "ok": i % 3 == 0,
                    "day": f"2026-01-0{i + 1}",
                    "at": f"2026-01-0{i + 1}T10:00:00.25Z" if i else None,
                    "meta": {"i": i, "tags": ["x"]} if i != 2 else None,
                    "kind": "a" if i < 3 else "b",
                },
            )
    return collection


async def test_rows_and_types_match_sqlalchemy(db: Database, things: Collection) -> None:
    table = things.table
    statement = select(table).order_by(table.c.n)
    async with db.read_session() as session:
        expected = await rows_of(session, statement)
    got = await db.fast_read.all(statement)
    assert got == expected
    assert len(got) == 6
    first, second = got[0], got[1]
    assert first["ok"] is True
    assert second["ok"] is False
    assert first["at"] is None
    assert second["at"].utcoffset().total_seconds() == 0
    assert first["meta"] == {"i": 0, "tags": ["x"]}
    assert got[2]["meta"] is None
    assert second["day"].isoformat() == "2026-01-02"
    assert first["created_at"].tzinfo is not None


async def test_a_cached_statement_takes_each_calls_values(db: Database, things: Collection) -> None:
    table = things.table
    for n in (3, 1, 4, 0, 5):
        rows = await db.fast_read.all(select(table.c.n, table.c.title).where(table.c.n == n))
        assert rows == [{"n": n, "title": f"thing {n}"}]
    # Same shape, values in other positions (limit and two comparisons).
    for low, high, limit in ((0, 5, 2), (2, 4, 10), (4, 5, 1)):
        statement = (
            select(table.c.n)
            .where(table.c.n >= low, table.c.n <= high)
            .order_by(table.c.n)
            .limit(limit)
        )
        rows = await db.fast_read.all(statement)
        assert [r["n"] for r in rows] == list(range(low, high + 1))[:limit]


async def test_in_lists_of_any_width(db: Database, things: Collection) -> None:
    table = things.table
    for values in ([1], [0, 2, 4], [5, 3], list(range(50))):
        rows = await db.fast_read.all(select(table.c.n).where(table.c.n.in_(values)))
        assert sorted(r["n"] for r in rows) == sorted(v for v in values if v < 6)


async def test_rules_with_each_callers_values(db: Database, things: Collection) -> None:
    """The rule's @auth.id is a bound value: a statement compiled for Alice must not answer
    Bob with Alice's rows."""
    for caller, owner in ((ALICE, "alice"), (BOB, "bob"), (ALICE, "alice")):
        page = await query.list_records(db.fast_read, collection=things, caller=caller, count=True)
        assert {item["owner"] for item in page.items} == {owner}
        assert page.total == 3


async def test_driver_errors_are_sqlalchemy_errors(db: Database, things: Collection) -> None:
    table = things.table
    await db.fast_read.all(select(table.c.n))
    async with db.transaction() as session:
        await session.execute(text("DROP TABLE c_things"))
    with pytest.raises(DBAPIError) as caught:
        await db.fast_read.all(select(table.c.n))
    message = str(caught.value.orig).lower()
    assert "no such table" in message or "doesn't exist" in message
    # The reader still works afterwards.
    assert await db.fast_read.all(select(literal_column("1").label("one"))) == [{"one": 1}]


async def test_a_killed_connection_is_replaced(db: Database, things: Collection) -> None:
    """The server closing a pooled connection (KILL, wait_timeout, a restart): the pool
    drops the dead connection at checkout or, if the close is still in flight, the read
    fails with a transient error (which the records router retries) and the next works."""
    if db.is_sqlite:
        pytest.skip("MariaDB connections only")
    connection_id: Select[Any] = select(literal_column("CONNECTION_ID()").label("id"))
    first = (await db.fast_read.all(connection_id))[0]["id"]
    async with db.transaction() as session:
        await session.execute(text(f"KILL {int(first)}"))
    statement = select(things.table.c.n).where(things.table.c.n == 1)
    failure: DBAPIError | None = None
    try:
        rows = await db.fast_read.all(statement)
    except DBAPIError as exc:
        failure = exc
        rows = await db.fast_read.all(statement)
    assert failure is None or is_transient(failure)
    assert rows == [{"n": 1}]
    assert (await db.fast_read.all(connection_id))[0]["id"] != first


async def test_dispose_then_use_again(db: Database, things: Collection) -> None:
    reader = FastReader(db.read_engine, db.settings)
    try:
        assert len(await reader.all(select(things.table.c.id))) == 6
        await reader.dispose()
        assert len(await reader.all(select(things.table.c.id))) == 6
    finally:
        await reader.dispose()


async def test_get_by_shape_answers_each_caller_and_id(db: Database, things: Collection) -> None:
    page = await query.list_records(db.fast_read, collection=things, caller=ADMIN)
    by_owner = {item["owner"]: item["id"] for item in page.items}
    for caller in (ALICE, BOB, ALICE):
        for owner, record_id in by_owner.items():
            row = await query.get_record(
                db.fast_read, collection=things, record_id=record_id, caller=caller
            )
            if owner == caller.id:
                assert row is not None
                assert row["id"] == record_id
            else:
                assert row is None  # the rule hides it: the same SQL shape, other values


def test_now_is_never_part_of_a_reused_statement(things: Collection) -> None:
    assert query.read_shape(things, "list", ALICE, "n > 1") is not None
    assert query.read_shape(things, "list", ALICE, "at < @now") is None
    alice, bob = (query.read_shape(things, "list", c, "n > 1") for c in (ALICE, BOB))
    assert alice != bob


async def test_a_collection_made_again_under_its_name_is_not_the_old_one(
    db: Database, things: Collection
) -> None:
    """Dropped and created again, a collection starts at version 1 again: the cache and the
    reused statements must still tell the two apart (the old rule must not apply)."""
    cache = CollectionCache(ttl=0)
    before = await cache.get(db.fast_read, "things")
    assert len((await query.list_records(db.fast_read, collection=before, caller=BOB)).items) == 3
    async with db.transaction() as session:
        await registry.delete_collection(session, name="things", confirm=True, actor=ADMIN.actor)
    public = THINGS | {"rules": {"list": "", "view": "", "create": ""}}
    async with db.transaction() as session:
        await registry.create_collection(session, data=public, actor=ADMIN.actor)
        made = await registry.get_collection(session, name="things")
        for i in range(4):
            await service.create_record(
                session, collection=made, caller=ALICE, data={"title": f"again {i}", "n": i}
            )
    after = await cache.get(db.fast_read, "things")
    assert after.version == before.version
    assert after.stamp != before.stamp
    page = await query.list_records(db.fast_read, collection=after, caller=BOB)
    assert sorted(item["title"] for item in page.items) == [f"again {i}" for i in range(4)]


async def test_execute_in_writes_inside_the_sessions_transaction(
    db: Database, things: Collection
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import insert
    from sqlalchemy.exc import IntegrityError

    from garrison.db.fastread import execute_in

    table = things.table
    statement = insert(table)
    moment = datetime(2026, 5, 1, 12, 30, 15, 250, tzinfo=UTC)

    def row(record_id: str, n: int) -> dict[str, Any]:
        return {
            "id": record_id,
            "created_at": moment,
            "updated_at": moment,
            "owner": "alice",
            "version": 1,
            "n": n,
            "ok": True,
            "at": moment,
            "meta": {"via": "driver"},
        }

    async with db.transaction() as session:
        await execute_in(session, statement, row("raw-1", 101))

    async def write_then_fail() -> None:
        async with db.transaction() as session:
            await execute_in(session, statement, row("raw-2", 102))
            raise RuntimeError

    async def write_a_duplicate() -> None:
        async with db.transaction() as session:
            await execute_in(session, statement, row("raw-1", 103))

    with pytest.raises(RuntimeError):  # rolled back with its transaction
        await write_then_fail()
    with pytest.raises(IntegrityError):  # a driver error, as SQLAlchemy's own
        await write_a_duplicate()

    # Stored exactly as SQLAlchemy would store it: comparisons and types read back right.
    query = select(table).where(table.c.n > 100, table.c.at == moment, table.c.ok.is_(True))
    async with db.read_session() as session:
        rows = await rows_of(session, query)
    assert [(r["id"], r["n"], r["at"], r["meta"]) for r in rows] == [
        ("raw-1", 101, moment, {"via": "driver"})
    ]


async def test_no_free_connection_within_the_pool_timeout_is_a_pool_timeout(
    database_url: str, tmp_path: Path, things: Collection
) -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if database_url.startswith("sqlite"):
        pytest.skip("the driver pool is MariaDB's")
    settings = make_settings(
        tmp_path, database_url=database_url, db={"pool_size": 1, "max_overflow": 0}
    )
    settings.db.pool_timeout = 0.2
    database = Database(settings.db_url, settings.db)
    reader = database.fast_read
    try:
        statement = select(things.table.c.n).where(things.table.c.n == 2)
        assert await reader.all(statement) == [{"n": 2}]
        pool = reader._pool
        held = await pool.acquire()  # the pool's only connection
        try:
            with pytest.raises(PoolTimeout):
                await reader.all(statement)
        finally:
            pool.release(held)
        assert await reader.all(statement) == [{"n": 2}]
    finally:
        await database.dispose()
