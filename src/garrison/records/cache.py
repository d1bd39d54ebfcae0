"""Per-process cache of collection definitions and their ``Table`` objects.

Every records request needs its collection's table; building it from the registry row costs
a query and some milliseconds. Entries live ``TTL`` seconds; a schema change made by this
process drops its entry at once. With Redis, a change is also announced on a pub/sub channel
(``<prefix>collections:changed``) before the response leaves, and every other process drops
its entry when the message arrives: a second instance behind the same balancer sees the
change at once. Without Redis (one process) or while the channel is down, another process's
change is seen within ``TTL`` (and a query that fails on a stale table drops the entry and
is retried once by the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from garrison.log import get_logger
from garrison.records import registry
from garrison.records.registry import Collection, Executor
from garrison.store.base import KeyValueStore
from garrison.store.redis import RedisStore

TTL = 2.0
CHANNEL = "collections:changed"
log = get_logger("garrison.records.cache")


class SchemaBus:
    """Announces schema changes to the other processes and hears theirs (Redis pub/sub).
    Messages are ``<origin>|<collection>``; a process ignores its own."""

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.client = client
        self.channel = channel
        self.origin = uuid.uuid4().hex
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()

    async def announce(self, name: str) -> None:
        try:
            await self.client.publish(self.channel, f"{self.origin}|{name}")
        except (RedisError, OSError) as exc:  # the TTL still bounds the staleness
            log.warning("collections.announce_failed", collection=name, error=type(exc).__name__)

    def start(self, cache: CollectionCache) -> None:
        self._task = asyncio.create_task(self._listen(cache), name="garrison-schema-bus")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _listen(self, cache: CollectionCache) -> None:
        pause = 0.1
        while True:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                cache.clear()  # whatever was announced while we were not listening
                self.subscribed.set()
                pause = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    data = message["data"]
                    text = data.decode() if isinstance(data, bytes) else str(data)
                    origin, _, name = text.partition("|")
                    if origin != self.origin:
                        cache.forget(name)
            except (RedisError, OSError, TimeoutError) as exc:
                self.subscribed.clear()
                log.warning("collections.bus_down", error=type(exc).__name__)
                await asyncio.sleep(pause)  # back off before resubscribing
                pause = min(pause * 2, 5.0)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def schema_bus(store: KeyValueStore) -> SchemaBus | None:
    if isinstance(store, RedisStore):
        return SchemaBus(store.client, store.prefix + CHANNEL)
    return None


class CollectionCache:
    def __init__(self, ttl: float = TTL, *, bus: SchemaBus | None = None) -> None:
        self.ttl = ttl
        self.bus = bus
        self._entries: dict[str, tuple[float, Collection]] = {}

    async def get(self, session: Executor, name: str) -> Collection:
        entry = self._entries.get(name)
        now = time.monotonic()
        if entry is not None:
            if now - entry[0] < self.ttl:
                return entry[1]
            # Expired: one cheap query says whether the definition moved on. Keeping the same
            # Table object while it has not keeps SQLAlchemy's compiled statements cached.
            if await registry.stamp_of(session, name=name) == entry[1].stamp:
                self._entries[name] = (now, entry[1])
                return entry[1]
        collection = await registry.get_collection(session, name=name)
        self._entries[name] = (now, collection)
        return collection

    def put(self, collection: Collection) -> None:
        self._entries[collection.name] = (time.monotonic(), collection)

    def forget(self, name: str) -> None:
        self._entries.pop(name, None)

    def clear(self) -> None:
        self._entries.clear()

    async def changed(self, collection: Collection) -> None:
        """This process changed ``collection``: keep the new definition, tell the others."""
        self.put(collection)
        if self.bus is not None:
            await self.bus.announce(collection.name)

    async def dropped(self, name: str) -> None:
        self.forget(name)
        if self.bus is not None:
            await self.bus.announce(name)

    def start(self) -> None:
        if self.bus is not None:
            self.bus.start(self)

    async def stop(self) -> None:
        if self.bus is not None:
            await self.bus.stop()
