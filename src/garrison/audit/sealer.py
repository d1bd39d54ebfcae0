"""Sealing: the worker's pass that chains newly committed entries (see ``models``)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import service
from garrison.db.engine import Database
from garrison.db.retry import transact


async def seal_pending(db: Database, *, batch_size: int) -> int:
    """Seal every entry committed so far, in batches of short transactions."""
    async with db.read_session() as session:
        if not await service.has_unsealed(session):
            return 0

    async def work(session: AsyncSession) -> int:
        return await service.seal(session, limit=batch_size)

    total = 0
    while True:
        sealed = await transact(db, work)
        total += sealed
        if sealed < batch_size:
            return total
