"""Writing outbox messages and the claim / ack / retry / park cycle the worker drives.

A change's transaction writes only its audit entry, which carries the whole event; the
worker's sealing pass hands each sealed entry to ``publish`` in the same transaction
(``garrison.audit.service.seal``): a committed change that a handler wants gets exactly one
message and nothing is lost between the two; one nobody consumes gets none. Other domains
may also ``enqueue`` directly in their own transaction (queued mail does). Functions taking
a session never commit; those taking a ``Database`` run their own short transactions.

Claiming on MySQL/MariaDB is ``SELECT … FOR UPDATE SKIP LOCKED``, so concurrent workers
take disjoint batches without waiting on each other; on SQLite ``BEGIN IMMEDIATE`` makes
the claim the only writer. A claim is a lease (``claimed_until``): a worker that dies
holding one loses it when the lease ends, and the messages are delivered again.
A message is not claimable while an older message with the same ordering key (its target)
is still pending, so each target's messages are delivered in order.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Table, delete, exists, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.outbox.models import PARKED, PENDING, OutboxMessage
from garrison.outbox.registry import Message, Registry
from garrison.settings import WorkerSettings

MAX_ERROR_LENGTH = 2000
# Core statements on the table: several times less CPU per insert than ORM-entity ones.
_messages: Table = OutboxMessage.__table__  # type: ignore[assignment]


def _ordering_key(target_type: str | None, target_id: str | None) -> str | None:
    if target_type is None:
        return None
    return f"{target_type}:{target_id or ''}"[:255]


@dataclass(frozen=True)
class NewMessage:
    event_id: str
    topic: str
    target_type: str | None
    target_id: str | None
    payload: Mapping[str, Any]


async def enqueue(session: AsyncSession, *, messages: Sequence[NewMessage]) -> None:
    """Add ``messages`` to the caller's transaction (one multi-row insert)."""
    if not messages:
        return
    now = utcnow()
    await session.execute(
        insert(_messages),
        [
            {
                "event_id": m.event_id,
                "topic": m.topic[:128],
                "ordering_key": _ordering_key(m.target_type, m.target_id),
                "payload": orjson.dumps(m.payload, default=str).decode(),
                "status": PENDING,
                "attempts": 0,
                "created_at": now,
                "available_at": now,
            }
            for m in messages
        ],
    )


async def publish(
    session: AsyncSession, *, messages: Sequence[NewMessage], registry: Registry
) -> int:
    """The sealing pass's hand-off, in its transaction: every sink sees every event, and a
    message is written only for the events a registered handler wants (an event nobody
    consumes costs no outbox write). Returns how many messages were written."""
    for sink in registry.sinks:
        await sink(session, [m.payload for m in messages])
    wanted = [m for m in messages if registry.wants(m.topic)]
    await enqueue(session, messages=wanted)
    return len(wanted)


def _message(row: Any) -> Message:
    payload: dict[str, Any] = orjson.loads(row.payload)
    target = payload.get("target") or {}
    return Message(
        id=row.id,
        event_id=row.event_id,
        topic=row.topic,
        target_type=target.get("type"),
        target_id=target.get("id"),
        payload=payload,
        attempts=row.attempts,
        created_at=row.created_at,
    )


def _claimable(now: datetime) -> Any:
    m = OutboxMessage
    earlier = aliased(OutboxMessage)
    blocked = exists().where(
        earlier.ordering_key == m.ordering_key,
        earlier.id < m.id,
        earlier.status == PENDING,
    )
    return (
        m.status == PENDING,
        m.available_at <= now,
        or_(m.claimed_until.is_(None), m.claimed_until < now),
        ~blocked,
    )


async def has_claimable(session: AsyncSession) -> bool:
    """A cheap read-only look, so an idle worker need not take write locks to poll."""
    query = select(OutboxMessage.id).where(*_claimable(utcnow())).limit(1)
    return (await session.execute(query)).first() is not None


