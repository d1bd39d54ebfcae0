"""The background worker: a small scheduler for the jobs the domains provide.

``garrison worker`` runs one per process; in development ``garrison serve`` runs one inside
each app process (several can run at once: outbox claims never overlap, sealers queue on the
chain head). Each pass runs the *per-pass* jobs in order (sealing new audit entries, which
writes their outbox messages, then delivering a batch), and every *periodic* job whose time
has come (audit retention, …). A full delivery batch means more is probably waiting, so the
next pass starts at once; otherwise the worker waits for the poll interval, which lets
events gather into larger batches while the API is busy. Besides the jobs, the worker
supervises long-running *tasks* (``standard_tasks``: the backup schedule and log archiver),
started and stopped with ``Worker.run``.

This package sits above the domains: it imports their jobs; no domain imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from garrison.audit import retention
from garrison.audit.sealer import seal_pending
from garrison.auth.oauth import retention as oauth_retention
from garrison.db.engine import Database
from garrison.files import jobs as files_jobs
from garrison.files.storage import open_storage
from garrison.log import get_logger
from garrison.ops.backup.schedule import run_backup_jobs
from garrison.ops.jobs import OpsJobs
from garrison.outbox.delivery import Delivery, new_worker_id
from garrison.outbox.mail import MailConsumer
from garrison.outbox.registry import Registry, registry
from garrison.privacy import export as privacy_export
from garrison.privacy import retention as privacy_retention
from garrison.settings import Settings
from garrison.store.wake import Waiter
from garrison.webhooks.delivery import WebhookDelivery

__all__ = ["Job", "Task", "Worker", "new_worker_id", "standard_jobs", "standard_tasks"]

log = get_logger("garrison.worker")


@dataclass(frozen=True)
class Job:
    """One unit of background work. ``run`` returns how much it did (for the log);
    ``every`` is the seconds between two runs (``None``: once per pass)."""

    name: str
    run: Callable[[], Awaitable[object]]
    every: float | None = None


@dataclass(frozen=True)
class Task:
    """A long-running supervised piece of background work: ``run(stop)`` works until
    ``stop`` is set, then returns. ``Worker.run`` starts every task when it starts and
    waits for them (cancels them, if the worker itself is cancelled) when it stops. For
    work that cannot be cut into periodic ``Job`` runs: the backup schedule holds the
    installation's ``backup.schedule`` lease and supervises the log archiver's child
    process."""

    name: str
    run: Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def standard_tasks(db: Database, settings: Settings) -> list[Task]:
    """The supervised tasks every worker runs: one line per domain task."""
    return [
        Task("backup.schedule", lambda stop: run_backup_jobs(settings, stop, db)),
    ]


def standard_jobs(db: Database, settings: Settings) -> list[Job]:
    """The jobs every worker runs besides sealing and delivery: one line per domain job."""

    async def audit_purge() -> object:
        return await retention.purge(db, settings=settings)

    ops = OpsJobs(db, settings)
    status = settings.status

    async def privacy_retention_apply() -> object:
        return await privacy_retention.apply(db, settings)

    async def privacy_exports_recover() -> object:
        return await privacy_export.recover(db, settings)

    async def oauth_purge() -> object:
        return await oauth_retention.purge(db)

    async def files_sweep() -> object:
        storage = open_storage(settings)
        try:
            return await files_jobs.sweep(db, storage, settings)
        finally:
            await storage.close()

    async def files_repair() -> object:
        return await files_jobs.repair_replica(settings)

    return [
        Job("audit.purge", audit_purge, every=settings.audit.purge_interval_seconds),
        Job("status.sample", ops.sample, every=status.sample_interval_seconds),
        Job("status.announce", ops.announce, every=status.maintenance_poll_seconds),
        Job("alerts.evaluate", ops.evaluate, every=status.alerts.interval_seconds),
        Job(
            "privacy.retention",
            privacy_retention_apply,
            every=settings.audit.purge_interval_seconds,
        ),
        Job(
            "privacy.exports",
            privacy_exports_recover,
            every=settings.privacy.export_recover_seconds,
        ),
        Job("auth.oauth.purge", oauth_purge, every=settings.audit.purge_interval_seconds),
        Job("files.sweep", files_sweep, every=settings.files.sweep_interval_seconds),
        Job("files.repair", files_repair, every=settings.files.repair_interval_seconds),
    ]


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        handlers: Registry = registry,
        worker_id: str | None = None,
        jobs: Sequence[Job] | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.config = settings.worker
        self.handlers = handlers
        # Built-in consumers: queued mail, file deletions, and webhooks (their own delivery loop).
        MailConsumer(settings).install(handlers)
        files_jobs.FileCleanup.from_settings(settings).install(handlers)
        self.webhooks = WebhookDelivery(db, settings) if settings.webhooks.enabled else None
        if self.webhooks is not None:
            self.webhooks.install(handlers)
        self.delivery = Delivery(db, settings.worker, handlers=handlers, worker_id=worker_id)
        self.id = self.delivery.id
        self.jobs = list(standard_jobs(db, settings) if jobs is None else jobs)
        self.tasks = list(standard_tasks(db, settings) if tasks is None else tasks)
        self._due = dict.fromkeys((job.name for job in self.jobs if job.every), time.monotonic())

    @property
    def delivering(self) -> bool:
        return self.delivery.delivering

    async def seal(self) -> int:
        sealed = await seal_pending(
            self.db, batch_size=self.settings.audit.seal_batch_size, registry=self.handlers
        )
        if sealed and self.webhooks is not None:
            self.webhooks.wake()
        return sealed

    async def run_once(self) -> int:
        """One pass of the per-pass jobs: seal new audit entries (which writes their
        messages), run the other per-pass jobs, then claim one batch and deliver it;
        returns how many messages were claimed."""
        await self.seal()
        for job in self.jobs:
            if job.every is None:
                await job.run()
        return await self.delivery.run_once()

    async def run_due(self) -> None:
        """Run each periodic job whose time has come; one failing does not stop the rest."""
        now = time.monotonic()
        for job in self.jobs:
            if job.every is None or now < self._due[job.name]:
                continue
            self._due[job.name] = now + job.every
            try:
                await job.run()
            except Exception as exc:
                log.error("worker.job_failed", job=job.name, error=f"{type(exc).__name__}: {exc}")

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; a batch in progress is finished first."""
        log.info("worker.started", worker=self.id, batch_size=self.config.batch_size)
        waiter = Waiter(self.settings.redis_url, self.settings.redis_prefix)
        webhooks = None
        if self.webhooks is not None:
            webhooks = asyncio.create_task(self.webhooks.run(stop), name="garrison-webhooks")
        supervised = [
            asyncio.create_task(task.run(stop), name=f"garrison-{task.name}") for task in self.tasks
        ]
        try:
            await self._loop(stop, waiter)
        finally:
            await waiter.close()
            if webhooks is not None:
                stop.set()
                await webhooks
            # ``stop`` is set: the tasks finish on their own; wait for them. Cancelled without
            # ``stop`` (or cancelled again while waiting): the tasks are cancelled too.
            if not stop.is_set():
                for running in supervised:
                    running.cancel()
            for name, outcome in zip(
                (task.name for task in self.tasks),
                await asyncio.gather(*supervised, return_exceptions=True),
                strict=True,
            ):
                if isinstance(outcome, Exception):
                    log.error(
                        "worker.task_failed",
                        task=name,
                        error=f"{type(outcome).__name__}: {outcome}"[:300],
                    )
        log.info("worker.stopped", worker=self.id)

    async def _loop(self, stop: asyncio.Event, waiter: Waiter) -> None:
        busy = False
        while not stop.is_set():
            try:
                await self.run_due()
                claimed = await self.run_once()
                if claimed >= self.config.batch_size:
                    busy = True
                    continue  # a full batch: there is probably more waiting
                if busy or claimed:
                    busy = False
                    remaining = await self.delivery.remaining()
                    log.info("outbox.drained", worker=self.id, remaining=remaining)
            except Exception as exc:  # a database outage must not kill the loop
                log.error("worker.error", worker=self.id, error=f"{type(exc).__name__}: {exc}")
            # Woken at once when an event commits (in this process, or through Redis).
            await waiter.wait(stop, self.config.poll_interval)

    async def shutdown(
        self, stop: asyncio.Event, task: asyncio.Task[None], *, grace: float = 1.0
    ) -> None:
        """Stop the task running ``run``. An idle worker returns at once; a batch being
        delivered is finished; a poll stuck on a database that hangs is cancelled after
        ``grace`` seconds, which loses nothing: unacknowledged claims are delivered again
        when their lease ends."""
        stop.set()
        while not task.done():
            await asyncio.wait({task}, timeout=grace)
            if not task.done() and not self.delivering:
                task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
