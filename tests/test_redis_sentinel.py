"""Redis behind Sentinel: the store follows a failover of the master without a restart."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.ops.cluster.redis_ha import SentinelGroup
from garrison.settings import load_settings
from garrison.store import StoreUnavailable
from garrison.store.factory import open_store
from garrison.store.redis import RedisStore
from tests.services import unavailable

pytestmark = pytest.mark.slow


def _until(what: str, check: object, timeout: float = 60.0) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what} not reached within {timeout:.0f} s"
        time.sleep(0.1)


@pytest.fixture
def trio() -> Iterator[SentinelGroup]:
    for program in ("redis-server", "redis-sentinel"):
        if shutil.which(program) is None:
            unavailable(program, "not installed (redis-server, redis-sentinel)")
    with tempfile.TemporaryDirectory(prefix="garrison-sentinel-") as directory:
        group = SentinelGroup(Path(directory))
        try:
            group.wait_ready()
            yield group
        finally:
            group.close()


async def test_settings_read_the_sentinels(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        redis_sentinels="127.0.0.1:26379, 127.0.0.1:26380",
        redis_sentinel_master="cache",
    )
    assert settings.redis_sentinels == ["127.0.0.1:26379", "127.0.0.1:26380"]
    store = open_store(settings)
    assert isinstance(store, RedisStore)
    assert len(store._sentinels) == 2
    await store.close()


async def test_store_follows_a_master_failover(trio: SentinelGroup, tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        redis_sentinels=trio.sentinels,
        redis_prefix="sentinel-test:",
    )
    store = open_store(settings)
    try:
        await store.set("k", b"before")
        assert await store.get("k") == b"before"
        _until(
            "the write on the replica",
            lambda: trio.answer(trio.replica_port, "GET", "sentinel-test:k") == b"before",
        )
        trio.kill_master()
        # During the failover the store reports itself unavailable (callers fail open or
        # refuse, by policy), never an unexpected error; then it recovers by itself.
        deadline = time.monotonic() + 60
        while True:
            try:
                await store.set("k", b"after")
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not follow the failover"
                await asyncio.sleep(0.2)
        assert await store.get("k") == b"after"
        assert trio.promoted()  # the replica was promoted
    finally:
        await store.close()