async def claim(db: Database, *, worker_id: str, limit: int, lease_seconds: float) -> list[Message]:
    async def work(session: AsyncSession) -> list[Message]:
        now = utcnow()
        ids = (
            (
                await session.execute(
                    select(OutboxMessage.id)
                    .where(*_claimable(now))
                    .order_by(OutboxMessage.id)
                    .limit(limit)
                    .with_for_update(skip_locked=True)
                )
            )
            .scalars()
            .all()
        )
        if not ids:
            return []
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(
                claimed_by=worker_id[:64],
                claimed_until=now + timedelta(seconds=lease_seconds),
                attempts=OutboxMessage.attempts + 1,
            )
        )
        rows = (
            await session.execute(
                select(OutboxMessage.__table__)
                .where(OutboxMessage.id.in_(ids))
                .order_by(OutboxMessage.id)
            )
        ).all()
        return [_message(row) for row in rows]

    return await transact(db, work)


async def ack(db: Database, *, ids: Sequence[int]) -> None:
    """The messages were handled: delete them."""
    if not ids:
        return

    async def work(session: AsyncSession) -> None:
        await session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(list(ids))))

    await transact(db, work)


async def release(db: Database, *, ids: Sequence[int], worker_id: str) -> None:
    """Give claimed messages back untried (the batch ran out of lease before them): no
    attempt is counted and they are claimable again at once."""

    async def work(session: AsyncSession) -> None:
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(list(ids)), OutboxMessage.claimed_by == worker_id[:64])
            .values(claimed_by=None, claimed_until=None, attempts=OutboxMessage.attempts - 1)
        )

    await transact(db, work)


def backoff(attempts: int, settings: WorkerSettings) -> float:
    """Seconds before the next try: exponential, capped, with jitter (between half and all
    of the step) so messages that failed together do not retry in lockstep."""
    step: float = min(settings.backoff_max, settings.backoff_base * 2 ** max(0, attempts - 1))
    return random.uniform(step / 2, step)


async def fail(db: Database, *, message: Message, error: str, settings: WorkerSettings) -> bool:
    """Schedule a retry, or park the message after ``max_attempts``; True when parked."""
    park = message.attempts >= settings.max_attempts
    now = utcnow()
    values: dict[str, Any] = {
        "claimed_by": None,
        "claimed_until": None,
        "last_error": error[:MAX_ERROR_LENGTH],
    }
    if park:
        values.update(status=PARKED, parked_at=now)
    else:
        values["available_at"] = now + timedelta(seconds=backoff(message.attempts, settings))

    async def work(session: AsyncSession) -> None:
        await session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message.id).values(**values)
        )

    await transact(db, work)
    return park


@dataclass(frozen=True)
class Backlog:
    pending: int
    parked: int
    oldest_pending: datetime | None


async def backlog(session: AsyncSession) -> Backlog:
    """Messages waiting for delivery (and the oldest's creation time), and parked ones."""
    query = select(OutboxMessage.status, func.count(), func.min(OutboxMessage.created_at)).group_by(
        OutboxMessage.status
    )
    by_status = {row[0]: (int(row[1]), row[2]) for row in await session.execute(query)}
    pending, oldest = by_status.get(PENDING, (0, None))
    return Backlog(
        pending=pending, parked=by_status.get(PARKED, (0, None))[0], oldest_pending=oldest
    )


async def count(session: AsyncSession, *, status: str = PENDING) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == status)
    return int((await session.execute(query)).scalar_one())


async def list_parked(
    session: AsyncSession, *, limit: int, after: int | None = None
) -> tuple[Sequence[Any], int | None]:
    """Parked messages, oldest first, with the id to continue after (``None`` at the end)."""
    query = select(OutboxMessage.__table__).where(OutboxMessage.status == PARKED)
    if after is not None:
        query = query.where(OutboxMessage.id > after)
    rows = (await session.execute(query.order_by(OutboxMessage.id).limit(limit + 1))).all()
    if len(rows) > limit:
        return rows[:limit], int(rows[limit - 1].id)
    return rows, None


async def requeue(session: AsyncSession, *, message_id: int) -> bool:
    """Put a parked message back in line with a fresh attempt count; False if not parked."""
    result = await session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.status == PARKED)
        .values(status=PENDING, attempts=0, available_at=utcnow(), parked_at=None)
    )
    return bool(getattr(result, "rowcount", 0))


async def discard(session: AsyncSession, *, event_ids: Sequence[str]) -> int:
    """Delete the messages of these events whatever their state (erasure: a person's
    undelivered events must not outlive them); returns how many."""
    total = 0
    ids = list(event_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        result = await session.execute(
            delete(OutboxMessage).where(OutboxMessage.event_id.in_(chunk))
        )
        total += int(result.rowcount or 0)  # type: ignore[attr-defined]
    return total
