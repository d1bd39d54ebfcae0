"""Sealing: the worker's pass that chains newly committed entries (see ``models``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import service
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.outbox.registry import Registry


async def seal_pending(db: Database, *, batch_size: int, registry: Registry | None = None) -> int:
    """Seal every entry committed so far, in batches of short transactions."""
    async with db.read_session() as session:
        if not await service.has_unsealed(session):
            return 0

    async def work(session: AsyncSession) -> int:
        return await service.seal(session, limit=batch_size, registry=registry)

    total = 0
    while True:
        sealed = await transact(db, work)
        total += sealed
        if sealed < batch_size:
            return total
