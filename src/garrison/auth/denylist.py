"""The access-token deny list (logout): the database is the record, Redis and each
process's memory are copies.

``deny`` writes the row in the caller's transaction; ``publish`` (after the commit) puts the
token into this process's copy, writes it to the store, and announces it to every other
process (a change notice, ``garrison.store.notices``), whose copies take it in at once.
``is_denied`` answers from this process's copy first, then from the store: the rate
limiter asks the store in its own round trip (``in_store``), so an authenticated request
pays no second one, and a logout anywhere is refused everywhere at once. When the store
does not answer, the process's copy alone decides: every logout committed before an outage
is in it, because each process loads the table at start, hears the others' notices, and
re-reads new rows every ``deny_list_refresh_seconds``. So a Redis flush, a failover to an
empty replica or an outage never brings a logged-out token back, and authenticated requests
keep working while Redis is away.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.clock import aware, utcnow
from garrison.auth.models import DeniedToken
from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.store.base import KeyValueStore, StoreUnavailable
from garrison.store.notices import NoticeBus

log = get_logger("garrison.auth.denylist")

DENY_PREFIX = "auth:deny:"


def deny_key(jti: str) -> str:
    """The store key that marks ``jti`` as logged out."""
    return DENY_PREFIX + jti


TOPIC = "auth.deny"  # key: "<jti> <expiry, Unix seconds>"
# Rows are re-read from a little before the last one seen: a logout that committed late
# with an earlier timestamp is still picked up.
_OVERLAP = timedelta(seconds=30)
_PRUNE_EVERY = 60.0


class DenyList:
    def __init__(
        self,
        db: Database,
        store: KeyValueStore,
        *,
        refresh_seconds: float,
        notices: NoticeBus | None = None,
    ) -> None:
        self.db = db
        self.store = store
        self.refresh_seconds = refresh_seconds
        self.notices = notices
        if notices is not None:  # a lost subscription loses nothing: the table has it all
            notices.on(TOPIC, self._heard, lambda: None)
        self._local: dict[str, datetime] = {}  # jti -> when the token expires
        self._since: datetime | None = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self.loaded = False

    async def deny(self, session: AsyncSession, *, jti: str, expires_at: datetime) -> None:
        """Record the logout in the caller's transaction (it survives any cache)."""
        if await session.get(DeniedToken, jti) is None:
            session.add(DeniedToken(jti=jti, expires_at=expires_at, created_at=utcnow()))

    def _heard(self, key: str) -> None:
        jti, _, expires = key.partition(" ")
        with contextlib.suppress(ValueError, OverflowError, OSError):
            self._local[jti] = datetime.fromtimestamp(float(expires), UTC)

    async def publish(self, *, jti: str, expires_at: datetime) -> None:
        """After the commit: this process at once, the others by a notice and the store."""
        self._local[jti] = expires_at
        ttl = (expires_at - utcnow()).total_seconds()
        if ttl <= 0:
            return
        if self.notices is not None:
            await self.notices.announce(TOPIC, f"{jti} {expires_at.timestamp():.0f}")
        try:
            await self.store.set(deny_key(jti), b"1", ttl=ttl)
        except StoreUnavailable:
            log.warning("auth.deny.store_unavailable", during="publish")

    async def is_denied(self, jti: str, *, in_store: bool | None = None) -> bool:
        """``in_store``: the store's answer for ``jti``, when this request already has one
        (the rate limiter asks in its round trip)."""
        expires = self._local.get(jti)
        if expires is not None:
            return True
        if in_store is not None:
            return in_store
        try:
            return await self.store.get(deny_key(jti)) is not None
        except StoreUnavailable:
            return False  # the process's copy (checked above) holds every known logout

    async def refresh(self) -> int:
        """Read logouts committed since the last read into this process's copy."""
        now = utcnow()
        query = select(DeniedToken.jti, DeniedToken.expires_at).where(DeniedToken.expires_at > now)
        if self._since is not None:
            query = query.where(DeniedToken.created_at >= self._since - _OVERLAP)
        async with self.db.read_session() as session:
            rows = (await session.execute(query)).all()
        for jti, expires_at in rows:
            self._local[jti] = aware(expires_at)
        self._since = now
        self.loaded = True
        for jti in [j for j, exp in self._local.items() if exp <= now]:
            del self._local[jti]
        return len(rows)

    async def prune(self) -> None:
        """Delete rows of tokens that have expired anyway."""
        async with self.db.transaction() as session:
            await session.execute(delete(DeniedToken).where(DeniedToken.expires_at <= utcnow()))

    async def start(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(self._stop), name="garrison-deny-list")

    async def _run(self, stop: asyncio.Event) -> None:
        since_prune = 0.0
        while not stop.is_set():
            try:
                await self.refresh()
                since_prune += self.refresh_seconds
                if since_prune >= _PRUNE_EVERY:
                    since_prune = 0.0
                    await self.prune()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("auth.deny.refresh_failed", error=type(exc).__name__)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.refresh_seconds)

    async def stop(self) -> None:
        # Let a read in progress finish (cancelling aiosqlite mid-call leaves its thread
        # behind); one stuck on an unreachable database is cancelled after two seconds.
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=2.0)
