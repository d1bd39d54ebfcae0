"""Garrison on a real Galera cluster: two nodes and an arbitrator (garbd) behind HAProxy,
with an asynchronous GTID replica following the writer frontend.

The cluster starts once for the module (about 15 s on an idle machine). The tests run in
file order: the failover test kills the first node, so it comes last.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from garrison.ops.cluster import ClusterSpec, LocalCluster
from garrison.ops.cluster.local import ClusterError, wait_for
from garrison.runtime import runtime_of
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.services import unavailable

pytestmark = pytest.mark.slow

CANARY = "canary-" + uuid.uuid4().hex  # a value that must never appear in a raw data file
POSTS: dict[str, Any] = {
    "name": "hanotes",
    "fields": [{"name": "title", "type": "text", "max_length": 200, "required": True}],
    "rules": {"list": "@auth.id != null", "view": "@auth.id != null", "create": "@auth.id != null"},
}
RECORDS = "/api/v1/collections/hanotes/records"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    for program in ("mariadbd", "garbd", "haproxy", "rsync", "socat"):
        if shutil.which(program) is None:
            unavailable(program, "not installed (galera-4, galera-arbitrator-4, haproxy)")
    if not Path("/usr/lib/galera/libgalera_smm.so").is_file():
        unavailable("galera-4", "libgalera_smm.so is missing")
    # Not under pytest's private temporary directory: run as root, the servers run as the
    # mysql user, which must reach their directories.
    base = Path(tempfile.mkdtemp(prefix="garrison-galera-"))
    base.chmod(0o755)
    local = LocalCluster(base)
    try:
        local.up(ClusterSpec(nodes=2, arbitrator=True, replicas=1))
    except ClusterError as exc:
        local.destroy()
        pytest.fail(f"the cluster did not start: {exc}")
    yield local
    local.destroy()


def cluster_settings(tmp_path: Path, cluster: LocalCluster, **db: Any) -> Settings:
    return make_settings(
        tmp_path,
        database_url=cluster.writer_url,
        db={"replica_url": cluster.replica_urls(), "retry_deadline": 30.0, **db},
        health={"cache_seconds": 0},
    )


@pytest.fixture
async def api(tmp_path: Path, cluster: LocalCluster) -> AsyncIterator[AuthApp]:
    async with auth_app(cluster_settings(tmp_path, cluster)) as app:
        yield app


async def _collection(api: AuthApp, admin: dict[str, str]) -> None:
    response = await api.client.post("/api/v1/collections", json=POSTS, headers=admin)
    assert response.status_code in (201, 409), response.text


def _replica_caught_up(cluster: LocalCluster, title: str) -> bool:
    replica = cluster.replicas()[0]
    rows = cluster.sql(replica, f"SELECT COUNT(*) FROM garrison.c_hanotes WHERE title='{title}'")
    return rows[0][0] == "1"


def test_app_user_has_least_privilege(cluster: LocalCluster) -> None:
    node = cluster.nodes()[0]
    grants = " ".join(
        row[0] for row in cluster.sql(node, "SHOW GRANTS FOR 'garrison_app'@'127.0.0.1'")
    )
    assert "SUPER" not in grants
    assert "FILE" not in grants
    assert "ALL PRIVILEGES" not in grants
    # Only from the app servers' addresses: no wildcard host.
    hosts = cluster.sql(node, "SELECT Host FROM mysql.user WHERE User='garrison_app'")
    assert [row[0] for row in hosts] == ["127.0.0.1"]


async def test_reads_on_the_replica_and_your_own_writes(
    api: AuthApp, cluster: LocalCluster
) -> None:
    admin = bearer(await api.token(role="admin"))
    await _collection(api, admin)
    created = await api.client.post(RECORDS, json={"title": CANARY}, headers=admin)
    assert created.status_code == 201, created.text
    # Read-your-writes: the caller who just wrote sees the record at once.
    mine = await api.client.get(f"{RECORDS}/{created.json()['id']}", headers=admin)
    assert mine.status_code == 200
    wait_for("the replica has the record", lambda: _replica_caught_up(cluster, CANARY), 30)
    db = runtime_of(api.running.app).db
    await db.replicas.probe_all()
    replica = db.replicas.replicas[0]
    assert (replica.role, replica.usable) == ("replica", True)
    metrics = (await api.client.get("/metrics")).text
    assert f'garrison_db_replication_lag_seconds{{node="{replica.name}"}} 0.0' in metrics
    assert "garrison_db_cluster_size 3.0" in metrics  # two nodes and the arbitrator


async def test_a_stopped_replica_is_skipped_and_reported(
    api: AuthApp, cluster: LocalCluster
) -> None:
    replica_proc = cluster.replicas()[0]
    cluster.sql(replica_proc, "STOP SLAVE SQL_THREAD")
    try:
        db = runtime_of(api.running.app).db
        await db.replicas.probe_all()
        assert db.replicas.usable() == []
        assert db.fast_read is db.writer_fast_read  # reads go to the writer
        admin = bearer(await api.token(role="admin"))
        await _collection(api, admin)
        listed = await api.client.get(RECORDS, headers=admin)
        assert listed.status_code == 200
        health = (await api.client.get("/api/health")).json()
        (check,) = health["checks"]["database:replication"]
        assert check["status"] == "warn"
        assert "stopped" in check["output"]
        metrics = (await api.client.get("/metrics")).text
        assert f'garrison_db_replica_usable{{node="{db.replicas.replicas[0].name}"}} 0.0' in metrics
    finally:
        cluster.sql(replica_proc, "START SLAVE SQL_THREAD")


def test_known_value_is_absent_from_raw_data_files(cluster: LocalCluster) -> None:
    node = cluster.nodes()[0]
    rows = cluster.sql(node, f"SELECT COUNT(*) FROM garrison.c_hanotes WHERE title='{CANARY}'")
    assert rows == [["1"]]  # the value is there, readable through SQL
    cluster.sql(node, "FLUSH TABLES; FLUSH BINARY LOGS")
    needle = CANARY.encode()
    checked = 0
    for proc in [*cluster.nodes(), *cluster.replicas()]:
        for path in (Path(proc.dir) / "data").rglob("*"):
            # galera.cache is Galera's write-set ring buffer: not encrypted by galera-4
            # 26.4 (documented in docs/ha.md); every table, log and binlog file is.
            if path.is_file() and path.name != "galera.cache":
                checked += 1
                assert needle not in path.read_bytes(), f"{path} holds the value in clear"
    assert checked > 20


async def test_writer_failover_loses_no_acknowledged_write(
    api: AuthApp, cluster: LocalCluster
) -> None:
    admin = bearer(await api.token(role="admin"))
    await _collection(api, admin)
    acknowledged: list[str] = []
    statuses: list[int] = []

    async def write(title: str) -> int:
        response = await api.client.post(
            RECORDS,
            json={"title": title},
            headers={**admin, "Idempotency-Key": title},
        )
        statuses.append(response.status_code)
        if response.status_code == 201:
            acknowledged.append(response.json()["id"])
        else:
            assert response.status_code == 503, response.text
            assert "retry-after" in response.headers
        return response.status_code

    for i in range(5):
        assert await write(f"before-{i}") == 201
    assert cluster.active_writer() == "node1"
    assert (await api.client.get("/api/health")).status_code == 200  # three members seen
    cluster.kill("node1")
    after = 0
    while after < 5:  # bounded: the app's retry deadline turns a stuck write into a 503
        if await write(f"after-{len(statuses)}") == 201:
            after += 1
        assert len(statuses) < 200, "writes did not resume"
    assert 500 not in statuses
    assert cluster.active_writer() == "node2"
    survivor = cluster.nodes()[1]
    ids = {row[0] for row in cluster.sql(survivor, "SELECT id FROM garrison.c_hanotes")}
    assert set(acknowledged) <= ids  # no acknowledged write is lost
    health = (await api.client.get("/api/health")).json()
    (size,) = health["checks"]["database:clusterSize"]
    assert (size["status"], size["observedValue"]) == ("warn", 2)  # the lost node shows
