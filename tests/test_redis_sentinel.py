"""Redis behind Sentinel: the store follows a failover of the master without a restart."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from garrison.ops.cluster.recipes import free_ports
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


class Trio:
    """A master, one replica and one Sentinel (quorum 1), each its own process."""

    def __init__(self, base: Path) -> None:
        self.master_port, self.replica_port, self.sentinel_port = free_ports(3)
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.master = subprocess.Popen(
            ["redis-server", "--port", str(self.master_port), *common],
            stdout=subprocess.DEVNULL,
        )
        self.replica = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.replica_port),
                *common,
                "--replicaof",
                "127.0.0.1",
                str(self.master_port),
            ],
            stdout=subprocess.DEVNULL,
        )
        conf = base / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\nbind 127.0.0.1\n"
            f"sentinel monitor mymaster 127.0.0.1 {self.master_port} 1\n"
            "sentinel down-after-milliseconds mymaster 1000\n"
            "sentinel failover-timeout mymaster 5000\n"
        )
        self.sentinel = subprocess.Popen(["redis-sentinel", str(conf)], stdout=subprocess.DEVNULL)

    def client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1)

    def answers(self, port: int, command: str, *args: str) -> object:
        try:
            with self.client(port) as client:
                return client.execute_command(command, *args)
        except redis.RedisError:
            return None

    def close(self) -> None:
        for proc in (self.sentinel, self.replica, self.master):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


@pytest.fixture
def trio() -> Iterator[Trio]:
    for program in ("redis-server", "redis-sentinel"):
        if shutil.which(program) is None:
            unavailable(program, "not installed (redis-server, redis-sentinel)")
    with tempfile.TemporaryDirectory(prefix="garrison-sentinel-") as directory:
        servers = Trio(Path(directory))
        try:
            _until("the replica in sync", lambda: _in_sync(servers))
            _until(
                "the Sentinel seeing the replica",
                lambda: bool(
                    servers.answers(servers.sentinel_port, "SENTINEL", "REPLICAS", "mymaster")
                ),
            )
            yield servers
        finally:
            servers.close()


def _in_sync(trio: Trio) -> bool:
    info = trio.answers(trio.replica_port, "INFO", "replication")
    return isinstance(info, dict) and info.get("master_link_status") == "up"


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


async def test_store_follows_a_master_failover(trio: Trio, tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        data_dir=tmp_path,
        redis_sentinels=f"127.0.0.1:{trio.sentinel_port}",
        redis_prefix="sentinel-test:",
    )
    store = open_store(settings)
    try:
        await store.set("k", b"before")
        assert await store.get("k") == b"before"
        _until(
            "the write on the replica",
            lambda: trio.answers(trio.replica_port, "GET", "sentinel-test:k") == b"before",
        )
        trio.master.kill()
        trio.master.wait(10)
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
        role = trio.answers(trio.replica_port, "ROLE")
        assert isinstance(role, list)
        assert role[0] == b"master"
    finally:
        await store.close()
