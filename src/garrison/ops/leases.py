"""Named leases: one process across every host runs a job meant to run once per installation.

A lease is a row (``garrison_leases``): its holder and when it expires. ``acquire`` takes a
lease that is free, expired or already the caller's, and extends it by ``ttl``; the holder
renews it the same way well before it expires, and ``release`` gives it up on a clean stop.
A holder that dies stops renewing, and another process takes the lease once it has expired.
Each host compares expiry with its own clock: keep hosts' clocks within a few seconds of
each other (NTP), far less than the lease's length.

The row is read with ``FOR UPDATE`` inside one transaction, so two processes asking at once
are decided by the database (on Galera, by certification: the loser's transaction is retried
and then sees the winner's row).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.ops.models import Lease


async def acquire(
    db: Database, name: str, holder: str, *, ttl: timedelta, now: datetime | None = None
) -> bool:
    """Take or renew ``name`` for ``holder`` until ``now + ttl``; False when another holder
    has it and it has not expired."""

    async def work(session: AsyncSession) -> bool:
        at = now or utcnow()
        row = (
            await session.scalars(select(Lease).where(Lease.name == name).with_for_update())
        ).first()
        if row is None:
            session.add(Lease(name=name, holder=holder, expires_at=at + ttl))
            await session.flush()
            return True
        if row.holder != holder and row.expires_at > at:
            return False
        row.holder, row.expires_at = holder, at + ttl
        return True

    try:
        return await transact(db, work)
    except IntegrityError:  # another process inserted the first row at the same moment
        return False


async def holder_of(db: Database, name: str, *, now: datetime | None = None) -> str | None:
    """Who holds ``name`` now (None: nobody, or the lease has expired)."""
    async with db.read_session() as session:
        row = await session.get(Lease, name)
    if row is None or row.expires_at <= (now or utcnow()):
        return None
    return row.holder


async def release(db: Database, name: str, holder: str) -> None:
    """Give ``name`` up, if ``holder`` still has it."""

    async def work(session: AsyncSession) -> None:
        await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))

    await transact(db, work)
