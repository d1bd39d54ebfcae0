"""The worker's backup jobs, self-contained so any scheduler can run them: the daily full
at ``BACKUP__FULL_AT`` (UTC), retention after it, the weekly verification of the latest
full, and the supervised log archiver (``BACKUP__STREAM``). One process of the whole
installation runs them, on whichever host holds the ``backup.schedule`` lease
(``garrison.ops.leases``); the other workers wait to take it over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time as time_
from datetime import UTC, datetime, time, timedelta

from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.ops import leases
from garrison.ops.backup import manifest, service
from garrison.settings import Settings

log = get_logger("garrison.backup")
_RETRY_AFTER = timedelta(minutes=15)
_TICK_SECONDS = 30.0
LEASE = "backup.schedule"
LEASE_TTL = timedelta(seconds=60)
_RENEW_SECONDS = 15.0
_ASK_SECONDS = 30.0


def due_slot(now: datetime, full_at: str) -> datetime:
    """The most recent scheduled time at or before ``now``."""
    hours, minutes = (int(part) for part in full_at.split(":"))
    slot = datetime.combine(now.date(), time(hours, minutes), tzinfo=UTC)
    return slot if slot <= now else slot - timedelta(days=1)


class BackupJobs:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._failed_at: datetime | None = None
        self._started = datetime.now(UTC)

    async def tick(self, now: datetime | None = None) -> str | None:
        """Do what is due; the name of what was done, if anything."""
        now = now or datetime.now(UTC)
        config = self.settings.backup
        status = await service.backup_status(settings=self.settings)
        from garrison.ops.backup import metrics  # not at import: see garrison.metrics.registry

        metrics.observe(status)
        if config.schedule:
            slot = due_slot(now, config.full_at)
            last = status.last_full
            retry_ok = self._failed_at is None or now - self._failed_at >= _RETRY_AFTER
            # With no backup yet, the first one is taken at the next scheduled time (a
            # process starting is no reason to dump the database).
            missed = last.started_at < slot if last else slot >= self._started
            if missed and retry_ok:
                try:
                    made = await service.create_backup(settings=self.settings)
                except Exception as exc:
                    self._failed_at = now
                    await service.report_failure(
                        settings=self.settings, operation="create", error=exc
                    )
                    return "create-failed"
                self._failed_at = None
                log.info("backup.created", id=made.id, bytes=made.size)
                ctx = service.Context.of(self.settings)
                await asyncio.to_thread(service.prune_sync, ctx)
                return "create"
        if config.verify_every_days and status.last_full is not None:
            return await self._maybe_verify(status.last_full, now)
        return None

    async def _maybe_verify(self, last: manifest.Manifest, now: datetime) -> str | None:
        ctx = service.Context.of(self.settings)
        done = await asyncio.to_thread(manifest.load_verification, ctx.storage, last.id)
        if done is not None:
            return None
        # The latest full has not been verified: verify it if none was within the period.
        every = timedelta(days=self.settings.backup.verify_every_days)
        fulls = await asyncio.to_thread(manifest.list_all, ctx.storage)
        for item in reversed(fulls):
            check = await asyncio.to_thread(manifest.load_verification, ctx.storage, item.id)
            if check is not None and now - check.verified_at < every:
                return None
        result = await service.verify_backup(settings=self.settings, backup_id=last.id)
        from garrison.ops.backup import metrics  # not at import: see garrison.metrics.registry

        metrics.LAST_RESTORE.set(result.restore_seconds)
        if not result.ok:
            await service.report_failure(
                settings=self.settings,
                operation="verify",
                error=RuntimeError(result.detail),
            )
            return "verify-failed"
        return "verify"


async def _pause(event: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()


async def run_backup_jobs(
    settings: Settings,
    stop: asyncio.Event,
    db: Database,
    *,
    ask_every: float = _ASK_SECONDS,
    renew_every: float = _RENEW_SECONDS,
) -> None:
    """Run the schedule (and the archiver when ``BACKUP__STREAM`` is on) until ``stop``, in
        the one process of the installation that holds the ``backup.schedule`` lease; the others
        ask for it every ``ask_every`` seconds and take over once its holder stops renewing (the
    holder renews it every ``renew_every`` seconds)."""
    config = settings.backup
    if not (config.schedule or config.stream or config.verify_every_days):
        return
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    while not stop.is_set():
        if await _renew(db, holder) is True:
            log.info("backup.schedule.lease_taken", holder=holder)
            try:
                await _while_held(settings, stop, db, holder, renew_every)
            finally:
                with contextlib.suppress(Exception):  # it expires by itself
                    await leases.release(db, LEASE, holder)
        await _pause(stop, ask_every)


async def _renew(db: Database, holder: str) -> bool | None:
    """Take or renew the lease: True, False (another holder has it), None (the database
    could not say)."""
    try:
        return await leases.acquire(db, LEASE, holder, ttl=LEASE_TTL)
    except Exception as exc:
        log.warning("backup.schedule.lease_error", error=f"{type(exc).__name__}: {exc}"[:300])
        return None


async def _while_held(
    settings: Settings, stop: asyncio.Event, db: Database, holder: str, renew_every: float
) -> None:
    """Run the jobs until ``stop``, or until the lease is lost: another holder has it, or it
    could not be renewed for nearly its whole length (it may have expired meanwhile). A
    backup already running in its thread finishes first."""
    halt = asyncio.Event()

    async def forward_stop() -> None:
        await stop.wait()
        halt.set()

    async def keep() -> None:
        renewed = time_.monotonic()
        while not halt.is_set():
            await _pause(halt, renew_every)
            if halt.is_set():
                return
            held = await _renew(db, holder)
            if held:
                renewed = time_.monotonic()
                continue
            late = time_.monotonic() - renewed > LEASE_TTL.total_seconds() - renew_every
            if held is False or late:
                log.warning("backup.schedule.lease_lost", holder=holder)
                halt.set()

    helpers = [asyncio.create_task(forward_stop()), asyncio.create_task(keep())]
    archiving: asyncio.Task[None] | None = None
    try:
        if settings.backup.stream:
            archiver = service.archiver(settings)
            archiving = asyncio.create_task(archiver.run(halt), name="garrison-backup-stream")
        jobs = BackupJobs(settings)
        while not halt.is_set():
            try:
                await jobs.tick()
            except Exception as exc:  # storage or database outage: try again next tick
                log.error("backup.schedule_error", error=f"{type(exc).__name__}: {exc}"[:300])
            await _pause(halt, _TICK_SECONDS)
    finally:
        halt.set()
        if archiving is not None:
            await archiving
        for helper in helpers:
            helper.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
