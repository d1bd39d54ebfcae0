"""The cache, each behaviour on the memory (LRU + TTL) and the real Redis backend."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from garrison.store import Cache, MemoryStore, RedisStore
from tests.helpers import free_port


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[Cache]:
    if request.param == "memory":
        yield Cache(MemoryStore(max_entries=1000), default_ttl=30)
        return
    url: str = request.getfixturevalue("redis_url")
    prefix = f"test:{uuid.uuid4().hex}:"
    store = RedisStore(url, prefix=prefix)
    try:
        yield Cache(store, default_ttl=30)
    finally:
        keys = [key async for key in store.client.scan_iter(match=f"{prefix}*")]
        if keys:
            await store.client.delete(*keys)
        await store.close()


class Source:
    """A stand-in for the database: counts its reads; ``gate`` holds them until opened."""

    def __init__(self, value: Any = None) -> None:
        self.value = value if value is not None else {"roles": ["admin"], "n": 1}
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()

    async def load(self) -> Any:
        self.reads += 1
        await self.gate.wait()
        return self.value


async def test_miss_then_hit(cache: Cache) -> None:
    source = Source()
    assert await cache.get_or_load("perms", "u1", source.load) == source.value
    assert await cache.get_or_load("perms", "u1", source.load) == source.value
    assert source.reads == 1
    assert (cache.stats.hits, cache.stats.misses) == (1, 1)


async def test_namespaces_keep_keys_apart(cache: Cache) -> None:
    await cache.set("a", "k", 1)
    await cache.set("b", "k", 2)
    assert await cache.get("a", "k") == (True, 1)
    assert await cache.get("b", "k") == (True, 2)
    await cache.delete("a", "k")
    assert await cache.get("a", "k") == (False, None)
    assert await cache.get("b", "k") == (True, 2)


async def test_falsy_values_are_cached(cache: Cache) -> None:
    source = Source(value=[])
    source.value = None
    assert await cache.get_or_load("x", "none", source.load) is None
    assert await cache.get_or_load("x", "none", source.load) is None
    assert source.reads == 1


async def test_tag_invalidation(cache: Cache) -> None:
    source = Source()
    await cache.get_or_load("perms", "u1", source.load, tags=["user:1", "role:admin"])
    await cache.get_or_load("perms", "u2", source.load, tags=["user:2"])
    await cache.invalidate_tags("role:admin")
    source.value = {"roles": [], "n": 2}
    assert await cache.get_or_load("perms", "u1", source.load) == {"roles": [], "n": 2}
    assert (await cache.get("perms", "u2"))[0]  # other tags untouched
    assert source.reads == 3


async def test_namespace_invalidation(cache: Cache) -> None:
    await cache.set("settings", "a", 1)
    await cache.set("settings", "b", 2)
    await cache.set("other", "a", 3)
    await cache.invalidate_namespace("settings")
    assert await cache.get("settings", "a") == (False, None)
    assert await cache.get("settings", "b") == (False, None)
    assert await cache.get("other", "a") == (True, 3)


async def test_entries_expire_after_their_ttl(cache: Cache) -> None:
    await cache.set("t", "short", "v", ttl=0.001)
    await cache.set("t", "long", "v", ttl=60)
    # Expired entries are gone however soon they are read again after their TTL; wait for
    # the TTL on the store's own clock via a second entry that must still be there.
    for _ in range(1000):
        if not (await cache.get("t", "short"))[0]:
            break
        await asyncio.sleep(0)
    assert await cache.get("t", "short") == (False, None)
    assert await cache.get("t", "long") == (True, "v")


async def test_single_flight(cache: Cache) -> None:
    source = Source()
    source.gate.clear()
    waiting = [
        asyncio.ensure_future(cache.get_or_load("cold", "k", source.load)) for _ in range(50)
    ]
    while source.reads == 0:
        await asyncio.sleep(0)
    for _ in range(20):  # let every caller reach the flight
        await asyncio.sleep(0)
    source.gate.set()
    results = await asyncio.gather(*waiting)
    assert source.reads == 1
    assert all(r == source.value for r in results)


async def test_a_cancelled_caller_does_not_cancel_the_others(cache: Cache) -> None:
    source = Source()
    source.gate.clear()
    first = asyncio.ensure_future(cache.get_or_load("cold", "k", source.load))
    while source.reads == 0:  # the first caller's load has started: it waits on it
        await asyncio.sleep(0)
    second = asyncio.ensure_future(cache.get_or_load("cold", "k", source.load))
    while cache.stats.misses < 2:  # the second has missed too: it joins the same load
        await asyncio.sleep(0)
    first.cancel()
    source.gate.set()
    assert await second == source.value
    assert first.cancelled()
    assert source.reads == 1


async def test_a_failing_load_reaches_every_caller_and_is_not_cached(cache: Cache) -> None:
    calls = 0

    async def broken() -> int:
        nonlocal calls
        calls += 1
        raise LookupError("source down")

    with pytest.raises(LookupError):
        await cache.get_or_load("x", "k", broken)
    with pytest.raises(LookupError):
        await cache.get_or_load("x", "k", broken)
    assert calls == 2


async def test_lru_drops_the_least_recently_used() -> None:
    cache = Cache(MemoryStore(max_entries=3))
    await cache.set("n", "a", 1)
    await cache.set("n", "b", 2)
    await cache.set("n", "c", 3)
    assert (await cache.get("n", "a"))[0]  # a is now the most recent
    await cache.set("n", "d", 4)
    assert await cache.get("n", "b") == (False, None)
    assert await cache.get("n", "a") == (True, 1)
    assert await cache.get("n", "d") == (True, 4)
    assert len(cache.store) == 3  # type: ignore[arg-type]


async def test_store_failure_falls_back_to_the_source() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    cache = Cache(store)
    source = Source()
    try:
        assert await cache.get_or_load("perms", "u1", source.load, tags=["t"]) == source.value
        assert await cache.get_or_load("perms", "u1", source.load) == source.value
        await cache.invalidate_tags("t")
        await cache.set("a", "b", 1)
        assert await cache.get("a", "b") == (False, None)
    finally:
        await store.close()
    assert source.reads == 2
    assert cache.stats.errors >= 4
