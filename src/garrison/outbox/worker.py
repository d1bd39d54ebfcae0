"""The background worker: seals new audit entries into the hash chain, delivers outbox
messages to their handlers and runs the audit retention job. ``garrison worker`` runs one
per process; in development ``garrison serve`` runs one inside each app process (several
can run at once: claims never overlap, sealers queue on the chain head)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid

from garrison.audit import retention
from garrison.audit.sealer import seal_pending
from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.ops.backup.schedule import run_backup_jobs
from garrison.outbox import service
from garrison.outbox.registry import Message, Registry, registry
from garrison.settings import Settings

log = get_logger("garrison.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        *,
        handlers: Registry = registry,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.settings = settings
        self.config = settings.worker
        self.handlers = handlers
        self.id = worker_id or new_worker_id()
        self._next_purge = time.monotonic()
        self.delivering = False

    async def _deliver(self, message: Message, deadline: float) -> str | None:
        """Run every matching handler; the error text if one failed, else None."""
        for handler in self.handlers.handlers_for(message.topic):
            try:
                async with asyncio.timeout(max(0.05, deadline - time.monotonic())):
                    await handler(message, self.db)
            except TimeoutError:
                return "handler timed out before the claim's lease ended"
            except Exception as exc:
                log.warning(
                    "outbox.handler_failed",
                    message_id=message.id,
                    topic=message.topic,
                    attempts=message.attempts,
                    error=type(exc).__name__,
                )
                return f"{type(exc).__name__}: {exc}"
        return None

    async def run_once(self) -> int:
        """Seal new audit entries (which writes their messages), then claim one batch and
        deliver it; returns how many messages were claimed."""
        await self.seal()
        async with self.db.read_session() as session:
            if not await service.has_claimable(session):
                return 0
        lease = self.config.lease_seconds
        messages = await service.claim(
            self.db, worker_id=self.id, limit=self.config.batch_size, lease_seconds=lease
        )
        self.delivering = True
        try:
            return await self._deliver_batch(messages, lease)
        finally:
            self.delivering = False

    async def _deliver_batch(self, messages: list[Message], lease: float) -> int:
        # Leave a margin so a message is acknowledged before another worker may take it.
        deadline = time.monotonic() + lease * 0.8
        done: list[int] = []
        for index, message in enumerate(messages):
            if time.monotonic() >= deadline:  # out of lease: hand the rest back untried
                rest = [m.id for m in messages[index:]]
                await service.release(self.db, ids=rest, worker_id=self.id)
                break
            error = await self._deliver(message, deadline)
            if error is None:
                done.append(message.id)
                continue
            parked = await service.fail(self.db, message=message, error=error, settings=self.config)
            if parked:
                log.error(
                    "outbox.parked", message_id=message.id, topic=message.topic, error=error[:200]
                )
        await service.ack(self.db, ids=done)
        if messages:
            log.info("outbox.batch", worker=self.id, claimed=len(messages), delivered=len(done))
        return len(messages)

    async def seal(self) -> int:
        return await seal_pending(self.db, batch_size=self.settings.audit.seal_batch_size)

    async def maybe_purge(self) -> None:
        if time.monotonic() < self._next_purge:
            return
        self._next_purge = time.monotonic() + self.settings.audit.purge_interval_seconds
        await retention.purge(self.db, settings=self.settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Work until ``stop`` is set; a batch in progress is finished first."""
        log.info("worker.started", worker=self.id, batch_size=self.config.batch_size)
        # Scheduled jobs of other domains, each self-contained, stopped with the worker.
        jobs = [asyncio.create_task(run_backup_jobs(self.settings, stop), name="backup-jobs")]
        busy = False
        while not stop.is_set():
            try:
                await self.maybe_purge()
                claimed = await self.run_once()
                if claimed >= self.config.batch_size:
                    busy = True
                    continue  # a full batch: there is probably more waiting
                # A part batch or none: the backlog is drained. Waiting for the next poll
                # lets events gather into larger batches, instead of a few transactions per
                # event while the API is busy.
                if busy or claimed:
                    busy = False
                    async with self.db.read_session() as session:
                        remaining = await service.count(session)
                    log.info("outbox.drained", worker=self.id, remaining=remaining)
            except Exception as exc:  # a database outage must not kill the loop
                log.error("worker.error", worker=self.id, error=f"{type(exc).__name__}: {exc}")
            try:
                async with asyncio.timeout(self.config.poll_interval):
                    await stop.wait()
            except TimeoutError:
                pass
        await asyncio.gather(*jobs, return_exceptions=True)
        log.info("worker.stopped", worker=self.id)

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
