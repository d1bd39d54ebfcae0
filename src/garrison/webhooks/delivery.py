"""The webhook delivery loop the worker runs: claim due messages, send each to its
endpoint, record every attempt, retry on the endpoint's schedule.

Isolation: each endpoint has its own concurrency bound and every send takes a slot of the
global bound only once its endpoint has a free slot, so an endpoint that hangs holds at most
``endpoint_concurrency`` global slots. An endpoint with ``HOLD * endpoint_concurrency``
messages already in hand is left out of the next claim, so its backlog never crowds out
the others. Messages of one target (a record) are sent one after another, in order.

At least once: a claim is a lease (``claimed_until``). A worker killed mid-send loses its
claims when the lease ends and another worker sends those messages again with the same
``webhook-id``. Results are written in batches (one transaction per batch of outcomes).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.crypto import keyring_for
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.log import get_logger
from garrison.outbox.registry import Registry
from garrison.settings import Settings
from garrison.webhooks import service
from garrison.webhooks.models import (
    FAILED,
    PENDING,
    SUCCEEDED,
    WebhookAttempt,
    WebhookEndpoint,
    WebhookMessage,
)
from garrison.webhooks.sender import Outcome, Sender

log = get_logger("garrison.webhooks")
_messages: Table = WebhookMessage.__table__  # type: ignore[assignment]
_attempts: Table = WebhookAttempt.__table__  # type: ignore[assignment]
FLUSH_BATCH = 500
# Messages in hand per endpoint, in units of its concurrency: enough to keep its connections
# busy between claims, few enough that a hanging endpoint holds little.
HOLD = 8


async def fan_out_sink(session: AsyncSession, payloads: Sequence[Mapping[str, Any]]) -> None:
    await service.fan_out(session, events=payloads)


def install(registry: Registry) -> None:
    """Fan out sealed events to the endpoints that subscribe (in the sealing transaction)."""
    registry.register_sink("webhooks", fan_out_sink)


@dataclass
class Claimed:
    id: int
    endpoint_id: str
    msg_id: str
    body: str
    attempts: int
    ordering_key: str | None
    trigger: str


@dataclass
class Result:
    message: Claimed
    outcome: Outcome
    at: datetime


class _Rate:
    """A per-endpoint pace (deliveries per second), in this process."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self.next = time.monotonic()

    async def wait(self) -> None:
        now = time.monotonic()
        slot = max(now, self.next)
        self.next = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


