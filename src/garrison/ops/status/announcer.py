"""The worker's announcement job: ``status.maintenance.started`` when a window begins and
``status.maintenance.ended`` when it is over, each once per window.

``run_once`` is the whole job (the worker calls it every ``status.maintenance_poll_seconds``).
Several workers may run it at once: each announcement is claimed by a conditional UPDATE of
``started_announced_at`` / ``ended_announced_at`` in the transaction that emits its event
(so the event reaches the outbox, and from there subscribers' e-mail and webhooks, exactly
when the claim commits). What is announced when, for cancelled, edited and missed windows,
is ``garrison.ops.status.service.announce_due``'s docstring.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.log import get_logger
from garrison.ops.status import service

log = get_logger("garrison.status")


async def run_once(*, db: Database, now: datetime | None = None) -> list[tuple[str, str]]:
    """Announce what has started or ended by ``now`` (default: the clock); returns
    (action, window id) of each announcement this run made."""
    at = now or utcnow()
    # Most runs find nothing due: they only read, and take no write lock (on SQLite a
    # writer transaction would hold the one write lock every few seconds).
    async with db.read_session() as session:
        if not await service.due_announcements(session, now=at, limit=1):
            return []

    async def work(session: AsyncSession) -> list[tuple[str, str]]:
        return await service.announce_due(session, now=at)

    made = await transact(db, work)
    for action, maintenance_id in made:
        log.info("status.maintenance.announced", action=action, maintenance_id=maintenance_id)
    return made
