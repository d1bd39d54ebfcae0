"""The audit log: the event seam's atomicity, redaction, the hash chain and its verification,
tampering, concurrency and retention. Every test runs on SQLite and on MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.audit import personal, retention
from garrison.audit import service as audit_service
from garrison.audit.chain import entry_hash
from garrison.audit.models import AuditCheckpoint, AuditEntry
from garrison.audit.sealer import seal_pending
from garrison.audit.verify import VerifyReport, verify_chain
from garrison.context import RequestContext
from garrison.db import Database, transact
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.outbox.models import OutboxMessage
from garrison.outbox.registry import Message, Registry
from garrison.settings import Settings
from tests.conftest import make_settings, migrated


@pytest.fixture
async def audit_settings(tmp_path: Path, fresh_database_url: str) -> Settings:
    settings = make_settings(
        tmp_path, database_url=fresh_database_url, worker={"in_process": False}
    )
    await migrated(settings)
    return settings


@pytest.fixture
async def db(audit_settings: Settings) -> AsyncIterator[Database]:
    database = Database(audit_settings.db_url, audit_settings.db)
    yield database
    await database.dispose()


def updated(n: int, **extra: object) -> Event:
    return Event(
        action="record.updated",
        actor=Actor("user", f"u{n % 3}"),
        target_type="record",
        target_id=str(n),
        changes={"title": (f"old {n}", f"new {n}")},
        data={"n": n, **extra},
        context=RequestContext(request_id=f"req-{n}", ip="192.0.2.7", user_agent="pytest"),
    )


async def emit_many(db: Database, count: int, start: int = 0, *, sealed: bool = True) -> None:
    for n in range(start, start + count):
        async with db.transaction() as session:
            await events.emit(session, updated(n))
    if sealed:
        await seal_pending(db, batch_size=3)


async def verify(db: Database, settings: Settings) -> VerifyReport:
    async with db.read_session() as session:
        return await verify_chain(
            session, checkpoint_key=retention.signing_key(settings), batch_size=7
        )


async def _consume(message: Message, db: Database) -> None:
    """Never called: a handler for every topic, so sealing writes every event's message."""


WANTED = Registry()
WANTED.register("*", _consume)


async def count(db: Database, table: type[AuditEntry] | type[OutboxMessage]) -> int:
    async with db.read_session() as session:
        return int((await session.execute(select(func.count()).select_from(table))).scalar_one())


async def test_change_and_its_event_commit_together(db: Database) -> None:
    """The entry commits with the change; sealing it writes its one outbox message (when a
    handler wants the event; one nobody consumes gets none, see test_outbox)."""

    async def failing_change() -> None:
        async with db.transaction() as session:
            await events.emit(session, updated(2))
            raise RuntimeError("the change failed after emitting")

    with pytest.raises(RuntimeError):
        await failing_change()
    async with db.transaction() as session:
        await events.emit(session, updated(1))
    assert await count(db, AuditEntry) == 1
    assert await count(db, OutboxMessage) == 0
    assert await seal_pending(db, batch_size=10, registry=WANTED) == 1
    assert await count(db, OutboxMessage) == 1
    assert await seal_pending(db, batch_size=10, registry=WANTED) == 0
    assert await count(db, OutboxMessage) == 1


async def test_entry_fields_and_outbox_payload(db: Database) -> None:
    event = updated(5)
    async with db.transaction() as session:
        await events.emit(session, event)
    async with db.read_session() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
        [opened] = await personal.open_rows(
            session, [(await session.execute(select(AuditEntry.__table__))).one()]
        )
    assert (entry.seq, entry.hash) == (None, None)  # sealed by the worker after commit
    assert entry.event_id == event.id
    assert (entry.actor_kind, entry.actor_id) == ("user", "u2")
    # About a person (the acting user): the personal fields are sealed under their key.
    assert (entry.subject_id, entry.ip, entry.user_agent, entry.changes) == ("u2", None, None, None)
    assert entry.request_id == "req-5"
    assert (opened["ip"], opened["user_agent"]) == ("192.0.2.7", "pytest")
    assert (entry.action, entry.target_type, entry.target_id) == ("record.updated", "record", "5")
    assert entry.outcome == "success"
    assert orjson.loads(opened["changes"] or "") == {"title": {"before": "old 5", "after": "new 5"}}
    assert entry.occurred_at.tzinfo is not None
    assert abs(utcnow() - entry.occurred_at) < timedelta(minutes=5)

    assert await seal_pending(db, batch_size=10, registry=WANTED) == 1
    async with db.read_session() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
        message = (await session.execute(select(OutboxMessage))).scalar_one()
    assert entry.seq == 1
    assert entry.prev_hash == "0" * 64
    assert entry.hash is not None
    assert len(entry.hash) == 64
    assert message.event_id == event.id
    assert message.topic == "record.updated"
    assert message.ordering_key == "record:5"
    payload = orjson.loads(message.payload)
    assert payload["actor"] == {"kind": "user", "id": "u2"}
    assert payload["target"] == {"type": "record", "id": "5"}
    assert payload["changes"] == {"title": {"before": "old 5", "after": "new 5"}}
    assert payload["data"] == {"n": 5}
    assert payload["request_id"] == "req-5"


