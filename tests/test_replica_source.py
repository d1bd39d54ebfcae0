"""A reader that replicates from another primary than the writer holds other data: it is
skipped for reads and reported in one line by the health check, while a replica of the
writer beside it serves reads. Private ``mariadbd`` servers (never the shared one)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from garrison.app import create_app
from garrison.db.engine import Database
from garrison.ops.backup.errors import BackupError, ToolMissing
from garrison.ops.backup.servers import PrivateMariaDB
from garrison.ops.health import HealthService
from garrison.runtime import runtime_of
from tests.conftest import make_settings, start
from tests.helpers import private_sql
from tests.services import unavailable

pytestmark = pytest.mark.slow

Servers = tuple[PrivateMariaDB, PrivateMariaDB, PrivateMariaDB, PrivateMariaDB]


def _sql(server: PrivateMariaDB, statement: str, *, batch: bool = True) -> str:
    return private_sql(server.port, statement, batch=batch)


def _follow(replica: PrivateMariaDB, source: PrivateMariaDB) -> None:
    """Make ``replica`` replicate from ``source`` and wait until its IO thread is connected
    (``Master_Server_Id`` is known only then)."""
    _sql(
        replica,
        f"CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT={source.port}, "
        "MASTER_USER='root', MASTER_USE_GTID=slave_pos; START SLAVE",
    )
    deadline = time.monotonic() + 60
    while "Slave_IO_Running: Yes" not in _sql(replica, "SHOW SLAVE STATUS\\G", batch=False):
        assert time.monotonic() < deadline, "the replica did not connect to its source"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    base = tmp_path_factory.mktemp("sources")
    writer, other, wrong, right = (
        PrivateMariaDB(base / name, server_id=sid, buffer_pool="32M")
        for name, sid in (("writer", 21), ("other", 22), ("wrong", 23), ("right", 24))
    )
    everyone = (writer, other, wrong, right)
    try:
        for server in everyone:
            server.start()
    except (ToolMissing, BackupError) as exc:
        for server in everyone:
            server.stop()
        unavailable("private mariadbd servers", str(exc))
    try:
        _follow(wrong, other)
        _follow(right, writer)
        yield everyone
    finally:
        for server in everyone:
            server.stop()


async def test_a_replica_of_another_primary_is_skipped_and_reported(
    servers: Servers, tmp_path: Path
) -> None:
    writer, _other, wrong, right = servers
    settings = make_settings(
        tmp_path,
        database_url=writer.database_url("mysql"),
        db={"replica_url": [wrong.database_url("mysql"), right.database_url("mysql")]},
        health={"cache_seconds": 0},
    )
    db = Database(settings.db_url, settings.db)
    try:
        await db.replicas.probe_all()
        by_port = {replica.name.rsplit(":", 1)[1]: replica for replica in db.replicas.replicas}
        bad, good = by_port[str(wrong.port)], by_port[str(right.port)]
        assert bad.role == "replica"
        assert not bad.usable
        assert bad.problem == "follows another primary (server id 22; the writer's is 21)"
        assert good.usable, good.problem
        assert good.problem is None
        assert db.replicas.usable() == [good]
        assert all(db.replicas.pick() is good for _ in range(4))
    finally:
        await db.dispose()

    # The health check names it (a warning: reads go on through the other reader).
    async with start(create_app(settings)) as running:
        report = await runtime_of(running.app).get(HealthService).report()
    replication = {c.component_id: c for c in report.checks if c.name == "database:replication"}
    assert replication[bad.name].status == "warn"
    assert "another primary" in str(replication[bad.name].output)
    assert replication[good.name].status == "pass"
