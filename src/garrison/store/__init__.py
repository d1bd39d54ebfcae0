"""Small key-value seams with an in-process and a Redis implementation.

The embedded default and production differ only in which store is plugged in:
``open_store(settings)`` returns the Redis store when ``GARRISON_REDIS_URL`` is set and the
memory store otherwise.
"""

from garrison.store.base import KeyValueStore, StoreUnavailable
from garrison.store.factory import open_store
from garrison.store.memory import MemoryStore
from garrison.store.redis import RedisStore

__all__ = ["KeyValueStore", "MemoryStore", "RedisStore", "StoreUnavailable", "open_store"]
