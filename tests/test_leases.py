"""Named leases (``garrison.ops.leases``) and the backup schedule that runs under one: one
holder across every host, renewal, expiry and take-over, release, and a holder that loses
its lease stops its jobs. SQLite and MariaDB."""

from __future__ import annotations

import asyncio
import inspect
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from garrison.db.engine import Database
from garrison.db.types import utcnow
from garrison.log import configure_logging
from garrison.ops import leases
from garrison.ops.backup.schedule import LEASE, run_backup_jobs
from garrison.ops.models import Lease
from garrison.settings import Settings
from tests.conftest import make_settings, migrated

TTL = timedelta(seconds=60)


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Database]:
    await migrated(settings)
    database = Database(settings.db_url, settings.db)
    yield database
    await database.dispose()


async def test_one_holder_until_it_expires_or_is_released(db: Database) -> None:
    name = f"test.{uuid.uuid4().hex[:8]}"
    now = utcnow()

    def at(seconds: int) -> datetime:
        return now + timedelta(seconds=seconds)

    assert await leases.acquire(db, name, "host-a", ttl=TTL, now=now)
    assert not await leases.acquire(db, name, "host-b", ttl=TTL, now=at(59))
    assert await leases.holder_of(db, name, now=at(30)) == "host-a"
    # Renewed at 30 s: it now lasts until 90 s.
    assert await leases.acquire(db, name, "host-a", ttl=TTL, now=at(30))
    assert not await leases.acquire(db, name, "host-b", ttl=TTL, now=at(89))
    # Expired: taken over, and the old holder cannot renew it.
    assert await leases.acquire(db, name, "host-b", ttl=TTL, now=at(91))
    assert not await leases.acquire(db, name, "host-a", ttl=TTL, now=at(92))
    # Only the holder's release frees it.
    await leases.release(db, name, "host-a")
    assert await leases.holder_of(db, name, now=at(92)) == "host-b"
    await leases.release(db, name, "host-b")
    assert await leases.holder_of(db, name, now=at(92)) is None
    assert await leases.acquire(db, name, "host-a", ttl=TTL)


async def test_many_asking_at_once_get_one_holder(settings: Settings, db: Database) -> None:
    """Eight processes (each its own engine) ask for a new lease at the same moment."""
    name = f"test.{uuid.uuid4().hex[:8]}"
    others = [Database(settings.db_url, settings.db) for _ in range(8)]
    try:
        answers = await asyncio.gather(
            *(leases.acquire(each, name, f"host-{i}", ttl=TTL) for i, each in enumerate(others))
        )
    finally:
        for each in others:
            await each.dispose()
    assert sorted(answers) == [False] * 7 + [True]
    assert await leases.holder_of(db, name) == f"host-{answers.index(True)}"


async def _until(check: Callable[[], object], what: str) -> None:
    """Wait for ``check()`` (a value or an awaitable) to be truthy."""
    try:
        async with asyncio.timeout(60):
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(what) from None


async def test_the_backup_schedule_runs_on_one_host_and_moves_when_it_stops(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """Two hosts (two data directories, one database): one runs the backup jobs; when it
    stops, it gives the lease up and the other takes over."""
    host_a = make_settings(tmp_path / "a", database_url=fresh_database_url)
    host_b = make_settings(tmp_path / "b", database_url=fresh_database_url)
    await migrated(host_a)
    db_a = Database(host_a.db_url, host_a.db)
    db_b = Database(host_b.db_url, host_b.db)
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    quick = {"ask_every": 0.05, "renew_every": 0.05}
    try:
        first = asyncio.create_task(run_backup_jobs(host_a, stop_a, db_a, **quick))
        await _until(lambda: leases.holder_of(db_a, LEASE), "host a took no lease")
        holder_a = await leases.holder_of(db_a, LEASE)
        second = asyncio.create_task(run_backup_jobs(host_b, stop_b, db_b, **quick))
        stop_a.set()
        await first
        holder_b = None
        async with asyncio.timeout(60):
            while holder_b in (None, holder_a):
                holder_b = await leases.holder_of(db_b, LEASE)
                await asyncio.sleep(0.02)
        assert holder_b is not None
        assert holder_b != holder_a
        stop_b.set()
        await second
        assert await leases.holder_of(db_b, LEASE) is None  # released on a clean stop
    finally:
        stop_a.set()
        stop_b.set()
        await db_a.dispose()
        await db_b.dispose()


async def test_a_holder_that_loses_its_lease_stops_its_jobs(
    tmp_path: Path, fresh_database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    stream = io.StringIO()
    settings.log.format = "json"
    configure_logging(settings, stream=stream)
    await migrated(settings)
    db = Database(settings.db_url, settings.db)
    stop = asyncio.Event()
    try:
        task = asyncio.create_task(
            run_backup_jobs(settings, stop, db, ask_every=3600, renew_every=0.05)
        )
        await _until(lambda: leases.holder_of(db, LEASE), "no lease taken")
        # Another host has it now (as after this one was paused past the lease's end).
        async with db.transaction() as session:
            await session.execute(
                update(Lease)
                .where(Lease.name == LEASE)
                .values(holder="another-host", expires_at=utcnow() + timedelta(hours=1))
            )
        await _until(lambda: "backup.schedule.lease_lost" in stream.getvalue(), "not noticed")
        assert await leases.holder_of(db, LEASE) == "another-host"  # its release took nothing
        assert not task.done()  # it asks again later
        stop.set()
        await task
    finally:
        stop.set()
        await db.dispose()
