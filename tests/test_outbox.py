"""Outbox delivery: exactly once in the normal case, in order per target, retries with
backoff, parking after the last attempt, concurrent workers, the in-process worker and the
admin endpoints. Every test runs on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from garrison import events
from garrison.app import create_app
from garrison.audit.models import AuditEntry
from garrison.audit.sealer import seal_pending
from garrison.db import Database
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.outbox import Message, Registry, registry
from garrison.outbox import service as outbox
from garrison.outbox.models import PARKED, OutboxMessage
from garrison.outbox.registry import import_handler_modules, matches
from garrison.runtime import runtime_of
from garrison.settings import ConfigError, Settings
from garrison.worker import Worker
from tests.authkit import AuthApp, bearer
from tests.conftest import make_settings, migrated, start
from tests.helpers import assert_problem


@pytest.fixture
async def ob_settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    settings = make_settings(
        tmp_path,
        database_url=fresh_database_url,
        worker={"in_process": False, "batch_size": 10, "max_attempts": 3},
    )
    await migrated(settings)
    return settings


@pytest.fixture
async def db(ob_settings: Settings) -> AsyncIterator[Database]:
    database = Database(ob_settings.db_url, ob_settings.db)
    yield database
    await database.dispose()


class Recorder:
    """A handler that records what it saw, failing on demand."""

    def __init__(self) -> None:
        self.seen: list[Message] = []
        self.fail_times: dict[str, int] = {}

    async def __call__(self, message: Message, db: Database) -> None:
        self.seen.append(message)
        left = self.fail_times.get(message.event_id, 0)
        if left:
            self.fail_times[message.event_id] = left - 1
            raise ValueError(f"cannot handle {message.event_id}")


async def _wanted(message: Message, db: Database) -> None:
    """Never called: it makes every topic wanted, so sealing writes every message."""


EVERYTHING = Registry()
EVERYTHING.register("*", _wanted)


async def emit(
    db: Database, *items: tuple[str, str | None], handlers: Registry = EVERYTHING
) -> list[str]:
    """One transaction, one event per (topic, target id); sealed with ``handlers`` (by
    default one that wants every topic, so each event gets its message)."""
    ids: list[str] = []
    async with db.transaction() as session:
        for topic, target in items:
            event = Event(
                action=topic,
                actor=Actor.system(),
                target_type="record" if target else None,
                target_id=target,
                data={"target": target},
            )
            await events.emit(session, event)
            ids.append(event.id)
    await seal_pending(db, batch_size=100, registry=handlers)  # writes the outbox messages
    return ids


async def pending(db: Database) -> int:
    async with db.read_session() as session:
        return await outbox.count(session)


async def make_due(db: Database) -> None:
    """Skip the backoff: the test is about what happens next, not about waiting."""
    async with db.transaction() as session:
        await session.execute(update(OutboxMessage).values(available_at=utcnow()))


def test_prefix_matching() -> None:
    assert matches("record", "record.updated")
    assert matches("record.", "record.updated")
    assert matches("record", "record")
    assert not matches("record", "records.updated")
    assert matches("", "anything")
    assert matches("*", "anything")


async def test_every_message_delivered_exactly_once(db: Database, ob_settings: Settings) -> None:
    handlers = Registry()
    records, everything = Recorder(), Recorder()
    handlers.register("record", records)
    handlers.register("*", everything)
    ids = await emit(db, *[("record.updated", f"r{n}") for n in range(25)], ("user.created", None))
    worker = Worker(db, ob_settings, handlers=handlers)
    while await worker.run_once():
        pass
    assert sorted(m.event_id for m in records.seen) == sorted(ids[:25])
    assert sorted(m.event_id for m in everything.seen) == sorted(ids)
    assert await pending(db) == 0
    message = records.seen[0]
    assert message.payload["action"] == "record.updated"
    assert message.target_type == "record"
    assert message.attempts == 1


async def test_order_is_kept_per_target(db: Database, ob_settings: Settings) -> None:
    handlers, recorder = Registry(), Recorder()
    handlers.register("record", recorder)
    ids = await emit(
        db, *[(f"record.v{v}", target) for v in range(4) for target in ("a", "b", "c")]
    )
    recorder.fail_times[ids[0]] = 1  # the first message of target "a" fails once
    worker = Worker(db, ob_settings, handlers=handlers)
    while await pending(db):
        if not await worker.run_once():
            await make_due(db)
    by_target: dict[str, list[str]] = {}
    for message in recorder.seen:
        by_target.setdefault(message.target_id or "", []).append(message.topic)
    assert by_target["a"] == ["record.v0", "record.v0", "record.v1", "record.v2", "record.v3"]
    assert by_target["b"] == by_target["c"] == [f"record.v{v}" for v in range(4)]


async def test_retry_with_backoff_then_park(db: Database, ob_settings: Settings) -> None:
    handlers, recorder = Registry(), Recorder()
    handlers.register("record", recorder)
    [poison] = await emit(db, ("record.updated", "p"))
    recorder.fail_times[poison] = 99
    worker = Worker(db, ob_settings, handlers=handlers)

    before = utcnow()
    assert await worker.run_once() == 1
    async with db.read_session() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert row.attempts == 1
    assert row.claimed_by is None
    assert "ValueError: cannot handle" in (row.last_error or "")
    # backoff_base is 1 s: the retry is due between 0.5 s and 1 s later, not now.
    assert row.available_at > before
    assert await worker.run_once() == 0

    for _ in range(2):
        await make_due(db)
        assert await worker.run_once() == 1
    async with db.read_session() as session:
        row = (await session.execute(select(OutboxMessage))).scalar_one()
    assert (row.status, row.attempts) == (PARKED, 3)
    assert row.parked_at is not None
    await make_due(db)
    assert await worker.run_once() == 0  # parked messages are not claimed
    assert len(recorder.seen) == 3


async def test_only_wanted_events_become_messages(db: Database, ob_settings: Settings) -> None:
    """An event no handler wants is sealed into the audit chain but writes no message."""
    handlers, recorder = Registry(), Recorder()
    handlers.register("record", recorder)
    ids = await emit(
        db, ("record.updated", "a"), ("user.created", None), ("quota.x", None), handlers=handlers
    )
    assert await pending(db) == 1
    async with db.read_session() as session:
        sealed = (
            await session.execute(select(AuditEntry.event_id).where(AuditEntry.seq.is_not(None)))
        ).scalars()
        assert set(sealed) == set(ids)  # the audit trail is complete either way
    worker = Worker(db, ob_settings, handlers=handlers)
    while await worker.run_once():
        pass
    assert [m.event_id for m in recorder.seen] == ids[:1]


def test_backoff_grows_with_jitter(ob_settings: Settings) -> None:
    config = ob_settings.worker
    config.backoff_base, config.backoff_max = 2.0, 60.0
    for attempts, step in ((1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)):
        delays = {outbox.backoff(attempts, config) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1


async def test_parked_messages_visible_and_requeued_by_admins(
    db: Database, ob_settings: Settings
) -> None:
    handlers, recorder = Registry(), Recorder()
    handlers.register("record", recorder)
    [poison] = await emit(db, ("record.updated", "p"))
    recorder.fail_times[poison] = 3
    worker = Worker(db, ob_settings, handlers=handlers)
    for _ in range(3):
        await make_due(db)
        await worker.run_once()

    app = create_app(ob_settings)
    async with start(app) as running:
        api = AuthApp(running, ob_settings)
        running.client.headers.update(bearer(await api.token(role="admin")))
        body = (await running.client.get("/api/v1/outbox/parked")).json()
        [item] = body["items"]
        assert item["event_id"] == poison
        assert item["attempts"] == 3
        assert "cannot handle" in item["last_error"]
        assert body["next_cursor"] is None

        response = await running.client.post(f"/api/v1/outbox/parked/{item['id']}/retry")
        assert response.status_code == 200
        assert_problem(await running.client.post(f"/api/v1/outbox/parked/{item['id']}/retry"), 404)
        assert_problem(await running.client.post("/api/v1/outbox/parked/x/retry"), 422)
        assert (await running.client.get("/api/v1/outbox/parked")).json()["items"] == []
        audit = (await running.client.get("/api/v1/audit", params={"action": "outbox"})).json()
        assert audit["items"][0]["target"] == {"type": "outbox_message", "id": str(item["id"])}

    while await worker.run_once():
        pass
    assert [m.event_id for m in recorder.seen].count(poison) == 4
    assert await pending(db) == 0

    async with start(create_app(ob_settings)) as outsider:
        assert_problem(await outsider.client.get("/api/v1/outbox/parked"), 401)
        user = bearer(await AuthApp(outsider, ob_settings).token(role="user"))
        assert_problem(await outsider.client.get("/api/v1/outbox/parked", headers=user), 403)


async def test_concurrent_workers_share_without_double_delivery(
    db: Database, ob_settings: Settings
) -> None:
    handlers, recorder = Registry(), Recorder()
    handlers.register("record", recorder)
    ids = await emit(db, *[("record.updated", f"t{n % 30}") for n in range(150)])
    databases = [Database(ob_settings.db_url, ob_settings.db) for _ in range(3)]

    async def drain(worker: Worker) -> int:
        claimed = 0
        while await pending(db):
            claimed += await worker.run_once()
        return claimed

    try:
        workers = [Worker(d, ob_settings, handlers=handlers) for d in databases]
        claimed = await asyncio.gather(*(drain(w) for w in workers))
    finally:
        for d in databases:
            await d.dispose()
    delivered = [m.event_id for m in recorder.seen]
    assert sorted(delivered) == sorted(ids)  # each exactly once
    assert sum(claimed) == 150
    position = {event_id: i for i, event_id in enumerate(ids)}
    for target in {m.target_id for m in recorder.seen}:
        order = [position[m.event_id] for m in recorder.seen if m.target_id == target]
        assert order == sorted(order)


async def test_handler_that_outlives_its_lease_is_retried(
    db: Database, ob_settings: Settings
) -> None:
    ob_settings.worker.lease_seconds = 0.2
    handlers = Registry()
    release = asyncio.Event()

    async def stuck(message: Message, db: Database) -> None:
        await release.wait()

    handlers.register("record", stuck)
    await emit(db, ("record.updated", "slow"), ("record.updated", "next"))
    assert await Worker(db, ob_settings, handlers=handlers).run_once() == 2
    async with db.read_session() as session:
        slow, untried = (
            await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
        ).scalars()
    assert "timed out" in (slow.last_error or "")
    assert (slow.status, slow.attempts) == ("pending", 1)
    # The batch ran out of lease before the second message: handed back, no attempt counted.
    assert (untried.attempts, untried.last_error, untried.claimed_until) == (0, None, None)


async def test_in_process_worker_delivers_and_stops_cleanly(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(tmp_path, database_url=database_url, worker={"poll_interval": 0.05})
    assert settings.worker.in_process  # the development default
    await migrated(settings)
    delivered: set[str] = set()
    arrived = asyncio.Event()

    async def handler(message: Message, db: Database) -> None:
        delivered.add(message.event_id)
        arrived.set()

    registry.register("inproc", handler)
    try:
        app = create_app(settings)
        async with start(app):
            db: Database = runtime_of(app).db
            # The worker may deliver before emit() has returned the ids: collect every
            # delivery and wait until the expected ones are among them.
            expected = await emit(db, ("inproc.ping", None))
            async with asyncio.timeout(30):
                while not set(expected) <= delivered:
                    arrived.clear()
                    if not set(expected) <= delivered:
                        await arrived.wait()
            # Each pass seals before it delivers: the entry is already in the chain.
            async with db.read_session() as session:
                seq = (
                    await session.execute(
                        select(AuditEntry.seq).where(AuditEntry.event_id == expected[0])
                    )
                ).scalar_one()
            assert seq is not None
    finally:
        registry.unregister(handler)


def test_unknown_handler_module_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        import_handler_modules(["tests.no_such_module"])
    assert info.value.variable == "GARRISON_WORKER__HANDLER_MODULES"
