"""A Redis master, one replica and one Sentinel as local processes (quorum 1): the set-up
the Redis drill and tests fail over. Production runs three Sentinels on separate hosts."""

from __future__ import annotations

import subprocess
from pathlib import Path

from garrison.ops.cluster.local import ClusterError, wait_for
from garrison.ops.cluster.recipes import free_ports

MASTER_NAME = "mymaster"


class SentinelGroup:
    def __init__(self, base: Path) -> None:
        base.mkdir(parents=True, exist_ok=True)
        self.master_port, self.replica_port, self.sentinel_port = free_ports(3)
        common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        # A full resync still writes dump.rdb: into the server's own directory, not the cwd.
        for name in ("master", "replica"):
            (base / name).mkdir(exist_ok=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            self.master = self._start(
                [
                    "redis-server",
                    "--port",
                    str(self.master_port),
                    *common,
                    "--dir",
                    str(base / "master"),
                ],
                quiet,
            )
            self.replica = self._start(
                [
                    "redis-server",
                    "--port",
                    str(self.replica_port),
                    *common,
                    "--dir",
                    str(base / "replica"),
                    "--replicaof",
                    "127.0.0.1",
                    str(self.master_port),
                ],
                quiet,
            )
            conf = base / "sentinel.conf"
            conf.write_text(
                f"port {self.sentinel_port}\nbind 127.0.0.1\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master_port} 1\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 5000\n"
            )
            self.sentinel = self._start(["redis-sentinel", str(conf)], quiet)
        except BaseException:
            self.close()
            raise

    def _start(self, args: list[str], quiet: dict[str, int]) -> subprocess.Popen[bytes]:
        try:
            proc = subprocess.Popen(args, **quiet)  # type: ignore[call-overload]  # noqa: S603
        except FileNotFoundError as exc:
            raise ClusterError(
                f"{args[0]} is not installed (redis-server, redis-sentinel)"
            ) from exc
        self.procs.append(proc)
        return proc  # type: ignore[no-any-return]

    @property
    def sentinels(self) -> str:
        return f"127.0.0.1:{self.sentinel_port}"

    def answer(self, port: int, *command: str) -> object:
        import redis

        try:
            with redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1) as client:
                return client.execute_command(*command)
        except redis.RedisError:
            return None

    def wait_ready(self, timeout: float = 60) -> None:
        def in_sync() -> bool:
            info = self.answer(self.replica_port, "INFO", "replication")
            return isinstance(info, dict) and info.get("master_link_status") == "up"

        wait_for("the Redis replica in sync", in_sync, timeout, 0.1)
        wait_for(
            "the Sentinel seeing the replica",
            lambda: bool(self.answer(self.sentinel_port, "SENTINEL", "REPLICAS", MASTER_NAME)),
            timeout,
            0.1,
        )

    def promoted(self) -> bool:
        role = self.answer(self.replica_port, "ROLE")
        return isinstance(role, list) and bool(role) and role[0] == b"master"

    def kill_master(self) -> None:
        self.master.kill()
        self.master.wait(10)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)
