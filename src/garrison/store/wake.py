"""Waking the worker when events commit, instead of waiting for its next poll.

A transaction that wrote an event marks its session (``on_commit``); once it commits, every
worker waiting in this process is woken at once, and with Redis a message on the
``<prefix>outbox:wake`` channel wakes the workers of the other processes. A lost wake-up
costs one poll interval, nothing else: the poll stays as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import redis.asyncio as aioredis
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from garrison.log import get_logger

log = get_logger("garrison.store.wake")
_FLAG = "garrison_wake"
_waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
_publisher: tuple[Any, str] | None = None
_pending: set[asyncio.Task[Any]] = set()


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
    if _publisher is None:
        return
    client, name = _publisher
    try:
        task = asyncio.get_running_loop().create_task(_publish(client, name))
    except RuntimeError:
        return
    _pending.add(task)
    task.add_done_callback(_pending.discard)


async def _publish(client: Any, name: str) -> None:
    try:
        await client.publish(name, b"1")
    except Exception as exc:  # the poll still finds the work
        log.debug("outbox.wake_failed", error=type(exc).__name__)


def use_redis(client: Any, prefix: str) -> None:
    """Publish wake-ups on Redis too (``garrison serve`` with a Redis URL)."""
    global _publisher
    _publisher = (client, channel(prefix))


def stop_redis() -> None:
    global _publisher
    _publisher = None


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
