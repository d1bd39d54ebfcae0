"""Admin-set rate-limit quotas, and the cached lookup the rate-limit layer asks per request.

An API key's own quota wins; otherwise the most generous quota among the caller's roles;
otherwise the environment default applies. The lookup keeps the whole (small) table in each
process's memory: every change marks its transaction with a change notice
(``garrison.store.notices``), so once it commits this process drops its copy at once and the
others when the notice arrives; the copy is also re-read every ``quota_cache_seconds``.
While the notice bus is down the table comes through the shared cache instead, whose
``quotas`` namespace every change invalidates once it has committed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.db.engine import Database
from garrison.errors import Conflict
from garrison.events import Actor, Event
from garrison.log import get_logger
from garrison.quotas.errors import QuotaNotFound
from garrison.quotas.models import RateLimitQuota
from garrison.quotas.schemas import SubjectType
from garrison.store.cache import Cache
from garrison.store.notices import NoticeBus, mark
from garrison.store.ratelimit import Rate

CACHE_NAMESPACE = "quotas"
TOPIC = "quotas"
log = get_logger("garrison.quotas")


async def list_quotas(session: AsyncSession) -> list[RateLimitQuota]:
    result = await session.scalars(
        select(RateLimitQuota).order_by(RateLimitQuota.subject_type, RateLimitQuota.subject)
    )
    return list(result)


async def get_quota(
    session: AsyncSession, *, subject_type: SubjectType, subject: str
) -> RateLimitQuota:
    quota = await session.scalar(
        select(RateLimitQuota).where(
            RateLimitQuota.subject_type == subject_type, RateLimitQuota.subject == subject
        )
    )
    if quota is None:
        raise QuotaNotFound(f"no quota for {subject_type} {subject!r}")
    return quota


async def set_quota(
    session: AsyncSession,
    *,
    subject_type: SubjectType,
    subject: str,
    requests_per_minute: int,
    burst: int | None,
    actor: Actor,
) -> tuple[RateLimitQuota, bool]:
    """Create or replace the quota; returns it and whether it was created."""
    now = datetime.now(UTC)
    try:
        quota = await get_quota(session, subject_type=subject_type, subject=subject)
    except QuotaNotFound:
        quota = RateLimitQuota(
            subject_type=subject_type,
            subject=subject,
            requests_per_minute=requests_per_minute,
            burst=burst,
            created_at=now,
            updated_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(quota)
                await session.flush()
        except IntegrityError:  # created by a concurrent request since we looked
            raise Conflict(f"the quota for {subject_type} {subject!r} changed; retry") from None
        mark(session, TOPIC)
        await events.emit(
            session,
            Event(
                action="quota.created",
                actor=actor,
                target_type="quota",
                target_id=f"{subject_type}:{subject}",
                data={"requests_per_minute": requests_per_minute, "burst": burst},
            ),
        )
        return quota, True
    changes = {
        "requests_per_minute": (quota.requests_per_minute, requests_per_minute),
        "burst": (quota.burst, burst),
    }
    quota.requests_per_minute = requests_per_minute
    quota.burst = burst
    quota.updated_at = now
    await session.flush()
    mark(session, TOPIC)
    await events.emit(
        session,
        Event(
            action="quota.updated",
            actor=actor,
            target_type="quota",
            target_id=f"{subject_type}:{subject}",
            changes=changes,
            data={"requests_per_minute": requests_per_minute, "burst": burst},
        ),
    )
    return quota, False


async def delete_quota(
    session: AsyncSession, *, subject_type: SubjectType, subject: str, actor: Actor
) -> None:
    quota = await get_quota(session, subject_type=subject_type, subject=subject)
    await session.execute(delete(RateLimitQuota).where(RateLimitQuota.id == quota.id))
    mark(session, TOPIC)
    await events.emit(
        session,
        Event(
            action="quota.deleted",
            actor=actor,
            target_type="quota",
            target_id=f"{subject_type}:{subject}",
        ),
    )


def _rate(entry: Sequence[Any]) -> Rate:
    return Rate.per_minute(int(entry[0]), int(entry[1]) if entry[1] is not None else None)


class QuotaLookup:
    """``await lookup(principal, roles)`` → the caller's quota, or None for the default.

    A failure (database or cache) is logged and answered with None: the default policy
    still applies, the request is never refused because the lookup broke."""

    def __init__(
        self, *, db: Database, cache: Cache, ttl: float, notices: NoticeBus | None = None
    ) -> None:
        self.db = db
        self.cache = cache
        self.ttl = ttl
        self.notices = notices
        self._copy: tuple[float, dict[str, list[int | None]]] | None = None
        self._epoch = 0  # moves with every notice: a load begun before one is not kept
        self._flight: asyncio.Future[dict[str, list[int | None]]] | None = None
        if notices is not None:
            notices.on(TOPIC, lambda _key: self._drop(), self._drop)

    def _drop(self) -> None:
        self._epoch += 1
        self._copy = None

    async def _load(self) -> dict[str, list[int | None]]:
        async with self.db.read_session() as session:
            quotas = await list_quotas(session)
        return {f"{q.subject_type}:{q.subject}": [q.requests_per_minute, q.burst] for q in quotas}

    async def table(self) -> dict[str, list[int | None]]:
        if self.ttl <= 0:
            return await self._load()
        if self.notices is None or not self.notices.live:
            return await self.cache.get_or_load(CACHE_NAMESPACE, "all", self._load, ttl=self.ttl)
        copy = self._copy
        if copy is not None and time.monotonic() - copy[0] < self.ttl:
            return copy[1]
        if self._flight is None:  # one load per process, however many requests wait
            self._flight = asyncio.ensure_future(self._load_copy())
        flight = self._flight
        return await asyncio.shield(flight)

    async def _load_copy(self) -> dict[str, list[int | None]]:
        epoch = self._epoch
        try:
            table = await self._load()
        finally:
            self._flight = None
        if epoch == self._epoch:
            self._copy = (time.monotonic(), table)
        return table

    async def __call__(self, principal: str, roles: Sequence[str]) -> Rate | None:
        api_key = principal.removeprefix("key:") if principal.startswith("key:") else None
        if api_key is None and not roles:
            return None  # anonymous and role-less callers never cost a lookup
        try:
            table = await self.table()
        except Exception as exc:
            log.warning("quotas.lookup_failed", error=type(exc).__name__)
            return None
        if api_key is not None and f"api_key:{api_key}" in table:
            return _rate(table[f"api_key:{api_key}"])
        candidates = [_rate(table[f"role:{r}"]) for r in roles if f"role:{r}" in table]
        if not candidates:
            return None
        return max(candidates, key=lambda rate: (rate.limit, rate.burst))

    async def invalidate(self) -> None:
        """After a change has committed: this process's copy and the shared cache."""
        self._drop()
        await invalidate_cache(self.cache)


async def invalidate_cache(cache: Cache) -> None:
    """Make every process re-read the quotas (call after the change has committed)."""
    await cache.invalidate_namespace(CACHE_NAMESPACE)
