"""Read replicas: which one serves a read, and how far behind each one is.

Each reader URL gets its own autocommit engine and ``FastReader``. A probe (every
``db.replica_check_interval`` seconds, started with the first read that needs it) asks each
reader what it is and how far behind:

- an asynchronous replica: ``SHOW REPLICA STATUS`` → ``Seconds_Behind_Master``, and both
  threads running (a stopped thread is a broken replica, skipped); its source must be the
  writer (``Master_Server_Id`` equal to the writer's ``@@server_id``, which the nodes of a
  Galera cluster share): a replica of another primary holds other data, and is skipped;
- a Galera node (the cluster's read frontend): synced means no lag, anything else skipped,
  and so is a node of another cluster (its ``wsrep_cluster_state_uuid`` is not the writer's);
- neither: a standalone server, usable but reported (a reader URL that names no replica).

A reader further behind than ``db.max_replica_lag``, or unreachable, is skipped; with none
left, reads go to the writer. Reads that must see a write (read-your-writes) wait on the
replica for the write's GTID (``MASTER_GTID_WAIT``) or go to the writer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlalchemy.engine import make_url

from garrison.db.fastread import FastReader

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from garrison.settings import DatabaseSettings

Role = Literal["unknown", "replica", "galera", "standalone", "sqlite"]


def node_name(url: str) -> str:
    """``host:port`` of a URL (the label metrics and health use; never credentials)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.database or "sqlite"
    return f"{parsed.host or 'localhost'}:{parsed.port or 3306}"


@dataclass
class Replica:
    name: str
    engine: AsyncEngine
    fast_read: FastReader
    role: Role = "unknown"
    lag: float | None = None  # seconds behind; None until probed or when unknown
    usable: bool = True
    problem: str | None = None  # one line for the health check
    io_running: bool | None = None
    sql_running: bool | None = None
    checked_at: float = field(default=0.0)


class ReplicaSet:
    def __init__(
        self,
        replicas: list[Replica],
        settings: DatabaseSettings,
        *,
        writer: FastReader | None = None,
    ) -> None:
        self.replicas = replicas
        self.settings = settings
        self.writer = writer
        # The writer's identity, read at each probe round (the last known one is kept while
        # the writer is away): its server id (a Galera cluster's nodes share one) and, on
        # Galera, the cluster's state UUID.
        self.writer_server_id: int | None = None
        self.writer_cluster: str | None = None
        self._turn = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def __bool__(self) -> bool:
        return bool(self.replicas)

    def usable(self) -> list[Replica]:
        self._ensure_probing()
        return [r for r in self.replicas if r.usable]

    def pick(self) -> Replica | None:
        """The next usable reader, round robin; None when every one is skipped."""
        usable = self.usable()
        if not usable:
            return None
        return usable[next(self._turn) % len(usable)]

    # -- probing --------------------------------------------------------------------------

    def _ensure_probing(self) -> None:
        if self._task is not None or not self.replicas:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self._task = loop.create_task(self._probe_forever(), name="garrison-replica-probe")

    async def _probe_forever(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self.settings.replica_check_interval)

    async def probe_all(self) -> None:
        await self._read_writer_identity()
        await asyncio.gather(*(self.probe(replica) for replica in self.replicas))

    async def _read_writer_identity(self) -> None:
        if self.writer is None or self.writer.is_sqlite:
            return
        try:
            async with asyncio.timeout(min(2.0, self.settings.connect_timeout)):
                rows = await self.writer.query("SELECT @@server_id AS server_id")
                status = await self.writer.query(
                    "SHOW GLOBAL STATUS LIKE 'wsrep_cluster_state_uuid'"
                )
        except Exception:  # the writer being away is the health check's to report
            return
        self.writer_server_id = int(rows[0]["server_id"]) if rows else None
        cluster = str(status[0]["Value"]) if status else ""
        self.writer_cluster = cluster or None

    async def probe(self, replica: Replica) -> None:
        """Refresh one reader's role, lag and usability (never raises)."""
        try:
            async with asyncio.timeout(min(2.0, self.settings.connect_timeout)):
                await self._probe(replica)
        except Exception as exc:
            replica.usable = False
            replica.lag = None
            replica.problem = f"unreachable ({type(exc).__name__})"
        replica.checked_at = time.monotonic()

    async def _probe(self, replica: Replica) -> None:
        if replica.fast_read.is_sqlite:
            replica.role, replica.lag, replica.usable, replica.problem = "sqlite", 0.0, True, None
            return
        reader = replica.fast_read
        rows = await reader.query("SHOW SLAVE STATUS")
        if rows:
            status = rows[0]
            replica.role = "replica"
            replica.io_running = status.get("Slave_IO_Running") == "Yes"
            replica.sql_running = status.get("Slave_SQL_Running") == "Yes"
            behind = status.get("Seconds_Behind_Master")
            replica.lag = None if behind is None else float(behind)
            limit = self.settings.max_replica_lag
            source = int(status.get("Master_Server_Id") or 0)  # 0: never connected yet
            writer = self.writer_server_id
            if source and writer is not None and source != writer:
                replica.usable = False
                replica.problem = (
                    f"follows another primary (server id {source}; the writer's is {writer})"
                )
            elif not replica.sql_running:
                replica.usable, replica.problem = False, "replication SQL thread stopped"
            elif replica.lag is None:
                replica.usable, replica.problem = False, "replica lag unknown (IO thread down)"
            elif replica.lag > limit:
                replica.usable = False
                replica.problem = f"{replica.lag:.0f} s behind (limit {limit:g} s)"
            else:
                replica.usable = True
                replica.problem = None if replica.io_running else "IO thread reconnecting"
            return
        wsrep = {
            str(row["Variable_name"]).lower(): str(row["Value"])
            for row in await reader.query(
                "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready',"
                "'wsrep_local_state_comment','wsrep_cluster_status','wsrep_cluster_state_uuid')"
            )
        }
        if wsrep.get("wsrep_cluster_status", "Disconnected") != "Disconnected":
            replica.role = "galera"
            synced = (
                wsrep.get("wsrep_local_state_comment") == "Synced"
                and wsrep.get("wsrep_cluster_status") == "Primary"
            )
            cluster = wsrep.get("wsrep_cluster_state_uuid")
            foreign = bool(self.writer_cluster and cluster and cluster != self.writer_cluster)
            replica.lag = 0.0 if synced and not foreign else None
            replica.usable = synced and not foreign
            replica.problem = (
                "a node of another Galera cluster than the writer's"
                if foreign
                else None
                if synced
                else "Galera node not synced"
            )
            return
        replica.role, replica.lag, replica.usable = "standalone", 0.0, True
        replica.problem = "not a replica (no replication configured on this reader)"

    # -- read-your-writes -----------------------------------------------------------------

    async def caught_up(self, replica: Replica, gtid: str, wait_seconds: float) -> bool:
        """Whether ``replica`` has applied ``gtid`` within ``wait_seconds``."""
        if replica.role != "replica" or not gtid:
            return replica.role in ("galera", "sqlite")  # synchronous or the same file
        try:
            rows = await replica.fast_read.query(
                "SELECT MASTER_GTID_WAIT(%s, %s) AS waited", (gtid, wait_seconds)
            )
        except Exception:
            return False
        return bool(rows) and rows[0]["waited"] == 0

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for replica in self.replicas:
            await replica.fast_read.dispose()
            await replica.engine.dispose()
