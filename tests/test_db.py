from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db import Database, is_transient, transact, with_retry
from tests.conftest import make_settings


async def test_sqlite_pragmas(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA busy_timeout"))).scalar() == 5000
            assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL
    finally:
        await db.dispose()


async def test_sqlite_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            await session.execute(text("INSERT INTO t (id, v) VALUES (1, 'committed')"))
        async with db.transaction() as writer:
            await writer.execute(text("UPDATE t SET v = 'uncommitted' WHERE id = 1"))
            async with db.read_session() as reader:
                value = (await reader.execute(text("SELECT v FROM t WHERE id = 1"))).scalar()
            assert value == "committed"
    finally:
        await db.dispose()


async def test_sqlite_locked_is_transient(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, db={"sqlite_busy_timeout_ms": 0})
    db = Database(settings.db_url, settings.db)
    other = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        async with db.transaction() as holder:
            await holder.execute(text("INSERT INTO t (id) VALUES (1)"))
            with pytest.raises(DBAPIError) as info:
                async with other.transaction() as blocked:
                    await blocked.execute(text("INSERT INTO t (id) VALUES (2)"))
            assert is_transient(info.value)
    finally:
        await db.dispose()
        await other.dispose()


async def test_sqlite_writers_of_a_process_take_turns_in_arrival_order(tmp_path: Path) -> None:
    """Writers of one process queue on a first-come lock: each runs once the one before it
    committed, in the order they came; one that waits past the busy timeout gets SQLite's
    own "database is locked" (transient, so retried), and the queue goes on."""
    settings = make_settings(tmp_path)
    db = Database(settings.db_url, settings.db)
    order: list[int] = []
    try:
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY)"))
        first_holds, release = asyncio.Event(), asyncio.Event()

        async def write(n: int) -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO t (id) VALUES (:n)"), {"n": n})
                order.append(n)  # this writer holds SQLite's write lock now
                if n == 0:
                    first_holds.set()
                    await release.wait()

        first = asyncio.create_task(write(0))
        await first_holds.wait()
        # Tasks start in the order they were made, and each goes straight to the lock.
        waiting = [asyncio.create_task(write(n)) for n in range(1, 6)]
        release.set()
        await asyncio.gather(first, *waiting)
        assert order == [0, 1, 2, 3, 4, 5]

        impatient = Database(
            settings.db_url, settings.db.model_copy(update={"sqlite_busy_timeout_ms": 0})
        )
        try:
            async with impatient.transaction():
                with pytest.raises(DBAPIError) as info:
                    async with impatient.transaction():
                        pass
            assert "database is locked" in str(info.value)
            assert is_transient(info.value)
        finally:
            await impatient.dispose()
    finally:
        await db.dispose()


async def test_write_transaction_rolls_back_on_error(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS rollback_probe"))
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE rollback_probe (id INTEGER PRIMARY KEY)"))

        async def insert_then_fail() -> None:
            async with db.transaction() as session:
                await session.execute(text("INSERT INTO rollback_probe (id) VALUES (1)"))
                raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            await insert_then_fail()
        async with db.read_session() as session:
            count = (await session.execute(text("SELECT COUNT(*) FROM rollback_probe"))).scalar()
        assert count == 0
    finally:
        await db.dispose()


async def test_non_transient_errors_are_not_retried(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url)
    db = Database(settings.db_url, settings.db)
    attempts = 0
    try:
        async with db.transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS dup_probe"))
        async with db.transaction() as session:
            await session.execute(text("CREATE TABLE dup_probe (id INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO dup_probe (id) VALUES (1)"))

        async def insert_duplicate(session: AsyncSession) -> None:
            nonlocal attempts
            attempts += 1
            await session.execute(text("INSERT INTO dup_probe (id) VALUES (1)"))

        with pytest.raises(IntegrityError):
            await transact(db, insert_duplicate)
        assert attempts == 1
    finally:
        await db.dispose()


async def test_deadlock_is_retried_and_both_commit(mysql_url: str, tmp_path: Path) -> None:
    """Two transactions lock two rows in opposite order: InnoDB kills one with 1213, the
    retry helper runs it again, and both increments land."""
    settings = make_settings(tmp_path, database_url=mysql_url)
    db = Database(settings.db_url, settings.db)
    try:
        async with db.transaction() as session:
            await session.execute(text("DROP TABLE IF EXISTS deadlock_probe"))
            await session.execute(
                text(
                    "CREATE TABLE deadlock_probe (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB"
                )
            )
            await session.execute(text("INSERT INTO deadlock_probe VALUES (1, 0), (2, 0)"))

        first_locked = asyncio.Event()
        second_locked = asyncio.Event()
        attempts = {"a": 0, "b": 0}

        def worker(name: str, first: int, second: int, mine: asyncio.Event, theirs: asyncio.Event):  # type: ignore[no-untyped-def]
            async def work(session: AsyncSession) -> None:
                attempts[name] += 1
                await session.execute(
                    text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": first}
                )
                mine.set()
                await theirs.wait()
                await session.execute(
                    text("UPDATE deadlock_probe SET n = n + 1 WHERE id = :id"), {"id": second}
                )

            return work

        await asyncio.wait_for(
            asyncio.gather(
                transact(db, worker("a", 1, 2, first_locked, second_locked)),
                transact(db, worker("b", 2, 1, second_locked, first_locked)),
            ),
            timeout=60,
        )
        assert sorted(attempts.values()) == [1, 2]  # exactly one victim, retried once
        async with db.read_session() as session:
            rows = (
                await session.execute(text("SELECT id, n FROM deadlock_probe ORDER BY id"))
            ).all()
        assert [tuple(r) for r in rows] == [(1, 2), (2, 2)]
    finally:
        await db.dispose()


async def test_with_retry_gives_up_after_attempts() -> None:
    calls = 0

    async def always_locked() -> None:
        nonlocal calls
        calls += 1
        raise DBAPIError(
            "stmt", {}, sqlite3.OperationalError("database is locked"), connection_invalidated=False
        )

    with pytest.raises(DBAPIError):
        await with_retry(always_locked, attempts=3, base_delay=0.0)
    assert calls == 3
