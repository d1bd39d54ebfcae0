"""Brute-force protection: failure counters per subject (account, client, e-mail flow),
per client IP, and across the deployment, kept in the store.

After ``lockout_threshold`` failures of one subject within ``lockout_window_seconds``, the
subject is locked for ``base * 2^(failures - threshold)`` seconds, capped at
``lockout_max_seconds``: 429 with ``Retry-After``. An IP is locked the same way after
``lockout_ip_threshold`` failures, whatever accounts it tried. When more than
``lockout_global_per_minute`` failures happen deployment-wide in a minute, further attempts
wait for the next minute. A lock always ends: the right password works again once it has
expired (a lock slows guessing; it never locks the owner out for good). Keys hold hashes of
e-mail addresses, never the addresses. The clock is injectable so tests need not wait.

With a database, a lock is recorded in ``auth_lockouts`` too and checked there: the
database is the record, the store holds the failure counters and a copy of the lock. A
Redis flush or failover therefore forgets at most the counts towards a lock, never a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from garrison.auth.errors import LockedOut
from garrison.auth.models import LockoutState
from garrison.auth.opaque import digest
from garrison.log import get_logger
from garrison.settings import AuthSettings
from garrison.store.base import KeyValueStore, StoreUnavailable

if TYPE_CHECKING:
    from garrison.db.engine import Database

log = get_logger("garrison.auth.lockout")

_PREFIX = "auth:lock:"


class Lockout:
    def __init__(
        self,
        store: KeyValueStore,
        settings: AuthSettings,
        *,
        clock: Callable[[], float] = time.time,
        db: Database | None = None,
    ) -> None:
        self.store = store
        self.db = db
        self.settings = settings
        self.clock = clock

    @staticmethod
    def _keys(kind: str, subject: str) -> tuple[str, str]:
        tag = digest(f"{kind}:{subject.lower()}")[:32]
        return f"{_PREFIX}n:{tag}", f"{_PREFIX}u:{tag}"

    def _global_key(self) -> str:
        return f"{_PREFIX}global:{int(self.clock() // 60)}"

    async def _remaining(self, kind: str, subject: str) -> float:
        _count_key, until_key = self._keys(kind, subject)
        until = await self._recorded_until(until_key)
        try:
            raw = await self.store.get(until_key)
        except StoreUnavailable:
            if self.db is None:
                raise
            log.warning("auth.lockout.store_unavailable", during="check")
            raw = None
        if raw is not None:
            until = max(until, float(raw))
        return max(0.0, until - self.clock())

    async def _recorded_until(self, tag: str) -> float:
        if self.db is None:
            return 0.0
        async with self.db.read_session() as session:
            found = await session.scalar(
                select(LockoutState.locked_until).where(LockoutState.tag == tag[:64])
            )
        return 0.0 if found is None else _epoch(found)

    async def _record(self, tag: str, until: float) -> None:
        if self.db is None:
            return
        moment = datetime.fromtimestamp(until, UTC)
        for _attempt in (1, 2):  # a concurrent first insert makes the second an update
            try:
                async with self.db.transaction() as session:
                    row = await session.get(LockoutState, tag[:64])
                    if row is None:
                        session.add(LockoutState(tag=tag[:64], locked_until=moment))
                    elif _epoch(row.locked_until) < until:
                        row.locked_until = moment
                return
            except IntegrityError:
                continue

    async def _forget(self, tag: str) -> None:
        if self.db is None:
            return
        async with self.db.transaction() as session:
            await session.execute(delete(LockoutState).where(LockoutState.tag == tag[:64]))

    async def check(self, kind: str, subject: str, ip: str | None) -> None:
        """Raise ``LockedOut`` when the subject, the IP or the deployment is locked.

        Without its store the lockout fails open (logged): the password check still runs
        at argon2's cost, and an outage of Redis must not lock every user out."""
        try:
            await self._check(kind, subject, ip)
        except StoreUnavailable:
            log.warning("auth.lockout.store_unavailable", during="check")

    async def _check(self, kind: str, subject: str, ip: str | None) -> None:
        waits = [await self._remaining(kind, subject)]
        if ip:
            waits.append(await self._remaining("ip", ip))
        try:
            raw = await self.store.get(self._global_key())
        except StoreUnavailable:
            if self.db is None:
                raise
            raw = None
        if raw is not None and int(raw) >= self.settings.lockout_global_per_minute:
            waits.append(60 - self.clock() % 60)
        wait = max(waits)
        if wait > 0:
            raise LockedOut(wait)

    async def _count(self, kind: str, subject: str, threshold: int) -> float:
        count_key, until_key = self._keys(kind, subject)
        window = self.settings.lockout_window_seconds
        failures = await self.store.incr(count_key, ttl=window)
        if failures < threshold:
            return 0.0
        exponent = min(failures - threshold, 32)
        duration = float(
            min(
                self.settings.lockout_max_seconds,
                self.settings.lockout_base_seconds * (2.0**exponent),
            )
        )
        until = self.clock() + duration
        await self._record(until_key, until)
        # The key outlives the lock so an injected clock decides; the value decides.
        await self.store.set(until_key, repr(until).encode(), ttl=duration + window)
        return duration

    async def failed(self, kind: str, subject: str, ip: str | None) -> float:
        """Count a failure; returns the lock it caused in seconds (0 when none)."""
        try:
            return await self._failed(kind, subject, ip)
        except StoreUnavailable:
            log.warning("auth.lockout.store_unavailable", during="count")
            return 0.0

    async def _failed(self, kind: str, subject: str, ip: str | None) -> float:
        await self.store.incr(self._global_key(), ttl=120)
        duration = await self._count(kind, subject, self.settings.lockout_threshold)
        if ip:
            duration = max(
                duration, await self._count("ip", ip, self.settings.lockout_ip_threshold)
            )
        return duration

    async def succeeded(self, kind: str, subject: str) -> None:
        count_key, until_key = self._keys(kind, subject)
        try:
            await self._forget(until_key)
        except SQLAlchemyError as exc:
            log.warning("auth.lockout.record_unavailable", during="reset", error=type(exc).__name__)
        try:
            await self.store.delete(count_key)
            await self.store.delete(until_key)
        except StoreUnavailable:
            log.warning("auth.lockout.store_unavailable", during="reset")


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
