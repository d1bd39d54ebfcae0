"""GCRA rate limiters: one in-process, one shared by every process through Redis.

The generic cell rate algorithm keeps one number per key, the theoretical arrival time
(TAT): when the bucket would be empty again if requests kept coming at the sustained rate.
A request costs one emission interval ``T = period / limit``; it is allowed while the new TAT
stays within ``burst * T`` of now. So a quiet client can send ``burst`` requests at once and
then one every ``T`` seconds, which is what "100 requests/minute with a burst of 20" means.

The Redis limiter runs the whole decision in one Lua script that reads the clock with Redis
``TIME``, so every process of a deployment sees the same bucket and the same clock, and
concurrent requests are serialised by Redis: the count is exact, never approximate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from garrison.store.base import StoreUnavailable
from garrison.store.redis import blocking_client

_US = 1_000_000  # the Redis script works in integer microseconds


@dataclass(frozen=True)
class Rate:
    """``limit`` requests per ``period`` seconds, at most ``burst`` at once."""

    limit: int
    period: float
    burst: int

    @classmethod
    def per_minute(cls, requests: int, burst: int | None = None) -> Rate:
        return cls(limit=requests, period=60.0, burst=burst or requests)

    @property
    def interval(self) -> float:
        """Seconds one request costs (the emission interval)."""
        return self.period / self.limit

    @property
    def tolerance(self) -> float:
        return self.interval * self.burst


@dataclass(frozen=True)
class Decision:
    """The outcome of one attempt.

    ``remaining``: requests that would still be allowed right now; ``reset_after``: seconds
    until the whole burst is available again; ``retry_after``: seconds until the next request
    can be allowed (0 when this one was).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    retry_after: float
    # Whether the store holds the ``probe`` key the caller asked about in the same round
    # trip (None: not asked, or this limiter has no shared store to ask).
    probed: bool | None = None


def decide(
    rate: Rate, *, allowed: bool, ahead: float, retry_after: float, probed: bool | None = None
) -> Decision:
    """Build a decision from ``ahead``: how far the stored TAT is ahead of now (seconds)."""
    remaining = max(0, math.floor((rate.tolerance - ahead) / rate.interval + 1e-9))
    return Decision(
        allowed=allowed,
        limit=rate.burst,
        remaining=remaining,
        reset_after=max(0.0, ahead),
        retry_after=max(0.0, retry_after),
        probed=probed,
    )


@runtime_checkable
class RateLimiter(Protocol):
    name: str

    async def hit(
        self, key: str, rate: Rate, *, cost: int = 1, probe: str | None = None
    ) -> Decision:
        """Spend ``cost`` requests from ``key``'s bucket if they fit; raises
        ``StoreUnavailable`` when the backing service does not answer. ``probe``: a key of
        the shared key-value store whose presence the same round trip reports
        (``Decision.probed``), so a request's other question to the store costs nothing."""
        ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


_EPSILON = 1e-9  # seconds


class MemoryRateLimiter:
    """Exact within one process: a decision never awaits, so it cannot interleave.
    ``clock`` (monotonic seconds) is injectable so tests can hold time still."""

    name = "memory"

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._tat: dict[str, float] = {}
        self._max_keys = max_keys
        self._clock = clock

    def _prune(self, now: float) -> None:
        for key in [k for k, tat in self._tat.items() if tat <= now]:
            del self._tat[key]
        if len(self._tat) >= self._max_keys:
            # Still full of busy buckets: forget the oldest tenth at once, so the full scan
            # above runs once per many new keys, not once per key.
            for key in list(self._tat)[: max(1, self._max_keys // 10)]:
                del self._tat[key]

    async def hit(
        self, key: str, rate: Rate, *, cost: int = 1, probe: str | None = None
    ) -> Decision:
        now = self._clock()
        tat = max(self._tat.get(key, now), now)
        new_tat = tat + rate.interval * cost
        allow_at = new_tat - rate.tolerance
        # The epsilon: (now + t) - t can round to a hair above now, which would refuse an
        # empty bucket's first request (the Redis script counts whole microseconds).
        if allow_at - now > _EPSILON:
            return decide(rate, allowed=False, ahead=tat - now, retry_after=allow_at - now)
        if key not in self._tat and len(self._tat) >= self._max_keys:
            self._prune(now)
        self._tat[key] = new_tat
        return decide(rate, allowed=True, ahead=new_tat - now, retry_after=0.0)

    async def reset(self, key: str) -> None:
        self._tat.pop(key, None)

    async def close(self) -> None:
        self._tat.clear()


# KEYS[1] bucket, KEYS[2] (optional) a key whose presence is reported; ARGV: interval (us),
# tolerance (us), cost. Returns {allowed, ahead_us, retry_after_us, probed (0/1, or -1 when
# there is no KEYS[2])}; the bucket's key expires when the bucket is full again.
_GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local probed = -1
if KEYS[2] then
  probed = redis.call('EXISTS', KEYS[2])
end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then
  tat = now
end
local new_tat = tat + interval * cost
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, tat - now, allow_at - now, probed}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
           math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, new_tat - now, 0, probed}
"""


def _pool_exhausted(exc: BaseException) -> bool:
    return isinstance(exc, RedisConnectionError) and str(exc) == "No connection available."


class RedisRateLimiter:
    """Shared by every process; after a failure Redis is not asked again for
    ``retry_interval`` seconds, so an outage costs one timeout, not one per request."""

    name = "redis"

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "garrison:",
        retry_interval: float = 1.0,
        owns_client: bool = False,
    ) -> None:
        self.client = client
        self.store_prefix = prefix  # the key-value store's keys (``probe``)
        self.prefix = prefix + "rl:"
        self.retry_interval = retry_interval
        self._owns_client = owns_client
        self._script = client.register_script(_GCRA_SCRIPT)
        self._down_until = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "garrison:", timeout: float = 0.5
    ) -> RedisRateLimiter:
        client = blocking_client(url, timeout=timeout, max_connections=50)
        return cls(client, prefix=prefix, owns_client=True)

    async def hit(
        self, key: str, rate: Rate, *, cost: int = 1, probe: str | None = None
    ) -> Decision:
        if time.monotonic() < self._down_until:
            raise StoreUnavailable("redis marked down")
        args = [round(rate.interval * _US), round(rate.tolerance * _US), cost]
        keys = [self.prefix + key]
        if probe is not None:
            keys.append(self.store_prefix + probe)
        try:
            allowed, ahead, retry, probed = await self._script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            if not _pool_exhausted(exc):  # a busy pool is load, not an outage
                self._down_until = time.monotonic() + self.retry_interval
            raise StoreUnavailable(type(exc).__name__) from exc
        return decide(
            rate,
            allowed=bool(allowed),
            ahead=ahead / _US,
            retry_after=retry / _US,
            probed=None if probed < 0 else bool(probed),
        )

    async def reset(self, key: str) -> None:
        try:
            await self.client.delete(self.prefix + key)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose(close_connection_pool=True)
