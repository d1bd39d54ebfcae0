"""The worker's backup jobs, self-contained so any scheduler can run them: the daily full
at ``BACKUP__FULL_AT`` (UTC), retention after it, the weekly verification of the latest
full, and the supervised log archiver (``BACKUP__STREAM``). One process per host runs them
(an exclusive lock file in the data directory); the others wait for the lock."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from datetime import UTC, datetime, time, timedelta

from garrison.log import get_logger
from garrison.ops.backup import manifest, service
from garrison.settings import Settings

log = get_logger("garrison.backup")
_RETRY_AFTER = timedelta(minutes=15)
_TICK_SECONDS = 30.0


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


def _try_lock(settings: Settings) -> int | None:
    path = settings.data_dir / "backup-spool" / "scheduler.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


async def run_backup_jobs(settings: Settings, stop: asyncio.Event) -> None:
    """Run the schedule (and the archiver when ``BACKUP__STREAM`` is on) until ``stop``."""
    config = settings.backup
    if not (config.schedule or config.stream or config.verify_every_days):
        return
    fd = None
    while fd is None:
        fd = _try_lock(settings)
        if fd is None:  # another process on this host runs them
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await stop.wait()
            if stop.is_set():
                return
    archiving: asyncio.Task[None] | None = None
    try:
        if config.stream:
            archiver = service.archiver(settings)
            archiving = asyncio.create_task(archiver.run(stop), name="garrison-backup-stream")
        jobs = BackupJobs(settings)
        while not stop.is_set():
            try:
                await jobs.tick()
            except Exception as exc:  # storage or database outage: try again next tick
                log.error("backup.schedule_error", error=f"{type(exc).__name__}: {exc}"[:300])
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_TICK_SECONDS):
                    await stop.wait()
    finally:
        if archiving is not None:
            await archiving
        os.close(fd)