async def test_secrets_are_redacted_everywhere(db: Database) -> None:
    event = Event(
        action="user.updated",
        actor=Actor("user", "1"),
        target_type="user",
        target_id="1",
        changes={"password_hash": ("$argon2id$old", "$argon2id$new"), "name": ("a", "b")},
        data={"profile": {"api_key": "gk_live_abcdef", "nested": [{"token": "tok-123"}]}},
    )
    async with db.transaction() as session:
        await events.emit(session, event)
    await seal_pending(db, batch_size=10, registry=WANTED)
    async with db.read_session() as session:
        message = (await session.execute(select(OutboxMessage))).scalar_one()
        [entry] = await personal.open_rows(
            session, (await session.execute(select(AuditEntry.__table__))).all()
        )
    stored = (entry["changes"] or "") + (entry["data"] or "") + message.payload
    for secret in ("$argon2id$old", "$argon2id$new", "gk_live_abcdef", "tok-123"):
        assert secret not in stored
    changes = orjson.loads(entry["changes"] or "")
    assert changes["password_hash"] == {"before": "[redacted]", "after": "[redacted]"}
    assert changes["name"] == {"before": "a", "after": "b"}


async def test_standalone_outside_a_transaction_is_written_at_once(db: Database) -> None:
    await events.emit_standalone(
        db,
        Event(
            action="auth.login.failed",
            actor=Actor.anonymous(),
            outcome="failed",
            data={"email": "a@example.com", "password": "hunter2"},
        ),
    )
    async with db.read_session() as session:
        entry = (await session.execute(select(AuditEntry))).scalar_one()
    assert (entry.action, entry.outcome, entry.actor_kind) == (
        "auth.login.failed",
        "failed",
        "anonymous",
    )
    assert "hunter2" not in (entry.data or "")


async def test_standalone_inside_a_writer_is_written_after_it(db: Database) -> None:
    """Inside a writer transaction (SQLite's single writer is held) the standalone event
    waits for the block to end instead of deadlocking on the caller's own lock."""

    async def denied_attempt() -> None:
        async with events.deferring_standalone(), db.transaction() as session:
            await events.emit(session, updated(1))  # holds the chain head on MariaDB
            await events.emit_standalone(db, Event(action="auth.denied", actor=Actor.anonymous()))
            raise PermissionError("denied")

    with pytest.raises(PermissionError):
        await denied_attempt()
    async with db.read_session() as session:
        actions = (await session.execute(select(AuditEntry.action))).scalars().all()
    assert actions == ["auth.denied"]


async def test_verify_passes_and_names_an_edited_entry(
    db: Database, audit_settings: Settings
) -> None:
    await emit_many(db, 20)
    report = await verify(db, audit_settings)
    assert report.ok, report.broken
    assert (report.checked, report.first_seq, report.head_seq) == (20, 1, 20)
    await emit_many(db, 2, start=20, sealed=False)
    report = await verify(db, audit_settings)
    assert report.ok
    assert (report.checked, report.unsealed) == (20, 2)

    async with db.transaction() as session:
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq == 12).values(actor_id="someone-else")
        )
    report = await verify(db, audit_settings)
    assert report.broken is not None
    assert report.broken.seq == 12
    assert "edited" in report.broken.reason
    assert report.checked == 11


async def test_rehashing_an_edit_breaks_the_next_link(
    db: Database, audit_settings: Settings
) -> None:
    await emit_many(db, 5)
    async with db.transaction() as session:
        row = (await session.execute(select(AuditEntry.__table__).where(AuditEntry.seq == 3))).one()
        fields = {**row._asdict(), "outcome": "denied"}
        forged = entry_hash(row.prev_hash, fields)
        await session.execute(
            update(AuditEntry).where(AuditEntry.seq == 3).values(outcome="denied", hash=forged)
        )
    report = await verify(db, audit_settings)
    assert report.broken is not None
    assert report.broken.seq == 4
    assert "prev_hash" in report.broken.reason


