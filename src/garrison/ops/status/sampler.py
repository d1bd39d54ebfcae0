"""The worker's sampling job: one sample per component per minute, and the day's rollup.

``run_once`` is the whole job (the worker calls it every ``status.sample_interval_seconds``).
Several workers may sample the same minute: the unique (component, minute) index keeps
one, and the day's row is recounted from the minute samples, so it is right whichever
worker wrote last. Minute samples are kept ``status.sample_retention_days``; day rows
``status.history_days``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.ops.health import HealthService
from garrison.ops.status import components
from garrison.ops.status.config import StatusSettings
from garrison.ops.status.models import StatusDay, StatusSample

RECORDED = ("operational", "degraded", "outage")


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


async def record(
    db: Database,
    *,
    samples: Sequence[tuple[str, str, str | None]],
    settings: StatusSettings,
    now: datetime | None = None,
) -> int:
    """Store (component, state, detail) samples for the current minute; returns how many
    were new. States outside operational/degraded/outage are stored as outage."""
    at = minute_of(now or datetime.now(UTC))

    async def work(session: AsyncSession) -> int:
        keys = [key for key, _, _ in samples]
        existing = set(
            (
                await session.scalars(
                    select(StatusSample.component).where(
                        StatusSample.at == at, StatusSample.component.in_(keys)
                    )
                )
            ).all()
        )
        rows = [
            {
                "component": key[:64],
                "at": at,
                "state": state if state in RECORDED else "outage",
                "detail": detail[:255] if detail else None,
            }
            for key, state, detail in samples
            if key not in existing
        ]
        if rows:
            await session.execute(insert(StatusSample), rows)
        await _rollup(session, keys=keys, day=at)
        await _purge(session, at=at, settings=settings)
        return len(rows)

    return await transact(db, work)


async def _rollup(session: AsyncSession, *, keys: list[str], day: datetime) -> None:
    start = day.replace(hour=0, minute=0)
    counts = (
        await session.execute(
            select(
                StatusSample.component,
                *(func.sum(case((StatusSample.state == state, 1), else_=0)) for state in RECORDED),
            )
            .where(
                StatusSample.component.in_(keys),
                StatusSample.at >= start,
                StatusSample.at < start + timedelta(days=1),
            )
            .group_by(StatusSample.component)
        )
    ).all()
    await session.execute(
        delete(StatusDay).where(StatusDay.component.in_(keys), StatusDay.day == start.date())
    )
    if counts:
        await session.execute(
            insert(StatusDay),
            [
                {
                    "component": key,
                    "day": start.date(),
                    "operational": int(ok or 0),
                    "degraded": int(slow or 0),
                    "outage": int(down or 0),
                }
                for key, ok, slow, down in counts
            ],
        )


async def _purge(session: AsyncSession, *, at: datetime, settings: StatusSettings) -> None:
    if at.minute != 0:  # once an hour is plenty
        return
    await session.execute(
        delete(StatusSample).where(
            StatusSample.at < at - timedelta(days=settings.sample_retention_days)
        )
    )
    await session.execute(
        delete(StatusDay).where(
            StatusDay.day < (at - timedelta(days=settings.history_days + 1)).date()
        )
    )


Samples = list[tuple[str, str, str | None]]
MAX_PENDING = 1440  # a day of minutes kept while the database is away


async def run_once(
    *,
    db: Database,
    health: HealthService,
    settings: StatusSettings,
    now: datetime | None = None,
    pending: list[tuple[datetime, Samples]] | None = None,
) -> int:
    """Sample every component of this process's health report; returns new samples.

    When the database cannot take the samples (it is down: the very outage the page must
    show), they are kept in ``pending`` and written, with their own minutes, by the first
    run that reaches the database again."""
    at = minute_of(now or datetime.now(UTC))
    report = await health.report()
    samples: Samples = [(c.key, c.state, None) for c in components.from_report(report)]
    waiting = pending if pending is not None else []
    waiting.append((at, samples))
    del waiting[:-MAX_PENDING]
    written = 0
    while waiting:
        minute, batch = waiting[0]
        written += await record(db, samples=batch, settings=settings, now=minute)
        waiting.pop(0)
    return written
