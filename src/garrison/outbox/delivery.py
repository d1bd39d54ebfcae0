"""Delivering outbox messages: claim a batch, run each message's handlers, acknowledge,
retry or park. One ``Delivery`` per worker; several workers (processes) may run at once:
claims never overlap. The worker (``garrison.worker``) runs it as one of its jobs."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid

from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.outbox import service
from garrison.outbox.registry import Message, Registry, registry
from garrison.settings import WorkerSettings

log = get_logger("garrison.outbox")


def new_worker_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Delivery:
    """Claims and delivers outbox messages for one worker (``worker_id``)."""

    def __init__(
        self,
        db: Database,
        config: WorkerSettings,
        *,
        handlers: Registry = registry,
        worker_id: str | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.handlers = handlers
        self.id = worker_id or new_worker_id()
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
        """Claim one batch and deliver it; returns how many messages were claimed."""
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

    async def remaining(self) -> int:
        async with self.db.read_session() as session:
            return await service.count(session)