@pytest.mark.parametrize(("deleted", "named"), [(7, 7), (1, 1), (10, 10)])
async def test_verify_detects_deleted_entries(
    db: Database, audit_settings: Settings, deleted: int, named: int
) -> None:
    await emit_many(db, 10)
    async with db.transaction() as session:
        await session.execute(delete(AuditEntry).where(AuditEntry.seq == deleted))
    report = await verify(db, audit_settings)
    assert report.broken is not None
    assert report.broken.seq == named
    assert "missing" in report.broken.reason


async def test_concurrent_writers_and_sealers_do_not_fork_the_chain(
    audit_settings: Settings, db: Database
) -> None:
    """Four writers and two sealers at once, each with its own connection pool."""
    writers = [Database(audit_settings.db_url, audit_settings.db) for _ in range(4)]
    sealers = [Database(audit_settings.db_url, audit_settings.db) for _ in range(2)]
    writing = True

    async def write(database: Database, base: int) -> None:
        for n in range(10):

            async def work(session: AsyncSession, n: int = n) -> None:
                await events.emit(session, updated(base + n))

            await transact(database, work, attempts=10)

    async def seal_while_writing(database: Database) -> int:
        sealed = 0
        while writing:
            sealed += await seal_pending(database, batch_size=4)
            await asyncio.sleep(0)  # yield to the writers; never a wait for something
        return sealed

    async def all_writers() -> None:
        nonlocal writing
        await asyncio.gather(*(write(w, i * 100) for i, w in enumerate(writers)))
        writing = False

    try:
        sealed = await asyncio.gather(*(seal_while_writing(s) for s in sealers), all_writers())
        sealed.pop()
        sealed_after = await seal_pending(db, batch_size=100)
    finally:
        for w in [*writers, *sealers]:
            await w.dispose()
    assert sum(n or 0 for n in sealed) + sealed_after == 40
    async with db.read_session() as session:
        seqs = (await session.execute(select(AuditEntry.seq).order_by(AuditEntry.seq))).scalars()
        assert list(seqs) == list(range(1, 41))
    report = await verify(db, audit_settings)
    assert report.ok, report.broken
    assert report.checked == 40


async def test_purge_keeps_the_rest_verifiable_and_is_audited(
    db: Database, audit_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = utcnow() - timedelta(days=100)
    monkeypatch.setattr(audit_service, "utcnow", lambda: old)
    await emit_many(db, 5)
    monkeypatch.undo()
    await emit_many(db, 3, start=5)
    audit_settings.audit.purge_batch_size = 2

    result = await retention.purge(db, settings=audit_settings)
    assert (result.purged, result.through_seq) == (5, 5)
    await seal_pending(db, batch_size=10)  # the purge's own entry
    async with db.read_session() as session:
        left = (await session.execute(select(AuditEntry).order_by(AuditEntry.seq))).scalars().all()
        checkpoints = (await session.execute(select(AuditCheckpoint))).scalars().all()
    assert [e.seq for e in left] == [6, 7, 8, 9]
    assert left[-1].action == "audit.purged"
    assert left[-1].actor_kind == "system"
    assert orjson.loads(left[-1].data or "")["purged"] == 5
    assert [c.through_seq for c in checkpoints] == [5]
    report = await verify(db, audit_settings)
    assert report.ok, report.broken
    assert (report.first_seq, report.checked) == (6, 4)

    # Nothing more is due: the purge is a no-op and audits nothing.
    assert (await retention.purge(db, settings=audit_settings)).purged == 0
    assert await count(db, AuditEntry) == 4

    # A checkpoint cannot be forged without the key; deleting it exposes the gap.
    async with db.transaction() as session:
        await session.execute(update(AuditCheckpoint).values(anchor_hash="f" * 64))
    report = await verify(db, audit_settings)
    assert report.broken is not None
    assert "not signed" in report.broken.reason
    async with db.transaction() as session:
        await session.execute(delete(AuditCheckpoint))
    report = await verify(db, audit_settings)
    assert report.broken is not None
    assert report.broken.seq == 1


async def test_purge_respects_retention(db: Database, audit_settings: Settings) -> None:
    await emit_many(db, 3)
    assert (await retention.purge(db, settings=audit_settings)).purged == 0
    assert await count(db, AuditEntry) == 3
