"""Change notices: how a process's in-memory copies of shared state learn that it changed.

The hot path keeps some state in each process's memory (a user's status and roles, the
access-token deny list, the quota table) instead of asking the database or Redis on every
request. Whatever changes that state says so:

- inside a transaction, ``mark(session, topic, key)``: once the transaction commits, every
  bus of this process hears the notice at once (synchronously, before the commit returns
  to the caller, so the caller's next request already sees the change), and the notice is
  published to the other processes;
- outside one, ``await bus.announce(topic, key)``.

A ``NoticeBus`` per runtime carries notices between processes over Redis pub/sub (one
channel, ``<prefix>notices``). A bus is *live* while its subscription is up. Caches may only
trust their copy while the bus is live; each time the subscription (re)starts, every
handler's ``reset`` runs, so notices missed while it was down cost nothing. Without Redis
(the embedded default) a bus is never live: a command run beside the server could not tell
it what changed, so the caches step aside and the database answers, as it does on SQLite
at little cost. ``propagation_seconds`` (measured by ``bench/notices.py``) is the time a
notice takes to reach another process.

Command-line processes have no runtime: ``run_with_notices`` gives the coroutine of a
command a publish-only bus, so a role changed with ``garrison`` reaches the servers too.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from garrison.log import get_logger
from garrison.store.base import StoreUnavailable
from garrison.store.pubsub import MemoryPubSub, PubSub, Subscription

log = get_logger("garrison.store.notices")
CHANNEL = "notices"
_MARKS = "garrison_notices"
_RETRY_MAX = 5.0
T = TypeVar("T")


@dataclass(frozen=True)
class Handler:
    on_notice: Callable[[str], None]  # the key of a notice of this topic
    reset: Callable[[], None]  # forget everything (the bus was not listening)


class NoticeBus:
    """``live``: every change made anywhere in the deployment reaches this process (its
    Redis subscription is up). On the in-process broadcast a bus only delivers locally."""

    def __init__(self, pubsub: PubSub) -> None:
        self.pubsub = pubsub
        self.shared = not isinstance(pubsub, MemoryPubSub)
        self.origin = uuid.uuid4().hex
        self.loop: asyncio.AbstractEventLoop | None = None
        self.live = False
        self.subscribed = asyncio.Event()
        self._handlers: dict[str, list[Handler]] = {}
        self._task: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()

    def on(self, topic: str, on_notice: Callable[[str], None], reset: Callable[[], None]) -> None:
        self._handlers.setdefault(topic, []).append(Handler(on_notice, reset))

    def deliver(self, topic: str, key: str) -> None:
        """Hand a notice to this process's handlers (no publishing)."""
        for handler in self._handlers.get(topic, ()):
            handler.on_notice(key)

    def _reset(self) -> None:
        for handlers in self._handlers.values():
            for handler in handlers:
                handler.reset()

    async def announce(self, topic: str, key: str = "") -> None:
        """This process at once, then the others (best effort: see the module docstring)."""
        self.deliver(topic, key)
        await self._publish(topic, key)

    def publish_soon(self, topic: str, key: str) -> None:
        """Deliver here now and publish from a task (for synchronous callers)."""
        self.deliver(topic, key)
        if self.loop is None or self.loop.is_closed():
            return
        task = self.loop.create_task(self._publish(topic, key))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, topic: str, key: str) -> None:
        if not self.shared:
            return  # the in-process broadcast: delivered above
        message = f"{self.origin}|{topic}|{key}".encode()
        try:
            await self.pubsub.publish(CHANNEL, message)
        except StoreUnavailable as exc:  # the others' subscriptions reset when they return
            log.warning("notices.publish_failed", topic=topic, error=type(exc).__name__)

    async def start(self, *, listen: bool = True) -> None:
        self.loop = asyncio.get_running_loop()
        _buses.add(self)
        if self.shared and listen:
            self._task = asyncio.create_task(self._listen(), name="garrison-notices")

    async def stop(self) -> None:
        _buses.discard(self)
        self.live = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        await self.pubsub.close()

    async def _listen(self) -> None:
        pause = 0.1
        while True:
            subscription: Subscription | None = None
            try:
                subscription = await self.pubsub.subscribe(CHANNEL)
                self._reset()  # whatever changed while nobody here was listening
                self.live = True
                self.subscribed.set()
                pause = 0.1
                while True:
                    message = await subscription.next(1.0)
                    if message is not None:
                        self._heard(message)
            except (StoreUnavailable, OSError, TimeoutError) as exc:
                if self.live:
                    log.warning("notices.subscription_lost", error=type(exc).__name__)
                self.live = False
                self.subscribed.clear()
                await asyncio.sleep(pause)
                pause = min(pause * 2, _RETRY_MAX)
            finally:
                if subscription is not None:
                    with contextlib.suppress(Exception):
                        await subscription.close()

    def _heard(self, message: bytes) -> None:
        origin, _, rest = message.decode(errors="replace").partition("|")
        topic, _, key = rest.partition("|")
        if origin != self.origin:
            self.deliver(topic, key)


_buses: set[NoticeBus] = set()


def mark(session: AsyncSession, topic: str, key: str = "") -> None:
    """Announce ``topic``/``key`` once ``session``'s transaction commits (dropped on a
    rollback)."""
    marks: list[tuple[str, str]] = session.sync_session.info.setdefault(_MARKS, [])
    if (topic, key) not in marks:
        marks.append((topic, key))


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    marks: list[tuple[str, str]] = session.info.pop(_MARKS, [])
    if not marks:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    for bus in list(_buses):
        for topic, key in marks:
            if bus.loop is loop:
                bus.publish_soon(topic, key)
            else:  # another loop's bus (a test's second app): its handlers, no publishing
                bus.deliver(topic, key)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_MARKS, None)


_command_pubsub: Callable[[], PubSub | None] = lambda: None  # noqa: E731


def configure_commands(factory: Callable[[], PubSub | None]) -> None:
    """How a command-line process reaches the servers (called once settings are loaded)."""
    global _command_pubsub
    _command_pubsub = factory


async def _with_bus(coro: Awaitable[T]) -> T:
    pubsub = _command_pubsub()
    if pubsub is None or isinstance(pubsub, MemoryPubSub):
        return await coro
    bus = NoticeBus(pubsub)
    await bus.start(listen=False)
    try:
        return await coro
    finally:
        await bus.stop()  # waits for the notices still being published


def run_with_notices(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(coro)`` with a publish-only bus (a command-line process)."""
    return asyncio.run(_with_bus(coro))
