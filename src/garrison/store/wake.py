"""Waking the worker when events commit, instead of waiting for its next poll.

A transaction that wrote an event marks its session (``on_commit``); once it commits, every
worker waiting in this process is woken at once, and with Redis a message on the
``<prefix>outbox:wake`` channel wakes the workers of the other processes. A lost wake-up
costs one poll interval, nothing else: the poll stays as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from garrison.log import get_logger

log = get_logger("garrison.store.wake")
_FLAG = "garrison_wake"
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()


def channel(prefix: str) -> str:
    return f"{prefix}outbox:wake"


def on_commit(session: AsyncSession) -> None:
    """Wake the workers once ``session``'s transaction has committed."""
    session.sync_session.info[_FLAG] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_FLAG, False):
        notify()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_FLAG, None)


def notify() -> None:
    for loop, waiter in list(_waiters):
        if loop.is_closed():
            _waiters.discard((loop, waiter))
            continue
        loop.call_soon_threadsafe(waiter.set)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    for publisher in list(_publishers):
        if publisher.loop is loop:
            publisher.publish()


class _Publisher:
    """Wake-ups sent on Redis by one runtime; its client belongs to the loop it opened on."""

    def __init__(self, client: Any, name: str) -> None:
        self.loop = asyncio.get_running_loop()
        self.client = client
        self.name = name
        self.pending: set[asyncio.Task[None]] = set()

    def publish(self) -> None:
        task = self.loop.create_task(self._publish())
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def _publish(self) -> None:
        try:
            await self.client.publish(self.name, b"1")
        except Exception as exc:  # the poll still finds the work
            log.debug("outbox.wake_failed", error=type(exc).__name__)

    async def close(self) -> None:
        """Stop publishing and wait for the messages in flight, before the client closes."""
        with contextlib.suppress(ValueError):
            _publishers.remove(self)
        if self.pending:
            await asyncio.gather(*self.pending, return_exceptions=True)


_publishers: list[_Publisher] = []


def use_redis(client: Any, prefix: str) -> Callable[[], Awaitable[None]]:
    """Publish wake-ups on Redis too (``garrison serve`` with a Redis URL), until the
    returned coroutine function is awaited; await it before ``client`` closes."""
    publisher = _Publisher(client, channel(prefix))
    _publishers.append(publisher)
    return publisher.close


class Waiter:
    """What a worker waits on: a local signal, fed by Redis when a URL is given."""

    def __init__(self, redis_url: str | None = None, prefix: str = "garrison:") -> None:
        self.event = asyncio.Event()
        self._entry = (asyncio.get_running_loop(), self.event)
        _waiters.add(self._entry)
        self._task: asyncio.Task[None] | None = None
        if redis_url:
            self._task = asyncio.create_task(self._listen(redis_url, channel(prefix)))

    async def _listen(self, url: str, name: str) -> None:
        while True:
            client = aioredis.Redis.from_url(url)
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(name)
                    async for item in pubsub.listen():
                        if item.get("type") == "message":
                            self.event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("outbox.wake_listen_failed", error=type(exc).__name__)
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()

    async def wait(self, stop: asyncio.Event, seconds: float) -> None:
        """Until woken, stopped, or ``seconds``; clears the signal."""
        if not self.event.is_set() and not stop.is_set():
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.event.wait())]
            try:
                await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()
        self.event.clear()

    async def close(self) -> None:
        _waiters.discard(self._entry)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
