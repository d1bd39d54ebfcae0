"""The worker and audit commands as real processes: a worker killed with SIGKILL mid-batch
loses nothing, ``garrison audit verify`` catches a row edited in the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text, update

from garrison import events
from garrison.audit.models import AuditEntry
from garrison.db import Database
from garrison.events import Actor, Event
from garrison.settings import Settings
from tests.conftest import make_settings, migrated
from tests.helpers import garrison, garrison_process

pytestmark = pytest.mark.slow


@pytest.fixture
async def worker_settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrated(settings)
    return settings


def worker_env(settings: Settings) -> dict[str, str]:
    return {
        "GARRISON_DATABASE_URL": settings.db_url,
        "GARRISON_DATA_DIR": str(settings.data_dir),
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_WORKER__HANDLER_MODULES": '["tests.outbox_handlers"]',
        "GARRISON_WORKER__BATCH_SIZE": "20",
        "GARRISON_WORKER__LEASE_SECONDS": "3",
        "GARRISON_WORKER__POLL_INTERVAL": "0.1",
    }


async def prepare(
    settings: Settings, count: int, hang_at: int | None = None, targets: int = 8
) -> list[str]:
    key = "INTEGER PRIMARY KEY" if settings.is_sqlite else "INTEGER PRIMARY KEY AUTO_INCREMENT"
    db = Database(settings.db_url, settings.db)
    ids: list[str] = []
    try:
        async with db.transaction() as session:
            await session.execute(
                text(
                    f"CREATE TABLE test_deliveries (id {key}, "
                    "event_id VARCHAR(36) NOT NULL, pid INTEGER NOT NULL)"
                )
            )
        async with db.transaction() as session:
            for n in range(count):
                event = Event(
                    action="test.delivery",
                    actor=Actor.system(),
                    target_type="thing",
                    target_id=f"t{n % targets}",
                    data={"n": n, "hang": n == hang_at},
                )
                await events.emit(session, event)
                ids.append(event.id)
    finally:
        await db.dispose()
    return ids


async def deliveries(settings: Settings) -> list[tuple[str, int]]:
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            rows = await session.execute(
                text("SELECT event_id, pid FROM test_deliveries ORDER BY id")
            )
            result = [(str(r[0]), int(r[1])) for r in rows]
            left = (await session.execute(text("SELECT COUNT(*) FROM outbox_messages"))).scalar()
    finally:
        await db.dispose()
    assert left == 0
    return result


async def test_sigkill_mid_batch_loses_nothing(worker_settings: Settings) -> None:
    ids = await prepare(worker_settings, 40, hang_at=9)
    env = worker_env(worker_settings)
    first = garrison_process("worker", env=env)
    try:
        first.wait_for_json(lambda r: r.get("event") == "test.hanging")
        first.proc.kill()  # SIGKILL: no cleanup, its claims stay leased
        assert first.proc.wait(30) == -9
    finally:
        first.close()
    second = garrison_process("worker", env=env)
    try:
        # Alone, the second worker's count of what is left includes nothing in flight.
        second.wait_for_json(lambda r: r.get("event") == "outbox.drained" and r["remaining"] == 0)
        assert second.terminate() == 0
        second.wait_for_json(lambda r: r.get("event") == "worker.stopped")
    finally:
        second.close()

    delivered = await deliveries(worker_settings)
    assert set(ids) == {event_id for event_id, _pid in delivered}  # every one, at least once
    # One message per target is claimable at a time, so batches are ids 0-7, 8-15, ...:
    # the first worker finished batch one, delivered id 8 and hung on id 9 when killed.
    assert [e for e, pid in delivered if pid == first.proc.pid] == ids[:9]
    # Its unacknowledged batch went to the second worker: id 8 twice (at least once).
    assert sorted(e for e, pid in delivered if pid == second.proc.pid) == sorted(ids[8:])
    first_seen: list[str] = []
    for event_id, _pid in delivered:
        if event_id not in first_seen:
            first_seen.append(event_id)
    for target in range(8):
        mine = [ids.index(e) for e in first_seen if ids.index(e) % 8 == target]
        assert mine == sorted(mine)  # each target's events in order


async def undelivered(settings: Settings, expected: int) -> bool:
    """True until ``expected`` deliveries are recorded and no outbox message is left (the
    outbox alone is no signal: it is empty, too, before the first entry is sealed)."""
    db = Database(settings.db_url, settings.db)
    try:
        async with db.read_session() as session:
            done = (await session.execute(text("SELECT COUNT(*) FROM test_deliveries"))).scalar()
            left = (await session.execute(text("SELECT COUNT(*) FROM outbox_messages"))).scalar()
    finally:
        await db.dispose()
    return int(done or 0) < expected or int(left or 0) > 0


async def test_two_workers_at_once_deliver_each_message_once(worker_settings: Settings) -> None:
    ids = await prepare(worker_settings, 200, targets=50)
    # Nothing is killed here, so a lease must never expire: under load a batch may take
    # longer than the 3 s the kill tests use, and an expired lease is a legitimate second
    # delivery (at least once), which is not what this test is about.
    env = worker_env(worker_settings) | {"GARRISON_WORKER__LEASE_SECONDS": "600"}
    workers = [garrison_process("worker", env=env) for _ in range(2)]
    try:
        for process in workers:
            process.wait_for_json(lambda r: r.get("event") == "worker.started")
        # Wait on the outcome itself: neither worker's "drained" line is a signal, since
        # each counts the messages the other still holds.
        deadline = asyncio.get_running_loop().time() + 180
        while await undelivered(worker_settings, len(ids)):
            assert asyncio.get_running_loop().time() < deadline, workers[0].output
            await asyncio.sleep(0.1)  # polling the outcome, with a deadline
    finally:
        for process in workers:
            process.terminate()
            process.close()
    delivered = [event_id for event_id, _pid in await deliveries(worker_settings)]
    assert sorted(delivered) == sorted(ids)  # every message, and none twice


async def test_worker_once_delivers_everything_due(worker_settings: Settings) -> None:
    ids = await prepare(worker_settings, 12)
    result = garrison("worker", "--once", env=worker_env(worker_settings))
    assert result.returncode == 0, result.stderr
    assert "claimed 12 message(s)" in result.stdout
    assert sorted(e for e, _ in await deliveries(worker_settings)) == sorted(ids)


async def test_audit_verify_names_the_edited_entry(worker_settings: Settings) -> None:
    await prepare(worker_settings, 5)
    env = worker_env(worker_settings)
    unsealed = garrison("audit", "verify", env=env)
    assert unsealed.returncode == 0, unsealed.stderr
    assert "5 newer entries are not sealed yet" in unsealed.stdout
    sealed = garrison("worker", "--once", env=env)  # seals, then delivers
    assert sealed.returncode == 0, sealed.stderr
    ok = garrison("audit", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "ok: 5 entries verified (#1..#5)" in ok.stdout
    assert "not sealed" not in ok.stdout

    db = Database(worker_settings.db_url, worker_settings.db)
    try:
        async with db.transaction() as session:
            await session.execute(
                update(AuditEntry).where(AuditEntry.seq == 3).values(target_id="t7")
            )
            event_id = (
                await session.execute(text("SELECT event_id FROM audit_entries WHERE seq = 3"))
            ).scalar()
    finally:
        await db.dispose()
    broken = garrison("audit", "verify", env=env)
    assert broken.returncode == 1
    assert f"audit chain broken at entry #3 (event {event_id})" in broken.stderr
    assert "edited" in broken.stderr


async def test_audit_purge_command(worker_settings: Settings) -> None:
    await prepare(worker_settings, 3)
    env = worker_env(worker_settings)
    assert garrison("worker", "--once", env=env).returncode == 0
    kept = garrison("audit", "purge", "--older-than-days", "1", env=env)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith("purged 0 entries older than ")
    assert "ok: 3 entries verified" in garrison("audit", "verify", env=env).stdout


def test_commands_have_help() -> None:
    for args in (["worker"], ["audit"], ["audit", "verify"], ["audit", "purge"]):
        result = garrison(*args, "--help")
        assert result.returncode == 0, args
        assert "Usage" in result.stdout


@pytest.mark.parametrize("command", ["worker", "serve"])
def test_bad_handler_module_exits_2(tmp_path: Path, command: str) -> None:
    result = garrison(
        command,
        env={
            "GARRISON_DATA_DIR": str(tmp_path),
            "GARRISON_WORKER__HANDLER_MODULES": '["no_such_module_here"]',
        },
    )
    assert result.returncode == 2
    assert result.stderr.startswith("garrison: error: GARRISON_WORKER__HANDLER_MODULES: ")
    assert len(result.stderr.strip().splitlines()) == 1
