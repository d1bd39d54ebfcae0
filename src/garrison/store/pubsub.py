"""Change notifications between the processes of a deployment: Redis pub/sub when Redis is
configured, an in-process broadcast on the embedded default (one process, so that is every
subscriber there is). Delivery is best effort: subscribers reload what a message points at,
and also reload on a timer, so a message lost while reconnecting costs only that delay."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from garrison.store.base import StoreUnavailable


class Subscription(Protocol):
    async def next(self, wait: float) -> bytes | None:
        """The next message, or None when ``wait`` seconds pass without one."""
        ...

    async def close(self) -> None: ...


class PubSub(Protocol):
    async def publish(self, channel: str, message: bytes) -> None: ...

    async def subscribe(self, channel: str) -> Subscription: ...

    async def close(self) -> None: ...


_hub: defaultdict[str, set[asyncio.Queue[bytes]]] = defaultdict(set)


class _MemorySubscription:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)
        _hub[channel].add(self.queue)

    async def next(self, wait: float) -> bytes | None:
        try:
            async with asyncio.timeout(wait):
                return await self.queue.get()
        except TimeoutError:
            return None

    async def close(self) -> None:
        _hub[self.channel].discard(self.queue)


class MemoryPubSub:
    """Every subscriber in this process hears every message published in it."""

    name = "memory"

    async def publish(self, channel: str, message: bytes) -> None:
        for queue in list(_hub.get(channel, ())):
            if not queue.full():  # a subscriber that stopped reading reloads on its timer
                queue.put_nowait(message)

    async def subscribe(self, channel: str) -> Subscription:
        return _MemorySubscription(channel)

    async def close(self) -> None:
        return None


class _RedisSubscription:
    def __init__(self, client: aioredis.Redis, pubsub: aioredis.client.PubSub) -> None:
        self.client = client
        self.pubsub = pubsub

    async def next(self, wait: float) -> bytes | None:
        try:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=wait)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc
        if message is None:
            return None
        data = message.get("data")
        return data if isinstance(data, bytes) else str(data).encode()

    async def close(self) -> None:
        try:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
        finally:
            await self.client.aclose()


class RedisPubSub:
    """Channels are namespaced by ``prefix``; each subscription holds a connection of its
    own (a subscribed connection can do nothing else)."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str, timeout: float = 2.0) -> None:
        self.url = url
        self.prefix = prefix
        self.timeout = timeout
        self._publisher = aioredis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )

    async def publish(self, channel: str, message: bytes) -> None:
        try:
            await self._publisher.publish(self.prefix + channel, message)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(exc)) from exc

    async def subscribe(self, channel: str) -> Subscription:
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=self.timeout)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(self.prefix + channel)
        except (RedisError, OSError) as exc:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            await client.aclose()
            raise StoreUnavailable(str(exc)) from exc
        return _RedisSubscription(client, pubsub)

    async def close(self) -> None:
        await self._publisher.aclose()