class WebhookDelivery:
    def __init__(self, db: Database, settings: Settings, *, worker_id: str = "") -> None:
        self.db = db
        self.settings = settings
        self.config = settings.webhooks
        self.worker_id = worker_id
        self.keyring = keyring_for(settings)
        self.sender = Sender(self.config, development=settings.is_development)
        self._wake = asyncio.Event()
        self._results: list[Result] = []
        self._results_ready = asyncio.Event()
        self._held: dict[str, int] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._global = asyncio.Semaphore(self.config.global_concurrency)
        self._tails: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._endpoints: dict[str, WebhookEndpoint] = {}
        self._rates: dict[str, _Rate] = {}
        self._next_purge = time.monotonic()
        self._next_gauge = time.monotonic()
        # lease: long enough for the messages in hand to be sent one by one per slot
        # A claimed message may wait for HOLD sends of its endpoint before its own: the lease
        # covers that, so a slow endpoint's messages are not taken twice.
        self.lease = self.config.lease_seconds or self.config.timeout * (HOLD + 1) + 30

    def install(self, registry: Registry) -> None:
        install(registry)

    def wake(self) -> None:
        self._wake.set()

    @property
    def held(self) -> int:
        return sum(self._held.values())

    # -- claiming -------------------------------------------------------------------------

    async def _load_endpoints(self) -> None:
        async with self.db.read_session() as session:
            rows = (
                await session.scalars(
                    select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
                )
            ).all()
            for row in rows:
                session.expunge(row)
        self._endpoints = {row.id: row for row in rows}

    async def claim(self) -> list[Claimed]:
        await self._load_endpoints()
        per_endpoint = HOLD * self.config.endpoint_concurrency
        open_endpoints = [ep for ep in self._endpoints if self._held.get(ep, 0) < per_endpoint]
        room = min(self.config.batch_size, 2 * self.config.global_concurrency - self.held)
        if not open_endpoints or room <= 0:
            return []
        m = WebhookMessage

        async def work(session: AsyncSession) -> list[Claimed]:
            now = utcnow()
            rows = (
                await session.execute(
                    select(m.id, m.endpoint_id, m.msg_id, m.body, m.attempts, m.ordering_key)
                    .where(
                        m.status == PENDING,
                        m.next_attempt_at <= now,
                        or_(m.claimed_until.is_(None), m.claimed_until < now),
                        m.endpoint_id.in_(open_endpoints),
                    )
                    .order_by(m.id)
                    .limit(room)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            taken: list[Claimed] = []
            count: dict[str, int] = {}
            for row in rows:
                ep = str(row.endpoint_id)
                if self._held.get(ep, 0) + count.get(ep, 0) >= per_endpoint:
                    continue
                count[ep] = count.get(ep, 0) + 1
                taken.append(
                    Claimed(
                        int(row.id),
                        ep,
                        str(row.msg_id),
                        str(row.body),
                        int(row.attempts) + 1,
                        row.ordering_key,
                        "scheduled",
                    )
                )
            if taken:
                await session.execute(
                    update(m)
                    .where(m.id.in_([c.id for c in taken]))
                    .values(
                        claimed_until=now + timedelta(seconds=self.lease),
                        attempts=m.attempts + 1,
                    )
                )
            return taken

        return await transact(self.db, work)

    def _start(self, message: Claimed) -> None:
        self._held[message.endpoint_id] = self._held.get(message.endpoint_id, 0) + 1
        key = (message.endpoint_id, message.ordering_key or f"#{message.id}")
        before = self._tails.get(key)
        task = asyncio.create_task(self._deliver(message, before, key))
        self._tails[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(
        self, message: Claimed, before: asyncio.Task[None] | None, key: tuple[str, str]
    ) -> None:
        if before is not None:
            with contextlib.suppress(BaseException):
                await asyncio.shield(before)
        endpoint = self._endpoints.get(message.endpoint_id)
        try:
            if endpoint is None:  # disabled or deleted since the claim
                outcome = Outcome(False, None, 0.0, None, "the endpoint is disabled")
            else:
                slots = self._slots.setdefault(
                    endpoint.id, asyncio.Semaphore(self.config.endpoint_concurrency)
                )
                async with slots, self._global:
                    if endpoint.rate_per_second:
                        rate = self._rates.get(endpoint.id)
                        if rate is None or rate.interval != 1.0 / endpoint.rate_per_second:
                            rate = self._rates[endpoint.id] = _Rate(endpoint.rate_per_second)
                        await rate.wait()
                    outcome = await self._send(endpoint, message)
            self._results.append(Result(message, outcome, utcnow()))
            self._results_ready.set()
        finally:
            if self._tails.get(key) is asyncio.current_task():
                del self._tails[key]

    async def _send(self, endpoint: WebhookEndpoint, message: Claimed) -> Outcome:
        try:
            secrets = service.signing_secrets(endpoint, keyring=self.keyring)
        except Exception as exc:  # a key that is gone: record it, never crash the loop
            return Outcome(False, None, 0.0, None, f"cannot open the signing secret: {exc}")
        return await self.sender.send(
            url=endpoint.url,
            msg_id=message.msg_id,
            body=message.body,
            secrets=secrets,
            headers=dict(endpoint.headers or {}),
            pool=endpoint.id,
        )

    # -- recording ------------------------------------------------------------------------

    def _delay(self, attempts: int, outcome: Outcome) -> float | None:
        """Seconds before the next attempt, or None when the schedule is used up."""
        schedule = self.config.retry_schedule
        if attempts >= len(schedule):
            return None
        step = schedule[attempts]
        jitter = self.config.jitter
        delay = step * random.uniform(1 - jitter, 1 + jitter) if step else 0.0
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, self.config.max_retry_after_seconds))
        return delay

    async def flush(self) -> int:
        batch, self._results = self._results[:FLUSH_BATCH], self._results[FLUSH_BATCH:]
        if not self._results:
            self._results_ready.clear()
        if not batch:
            return 0
        try:
            disabled = await transact(self.db, lambda session: self._record(session, batch))
        except Exception:
            self._results = batch + self._results  # try again on the next pass
            self._results_ready.set()
            raise
        for result in batch:
            ep = result.message.endpoint_id
            self._held[ep] = max(0, self._held.get(ep, 0) - 1)
            from garrison.webhooks import metrics  # not at import: garrison.metrics.registry

            metrics.delivery(result.outcome)
        for endpoint_id, reason in disabled:
            self._endpoints.pop(endpoint_id, None)
            log.warning("webhook.endpoint.disabled", endpoint=endpoint_id, reason=reason)
        return len(batch)

    async def _record(self, session: AsyncSession, batch: list[Result]) -> list[tuple[str, str]]:
        now = utcnow()
        stored = self.config.stored_response_bytes
        await session.execute(
            insert(_attempts),
            [
                {
                    "message_id": r.message.id,
                    "endpoint_id": r.message.endpoint_id,
                    "attempted_at": r.at,
                    "succeeded": r.outcome.succeeded,
                    "status_code": r.outcome.status_code,
                    "latency_ms": round(r.outcome.latency_ms, 3),
                    "response_body": (r.outcome.body or "")[:stored] or None,
                    "error": (r.outcome.error or None) and str(r.outcome.error)[:1000],
                    "trigger": r.message.trigger,
                }
                for r in batch
            ],
        )
        updates: list[dict[str, Any]] = []
        delivered: list[int] = []
        succeeded: set[str] = set()
        failed: set[str] = set()
        gone: set[str] = set()
        for r in batch:
            ep = r.message.endpoint_id
            if r.outcome.succeeded:
                succeeded.add(ep)
                delivered.append(r.message.id)
                continue
            failed.add(ep)
            if r.outcome.gone:
                gone.add(ep)
            delay = None if r.outcome.gone else self._delay(r.message.attempts, r.outcome)
            if delay is None:
                status, next_at, finished = FAILED, r.at, r.at
            else:
                status, finished = PENDING, None
                next_at = now + timedelta(seconds=delay)
            updates.append(
                {"b_id": r.message.id, "b_status": status, "b_next": next_at, "b_done": finished}
            )
        if delivered:  # one statement for every success (the usual case)
            await session.execute(
                update(_messages)
                .where(_messages.c.id.in_(delivered))
                .values(status=SUCCEEDED, next_attempt_at=now, finished_at=now, claimed_until=None)
            )
        if updates:
            await session.execute(
                update(_messages)
                .where(_messages.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    next_attempt_at=bindparam("b_next"),
                    finished_at=bindparam("b_done"),
                    claimed_until=None,
                ),
                updates,
            )
        e = WebhookEndpoint
        if succeeded:
            await session.execute(
                update(e).where(e.id.in_(succeeded)).values(last_success_at=now, failing_since=None)
            )
        only_failed = failed - succeeded
        if only_failed:
            await session.execute(
                update(e)
                .where(e.id.in_(only_failed), e.failing_since.is_(None))
                .values(failing_since=now)
            )
        disabled: list[tuple[str, str]] = [(ep, "the endpoint answered 410 Gone") for ep in gone]
        cutoff = now - timedelta(seconds=self.config.disable_after_seconds)
        if only_failed:
            stale = (
                await session.scalars(
                    select(e.id).where(
                        e.id.in_(only_failed - gone),
                        e.enabled.is_(True),
                        e.failing_since <= cutoff,
                    )
                )
            ).all()
            hours = self.config.disable_after_seconds / 3600
            disabled += [(str(ep), f"no successful delivery for {hours:g} h") for ep in stale]
        for endpoint_id, reason in disabled:
            await self._disable(session, endpoint_id, reason)
        return disabled

    async def _disable(self, session: AsyncSession, endpoint_id: str, reason: str) -> None:
        e = WebhookEndpoint
        result = await session.execute(
            update(e)
            .where(e.id == endpoint_id, e.enabled.is_(True))
            .values(enabled=False, disabled_reason=reason[:255], updated_at=utcnow())
        )
        if not getattr(result, "rowcount", 0):
            return
        endpoint = self._endpoints.get(endpoint_id)
        url = endpoint.url if endpoint else ""
        await events.emit(
            session,
            Event(
                action="webhook.endpoint.disabled",
                actor=Actor.system(),
                target_type="webhook_endpoint",
                target_id=endpoint_id,
                data={"reason": reason, "url": url},
            ),
        )
        await alert_admins(
            session, settings=self.settings, endpoint_id=endpoint_id, url=url, reason=reason
        )

    # -- the loop -------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due and start sending it; returns how many were claimed."""
        claimed = await self.claim()
        for message in claimed:
            self._start(message)
        return len(claimed)

    async def drain(self, *, seconds: float = 60) -> None:
        """Wait for every send in flight and record the results (tests, ``--once``)."""
        async with asyncio.timeout(seconds):
            while self._tasks:
                await asyncio.wait(set(self._tasks))
        while self._results:
            await self.flush()

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now >= self._next_purge:
            self._next_purge = now + self.config.purge_interval_seconds
            cutoff = utcnow() - timedelta(days=self.config.attempt_retention_days)
            purged = await transact(self.db, lambda s: service.purge(s, older_than=cutoff))
            if purged:
                log.info("webhook.purged", rows=purged)
        if now >= self._next_gauge:
            self._next_gauge = now + 15
            from garrison.webhooks import metrics  # not at import: garrison.metrics.registry

            async with self.db.read_session() as session:
                metrics.backlog(await service.backlog(session))

    async def run(self, stop: asyncio.Event) -> None:
        flusher = asyncio.create_task(self._flush_loop(stop), name="garrison-webhooks-flush")
        try:
            while not stop.is_set():
                # Cleared before the pass, not after: a wake-up that arrives while claiming
                # (a flush freed slots, new messages were sealed) is not lost.
                self._wake.clear()
                try:
                    await self._housekeeping()
                    claimed = await self.run_once()
                except Exception as exc:  # the database may be away: keep going
                    log.error("webhook.loop_error", error=f"{type(exc).__name__}: {exc}")
                    claimed = 0
                if claimed and self.held < 2 * self.config.global_concurrency:
                    continue
                waits = [
                    asyncio.ensure_future(stop.wait()),
                    asyncio.ensure_future(self._wake.wait()),
                ]
                await asyncio.wait(
                    waits, timeout=self.config.poll_interval, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in waits:
                    waiter.cancel()
        finally:
            for task in list(self._tasks):
                task.cancel()  # unsent claims are sent again when their lease ends
            await asyncio.gather(*self._tasks, return_exceptions=True)
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
            with contextlib.suppress(Exception):
                while self._results:
                    await self.flush()
            await self.sender.close()

    async def _flush_loop(self, stop: asyncio.Event) -> None:
        while True:
            await self._results_ready.wait()
            try:
                await self.flush()
            except Exception as exc:
                log.error("webhook.flush_error", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
            # results freed slots: claim more at once
            self._wake.set()

    async def close(self) -> None:
        await self.sender.close()


async def alert_admins(
    session: AsyncSession, *, settings: Settings, endpoint_id: str, url: str, reason: str
) -> int:
    """Queue an e-mail to every admin (through the outbox, so it is retried)."""
    from garrison.auth import users
    from garrison.outbox import mail as mail_outbox

    keyring = keyring_for(settings)
    sent = 0
    for address in await users.emails_with_role(session, role="admin"):
        message = EmailMessage()
        message["To"] = address
        message["Subject"] = "A webhook endpoint was disabled"
        message.set_content(
            f"Garrison disabled the webhook endpoint {endpoint_id} ({url}).\n\n"
            f"Reason: {reason}\n\nFix the receiver, then enable the endpoint again and "
            f"recover the failed messages: POST /api/v1/webhooks/{endpoint_id}/recover\n"
        )
        await mail_outbox.queue(session, message=message, keyring=keyring)
        sent += 1
    return sent
