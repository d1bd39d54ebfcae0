"""Retention: sealed entries older than ``audit.retention_days`` are purged from the start of
the chain in small batches, each in its own short transaction that also writes a signed
checkpoint, so what remains still verifies. A purge that removed anything is audited."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, exists, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.audit import chain
from garrison.audit.models import AuditCheckpoint, AuditEntry
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.log import get_logger
from garrison.settings import Settings

log = get_logger("garrison.audit")


@dataclass(frozen=True)
class PurgeResult:
    purged: int
    through_seq: int | None
    cutoff: datetime


def signing_key(settings: Settings) -> bytes:
    if settings.secret_key is None:  # load_settings always sets it
        raise RuntimeError("the secret key is not loaded")
    return chain.checkpoint_key(settings.secret_key.get_secret_value())


async def _purge_batch(
    session: AsyncSession, *, cutoff: datetime, batch_size: int, key: bytes
) -> tuple[int, int | None]:
    # Lock the oldest rows: a second purger waits here and then sees the next ones.
    rows = (
        await session.execute(
            select(AuditEntry.seq, AuditEntry.hash, AuditEntry.occurred_at)
            .where(AuditEntry.seq.is_not(None))
            .order_by(AuditEntry.seq)
            .limit(batch_size)
            .with_for_update()
        )
    ).all()
    # Only a prefix of the chain may go, even if a clock stepped back somewhere.
    prefix = []
    for row in rows:
        if row.occurred_at >= cutoff:
            break
        prefix.append(row)
    if not prefix:
        return 0, None
    last = prefix[-1]
    await session.execute(delete(AuditEntry).where(AuditEntry.seq <= last.seq))
    now = utcnow()
    signature = chain.sign_checkpoint(
        key, through_seq=last.seq, anchor_hash=last.hash, purged=len(prefix), created_at=now
    )
    await session.execute(delete(AuditCheckpoint).where(AuditCheckpoint.through_seq < last.seq))
    await session.execute(
        insert(AuditCheckpoint).values(
            through_seq=last.seq,
            anchor_hash=last.hash,
            purged=len(prefix),
            created_at=now,
            signature=signature,
        )
    )
    return len(prefix), int(last.seq)


async def purge(
    db: Database, *, settings: Settings, retention_days: int | None = None
) -> PurgeResult:
    days = settings.audit.retention_days if retention_days is None else retention_days
    cutoff = utcnow() - timedelta(days=days)
    key = signing_key(settings)
    batch_size = settings.audit.purge_batch_size
    async with db.read_session() as session:
        due = (
            await session.execute(
                select(exists().where(AuditEntry.occurred_at < cutoff, AuditEntry.seq.is_not(None)))
            )
        ).scalar()
    total, through = 0, None
    while due:

        async def work(session: AsyncSession) -> tuple[int, int | None]:
            return await _purge_batch(session, cutoff=cutoff, batch_size=batch_size, key=key)

        count, last = await transact(db, work)
        total += count
        through = last if last is not None else through
        due = count == batch_size
    if total:
        await events.emit_standalone(
            db,
            Event(
                action="audit.purged",
                actor=Actor.system(),
                target_type="audit",
                data={"purged": total, "through_seq": through, "cutoff": cutoff.isoformat()},
            ),
        )
        log.info("audit.purged", purged=total, through_seq=through, retention_days=days)
    return PurgeResult(purged=total, through_seq=through, cutoff=cutoff)
