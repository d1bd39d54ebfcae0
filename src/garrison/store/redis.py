"""Redis store, shared by every process of a deployment."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.connection import parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from garrison.store.base import StoreUnavailable


def _once_on_reconnect() -> Retry:
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def blocking_client(url: str, *, timeout: float, max_connections: int) -> aioredis.Redis:
    """A client whose callers wait (up to ``timeout``) for a free connection when all are
    busy, instead of failing at once as the default pool does under a burst.

    After Redis restarts (or fails over), every connection left in the pool is dead, and
    each fails once when it is next taken: under load that is a stray error per pooled
    connection for as long as the pool keeps unused ones (measured: 20 of 20 concurrent
    commands after a restart). So a command that fails with a connection error is sent once
    more on a fresh connection, at once; a timeout is not retried (an outage must cost one
    short timeout, not two), and a refused connection fails twice quickly."""
    once_on_reconnect = _once_on_reconnect()
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        retry=once_on_reconnect,
    )
    return aioredis.Redis(connection_pool=pool, retry=once_on_reconnect)


def sentinel_client(
    sentinels: list[str],
    master: str,
    *,
    timeout: float,
    max_connections: int,
    url: str | None = None,
) -> tuple[aioredis.Redis, list[aioredis.Redis]]:
    """A client for the current master of ``master`` as the Sentinels report it: after a
    failover its next connection goes to the promoted replica, without a restart. Credentials
    and the database number come from ``url`` when one is given."""
    from redis.asyncio.sentinel import Sentinel

    options: dict[str, Any] = {}
    if url:
        parsed = parse_url(url)  # type: ignore[no-untyped-call]
        options = {k: parsed[k] for k in ("username", "password", "db") if k in parsed}
    nodes = [(host, int(port)) for host, _, port in (s.rpartition(":") for s in sentinels)]
    limits: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    manager = Sentinel(nodes, sentinel_kwargs=limits, **limits)  # type: ignore[no-untyped-call]
    client = manager.master_for(
        master,
        max_connections=max_connections,
        health_check_interval=30,
        retry=_once_on_reconnect(),  # a promoted master: the pooled connections are dead
        **limits,
        **options,
    )
    return client, list(manager.sentinels)


def _ms(ttl: float | None) -> int | None:
    return None if ttl is None else max(1, int(ttl * 1000))


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "garrison:",
        timeout: float = 0.5,
        max_connections: int = 50,
        sentinels: list[str] | None = None,
        sentinel_master: str = "mymaster",
    ) -> None:
        self.prefix = prefix
        self.client: aioredis.Redis
        self._sentinels: list[aioredis.Redis] = []
        if sentinels:
            self.client, self._sentinels = sentinel_client(
                sentinels,
                sentinel_master,
                timeout=timeout,
                max_connections=max_connections,
                url=url or None,
            )
        else:
            self.client = blocking_client(url, timeout=timeout, max_connections=max_connections)

    def _key(self, key: str) -> str:
        return self.prefix + key

    async def get(self, key: str) -> bytes | None:
        try:
            value = await self.client.get(self._key(key))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc
        if isinstance(value, str):  # only when a caller set decode_responses
            return value.encode()
        return value

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        try:
            await self.client.set(self._key(key), value, px=_ms(ttl))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc

    async def set_if_absent(self, key: str, value: bytes, *, ttl: float | None = None) -> bool:
        try:
            stored = await self.client.set(self._key(key), value, px=_ms(ttl), nx=True)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc
        return bool(stored)

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete(self._key(key))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc

    async def incr(self, key: str, *, amount: int = 1, ttl: float | None = None) -> int:
        full = self._key(key)
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.incrby(full, amount)
                if ttl is not None:
                    pipe.pexpire(full, _ms(ttl) or 1, nx=True)
                results = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc
        return int(results[0])

    async def ping(self) -> None:
        try:
            await self.client.ping()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(str(type(exc).__name__)) from exc

    async def close(self) -> None:
        await self.client.aclose(close_connection_pool=True)
        for sentinel in self._sentinels:
            await sentinel.aclose(close_connection_pool=True)
