"""A read-through cache over any ``KeyValueStore``: memory (LRU + TTL) or Redis.

    cache = Cache(store)                       # Runtime.cache
    perms = await cache.get_or_load(
        "auth.permissions", user_id, lambda: load_permissions(user_id),
        ttl=60, tags=[f"user:{user_id}"],
    )
    await cache.invalidate_tags(f"user:{user_id}")   # after the change commits

- Keys are namespaced: ``cache:<namespace>:v<version>:<key>``. ``invalidate_namespace``
  bumps the namespace version, so every old entry becomes unreachable at once (and expires
  on its TTL).
- Tags: an entry remembers the version of each of its tags when it was written;
  ``invalidate_tags`` bumps those versions, and an entry whose tag moved is a miss.
- Single-flight: concurrent misses for one key in one process share one load, so a cold key
  costs the source one query per process, not one per request.
- A store failure is never an error: the value comes from the source, and the failure is
  logged and counted in ``stats``.

Values are JSON (orjson): dicts, lists, strings, numbers, booleans and None.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from garrison.log import get_logger
from garrison.store.base import KeyValueStore

T = TypeVar("T")
log = get_logger("garrison.cache")
_VERSION_TTL = 30 * 24 * 3600.0  # versions outlive any entry written under them


def _count_cache(result: str, namespace: str = "default") -> None:
    # Imported here, not at the top: `garrison serve` must set PROMETHEUS_MULTIPROC_DIR
    # before prometheus-client is first imported, or its forked workers count in memory.
    from garrison.metrics import registry

    registry.cache(result, namespace=namespace)  # type: ignore[arg-type]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    loads: int = 0


class Cache:
    def __init__(
        self, store: KeyValueStore, *, default_ttl: float = 60.0, prefix: str = "cache:"
    ) -> None:
        self.store = store
        self.default_ttl = default_ttl
        self.prefix = prefix
        self.stats = CacheStats()
        self._flights: dict[str, asyncio.Future[Any]] = {}

    @property
    def name(self) -> str:
        return self.store.name

    def _failed(self, operation: str, exc: Exception) -> None:
        self.stats.errors += 1
        _count_cache("error")
        log.warning("cache.unavailable", operation=operation, error=type(exc).__name__)

    async def _version(self, name: str) -> int:
        raw = await self.store.get(f"{self.prefix}ver:{name}")
        return int(raw) if raw is not None else 0

    async def _bump(self, name: str) -> None:
        await self.store.incr(f"{self.prefix}ver:{name}", ttl=_VERSION_TTL)

    async def _entry_key(self, namespace: str, key: str) -> str:
        version = await self._version(f"ns:{namespace}")
        return f"{self.prefix}{namespace}:v{version}:{key}"

    async def _tag_versions(self, tags: Iterable[str]) -> dict[str, int]:
        return {tag: await self._version(f"tag:{tag}") for tag in sorted(set(tags))}

    async def get(self, namespace: str, key: str) -> tuple[bool, Any]:
        """``(True, value)`` on a hit, ``(False, None)`` on a miss or a store failure."""
        try:
            raw = await self.store.get(await self._entry_key(namespace, key))
            if raw is None:
                return False, None
            entry = orjson.loads(raw)
            if entry["t"] and await self._tag_versions(entry["t"]) != entry["t"]:
                return False, None
        except Exception as exc:
            self._failed("get", exc)
            return False, None
        return True, entry["v"]

    async def set(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> None:
        try:
            versions = await self._tag_versions(tags)
        except Exception as exc:
            self._failed("set", exc)
            return
        await self._write(namespace, key, value, ttl, versions)

    async def _write(
        self, namespace: str, key: str, value: Any, ttl: float | None, versions: dict[str, int]
    ) -> None:
        try:
            await self.store.set(
                await self._entry_key(namespace, key),
                orjson.dumps({"v": value, "t": versions}),
                ttl=ttl if ttl is not None else self.default_ttl,
            )
        except Exception as exc:
            self._failed("set", exc)

    async def delete(self, namespace: str, key: str) -> None:
        try:
            await self.store.delete(await self._entry_key(namespace, key))
        except Exception as exc:
            self._failed("delete", exc)

    async def invalidate_tags(self, *tags: str) -> None:
        try:
            for tag in tags:
                await self._bump(f"tag:{tag}")
        except Exception as exc:
            self._failed("invalidate", exc)

    async def invalidate_namespace(self, namespace: str) -> None:
        try:
            await self._bump(f"ns:{namespace}")
        except Exception as exc:
            self._failed("invalidate", exc)

    async def get_or_load(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = None,
        tags: Iterable[str] = (),
    ) -> T:
        """The cached value, or ``loader()``'s result (stored for next time)."""
        hit, value = await self.get(namespace, key)
        if hit:
            self.stats.hits += 1
            _count_cache("hit", namespace=namespace)
            return value  # type: ignore[no-any-return]
        self.stats.misses += 1
        _count_cache("miss", namespace=namespace)
        flight_key = f"{namespace}\0{key}"
        flight = self._flights.get(flight_key)
        if flight is None:
            # The load runs as its own task: a caller that goes away (a cancelled request)
            # does not cancel the load the other callers are waiting for.
            flight = asyncio.ensure_future(self._load(namespace, key, loader, ttl, tuple(tags)))
            self._flights[flight_key] = flight
            flight.add_done_callback(lambda done: self._landed(flight_key, done))
        return await asyncio.shield(flight)

    async def _load(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[T]],
        ttl: float | None,
        tags: tuple[str, ...],
    ) -> T:
        # Tag versions are read before the source: an invalidation that lands while the
        # source is read leaves the written entry already stale, never wrongly fresh.
        try:
            versions: dict[str, int] | None = await self._tag_versions(tags)
        except Exception as exc:
            self._failed("get", exc)
            versions = None
        self.stats.loads += 1
        result = await loader()
        if versions is not None:
            await self._write(namespace, key, result, ttl, versions)
        return result

    def _landed(self, flight_key: str, done: asyncio.Future[Any]) -> None:
        self._flights.pop(flight_key, None)
        if not done.cancelled():
            done.exception()  # mark it retrieved: the callers re-raise it themselves
