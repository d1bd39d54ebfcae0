"""Small key-value seams with an in-process and a Redis implementation.

The embedded default and production differ only in which store is plugged in:
``open_store(settings)`` returns the Redis store when ``GARRISON_REDIS_URL`` is set and the
memory store otherwise.
"""

from garrison.store.base import KeyValueStore, StoreUnavailable
from garrison.store.cache import Cache, CacheStats
from garrison.store.factory import open_cache, open_rate_limiter, open_store
from garrison.store.memory import MemoryStore
from garrison.store.ratelimit import (
    Decision,
    MemoryRateLimiter,
    Rate,
    RateLimiter,
    RedisRateLimiter,
)
from garrison.store.redis import RedisStore

__all__ = [
    "Cache",
    "CacheStats",
    "Decision",
    "KeyValueStore",
    "MemoryRateLimiter",
    "MemoryStore",
    "Rate",
    "RateLimiter",
    "RedisRateLimiter",
    "RedisStore",
    "StoreUnavailable",
    "open_cache",
    "open_rate_limiter",
    "open_store",
]
