"""Choose the store implementations from the settings: Redis when ``GARRISON_REDIS_URL`` is
set (shared by every process), in-process memory otherwise."""

from __future__ import annotations

from garrison.settings import Settings
from garrison.store.base import KeyValueStore
from garrison.store.cache import Cache
from garrison.store.memory import MemoryStore
from garrison.store.pubsub import MemoryPubSub, PubSub, RedisPubSub
from garrison.store.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from garrison.store.redis import RedisStore


def open_store(settings: Settings, *, prefix: str | None = None) -> KeyValueStore:
    if settings.redis_url or settings.redis_sentinels:
        return RedisStore(
            settings.redis_url or "",
            prefix=prefix or settings.redis_prefix,
            max_connections=settings.redis_max_connections,
            timeout=settings.redis_timeout,
            sentinels=settings.redis_sentinels,
            sentinel_master=settings.redis_sentinel_master,
        )
    return MemoryStore()


def open_rate_limiter(store: KeyValueStore) -> RateLimiter:
    """The limiter that shares ``store``'s backing service (and its Redis connections)."""
    if isinstance(store, RedisStore):
        return RedisRateLimiter(store.client, prefix=store.prefix)
    return MemoryRateLimiter()


def open_cache(settings: Settings, store: KeyValueStore) -> Cache:
    """The cache on Redis when ``store`` is Redis, else on a bounded (LRU) memory store."""
    backing = store if isinstance(store, RedisStore) else None
    return Cache(
        backing or MemoryStore(max_entries=settings.cache.memory_max_entries),
        default_ttl=settings.cache.default_ttl,
    )


def open_pubsub(settings: Settings) -> PubSub:
    """Redis pub/sub when Redis is configured, else the in-process broadcast."""
    if settings.redis_url:
        return RedisPubSub(settings.redis_url, prefix=settings.redis_prefix)
    return MemoryPubSub()
