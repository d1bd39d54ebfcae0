"""Choose the store implementation from the settings."""

from __future__ import annotations

from garrison.settings import Settings
from garrison.store.base import KeyValueStore
from garrison.store.memory import MemoryStore
from garrison.store.redis import RedisStore


def open_store(settings: Settings, *, prefix: str = "garrison:") -> KeyValueStore:
    if settings.redis_url:
        return RedisStore(settings.redis_url, prefix=prefix)
    return MemoryStore()
