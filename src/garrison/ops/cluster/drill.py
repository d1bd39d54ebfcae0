"""The failover drill: real Garrison on the local cluster, under load, loses its writer.

``run_failover`` starts ``garrison serve`` (its own process, over loopback) against the
cluster's HAProxy writer and replicas, keeps a steady load of record writes (each with an
``Idempotency-Key``) and reads, kills the active writer node with SIGKILL, optionally a
replica too, and then counts: how long writes stopped, how requests failed (500 vs 503
vs transport errors), and whether every acknowledged write is in the database.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from garrison.ops.cluster.local import ClusterError, LocalCluster, wait_for
from garrison.ops.cluster.recipes import free_ports

ADMIN_EMAIL = "drill-admin@example.com"
COLLECTION = "drill_notes"


@dataclass
class Outcome:
    kind: str  # write or read
    started: float
    ended: float
    status: int  # 0: transport error (no HTTP response)
    record_id: str | None = None


@dataclass
class DrillReport:
    killed: str
    killed_at: float
    writes_resumed_seconds: float | None
    longest_write_gap_seconds: float
    writes: int
    reads: int
    status_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    responses_500: int = 0
    responses_503: int = 0
    transport_errors: int = 0
    read_failures: int = 0
    acknowledged_writes: int = 0
    rows_present: int = 0
    acknowledged_missing: int = 0
    new_writer: str | None = None
    replica_killed: str | None = None
    reads_failed_after_replica_loss: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _serve_env(cluster: LocalCluster, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    env.update(
        GARRISON_ENV="development",
        GARRISON_DATA_DIR=str(data_dir),
        GARRISON_DATABASE_URL=cluster.writer_url,
        GARRISON_DB__REPLICA_URL=json.dumps(cluster.replica_urls()),
        GARRISON_LOG__LEVEL="warning",
        GARRISON_LOG__FORMAT="json",
    )
    return env


def _garrison(args: list[str], env: dict[str, str], stdin: str | None = None) -> None:
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "garrison", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise ClusterError(f"garrison {' '.join(args[:2])} failed: {tail[0]}")


async def _load(
    base: str,
    token: str,
    *,
    duration: float,
    writers: int,
    readers: int,
    events: list[tuple[float, Callable[[], None]]],
) -> list[Outcome]:
    import httpx

    outcomes: list[Outcome] = []
    headers = {"Authorization": f"Bearer {token}"}
    stop_at = time.monotonic() + duration
    records = f"{base}/api/v1/collections/{COLLECTION}/records"
    limits = httpx.Limits(max_connections=writers + readers + 4)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def writer() -> None:
            while time.monotonic() < stop_at:
                key = uuid.uuid4().hex
                started = time.monotonic()
                try:
                    response = await client.post(
                        records,
                        json={"title": key},
                        headers={**headers, "Idempotency-Key": key},
                    )
                    status = response.status_code
                    record_id = response.json().get("id") if status == 201 else None
                except httpx.HTTPError:
                    status, record_id = 0, None
                outcomes.append(Outcome("write", started, time.monotonic(), status, record_id))
                if status != 201:
                    await asyncio.sleep(0.05)

        async def reader() -> None:
            while time.monotonic() < stop_at:
                started = time.monotonic()
                try:
                    status = (await client.get(f"{records}?limit=5", headers=headers)).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append(Outcome("read", started, time.monotonic(), status))
                await asyncio.sleep(0.02)

        async def timeline() -> None:
            for at, action in events:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                await asyncio.to_thread(action)

        await asyncio.gather(
            *(writer() for _ in range(writers)), *(reader() for _ in range(readers)), timeline()
        )
    return outcomes


def run_failover(
    cluster: LocalCluster,
    *,
    duration: float = 30.0,
    kill_after: float = 8.0,
    writers: int = 4,
    readers: int = 4,
    kill_replica: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> DrillReport:
    try:
        import httpx
    except ImportError:
        raise ClusterError("the drill needs httpx: pip install httpx") from None
    data_dir = cluster.base / "app"
    env = _serve_env(cluster, data_dir)
    progress("migrating the schema through HAProxy")
    _garrison(["migrate", "up"], env)
    password = uuid.uuid4().hex
    email = f"drill-{uuid.uuid4().hex[:8]}@example.com"
    _garrison(
        ["users", "create", "--email", email, "--role", "admin", "--password-stdin"],
        env,
        stdin=password + "\n",
    )
    (port,) = free_ports(1)
    base = f"http://127.0.0.1:{port}"
    log = open(cluster.base / "serve.log", "ab")  # noqa: SIM115 - handed to the child
    server = subprocess.Popen(  # noqa: S603 - this interpreter
        [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:

        def serving() -> bool:
            if server.poll() is not None:
                raise ClusterError(f"garrison serve exited; see {cluster.base / 'serve.log'}")
            try:
                return httpx.get(f"{base}/api/health/live").is_success
            except httpx.HTTPError:
                return False

        wait_for("garrison serve", serving, 60)
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": email, "password": password}
        ).json()
        token = login["access_token"]
        created = httpx.post(
            f"{base}/api/v1/collections",
            json={
                "name": COLLECTION,
                "fields": [{"name": "title", "type": "text", "max_length": 64}],
                "rules": {"list": "@auth.id != null", "create": "@auth.id != null"},
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        if created.status_code not in (201, 409):
            raise ClusterError(f"cannot create the drill collection: {created.status_code}")
        victim = cluster.active_writer()
        if victim is None:
            raise ClusterError("HAProxy has no active writer")
        start = time.monotonic()
        killed_at: list[float] = []

        def kill_writer() -> None:
            killed_at.append(time.monotonic())
            progress(f"SIGKILL {victim}")
            cluster.kill(victim, signal.SIGKILL)

        replica_name = cluster.replicas()[0].name if kill_replica and cluster.replicas() else None
        replica_at: list[float] = []

        def kill_replica_now() -> None:
            assert replica_name is not None
            replica_at.append(time.monotonic())
            progress(f"SIGKILL {replica_name}")
            cluster.kill(replica_name, signal.SIGKILL)

        events: list[tuple[float, Callable[[], None]]] = [(start + kill_after, kill_writer)]
        if replica_name:
            events.append((start + kill_after + duration / 3, kill_replica_now))
        progress(f"load for {duration:.0f} s ({writers} writers, {readers} readers)")
        outcomes = asyncio.run(
            _load(base, token, duration=duration, writers=writers, readers=readers, events=events)
        )
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return _report(cluster, victim, killed_at[0], outcomes, replica_name, replica_at)


def _report(
    cluster: LocalCluster,
    victim: str,
    killed_at: float,
    outcomes: list[Outcome],
    replica_name: str | None,
    replica_at: list[float],
) -> DrillReport:
    writes = [o for o in outcomes if o.kind == "write"]
    reads = [o for o in outcomes if o.kind == "read"]
    ok_ends = sorted(o.ended for o in writes if o.status == 201)
    # Writes resumed: the first acknowledged write among those sent after the kill (one in
    # flight at the kill may be acknowledged by its retry on the new writer, or by the old
    # writer just before it died; neither says writes work again).
    after = sorted(o.ended for o in writes if o.status == 201 and o.started > killed_at)
    gaps = [b - a for a, b in itertools.pairwise(ok_ends)]
    counts: dict[str, dict[str, int]] = {"write": {}, "read": {}}
    for o in outcomes:
        counts[o.kind][str(o.status)] = counts[o.kind].get(str(o.status), 0) + 1
    acknowledged = {o.record_id for o in writes if o.status == 201 and o.record_id}
    survivor = next(n for n in cluster.nodes() if n.name != victim and cluster._alive(n.pid))
    rows = cluster.sql(survivor, f"SELECT id FROM garrison.c_{COLLECTION}")  # noqa: S608
    present = {row[0] for row in rows}
    report = DrillReport(
        killed=victim,
        killed_at=0.0,
        writes_resumed_seconds=round(after[0] - killed_at, 2) if after else None,
        longest_write_gap_seconds=round(max(gaps, default=0.0), 2),
        writes=len(writes),
        reads=len(reads),
        status_counts=counts,
        responses_500=sum(1 for o in outcomes if o.status == 500),
        responses_503=sum(1 for o in outcomes if o.status == 503),
        transport_errors=sum(1 for o in outcomes if o.status == 0),
        read_failures=sum(1 for o in reads if o.status != 200),
        acknowledged_writes=len(acknowledged),
        rows_present=len(present),
        acknowledged_missing=len(acknowledged - present),
        new_writer=cluster.active_writer(),
    )
    if replica_name and replica_at:
        report.replica_killed = replica_name
        report.reads_failed_after_replica_loss = sum(
            1 for o in reads if o.started >= replica_at[0] and o.status != 200
        )
    return report


@dataclass
class RedisDrillReport:
    master_killed_after: float
    general: dict[str, int]  # status → count, general API (rate limited, fails open)
    sensitive: dict[str, int]  # status → count, auth-sensitive route (refuses when down)
    responses_500: int
    general_failures: int
    sensitive_refused_503: int
    sensitive_recovered_seconds: float | None
    promoted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_redis_failover(
    base: Path,
    *,
    duration: float = 25.0,
    kill_after: float = 5.0,
    progress: Callable[[str], None] = lambda _: None,
) -> RedisDrillReport:
    """Garrison (SQLite, Redis through Sentinel, rate limits on) under load on a general
    route and an auth-sensitive one; the Redis master is SIGKILLed mid-way."""
    try:
        import httpx
    except ImportError:
        raise ClusterError("the drill needs httpx: pip install httpx") from None
    from garrison.ops.cluster.redis_ha import SentinelGroup

    group = SentinelGroup(base / "redis")
    server: subprocess.Popen[bytes] | None = None
    try:
        group.wait_ready()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
        env.update(
            GARRISON_ENV="development",
            GARRISON_DATA_DIR=str(base / "app"),
            GARRISON_REDIS_SENTINELS=group.sentinels,
            GARRISON_REDIS_PREFIX=f"drill-{uuid.uuid4().hex[:8]}:",
            GARRISON_RATE_LIMIT__REQUESTS_PER_MINUTE="1000000",
            GARRISON_RATE_LIMIT__BURST="100000",
            GARRISON_RATE_LIMIT__ROUTES=json.dumps(
                [
                    {
                        "name": "auth",
                        "paths": ["/api/v1/auth/login"],
                        "requests_per_minute": 1_000_000,
                        "burst": 100_000,
                        "sensitive": True,
                    }
                ]
            ),
            GARRISON_LOG__LEVEL="warning",
            GARRISON_LOG__FORMAT="json",
        )
        _garrison(["migrate", "up"], env)
        (port,) = free_ports(1)
        url = f"http://127.0.0.1:{port}"
        log = open(base / "serve-redis.log", "ab")  # noqa: SIM115 - handed to the child
        server = subprocess.Popen(  # noqa: S603 - this interpreter
            [sys.executable, "-m", "garrison", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_for("garrison serve", lambda: _live(httpx, url), 60)
        progress(f"load for {duration:.0f} s; SIGKILL the Redis master after {kill_after:.0f} s")
        outcomes, killed_at = asyncio.run(_redis_load(url, duration, kill_after, group))
    finally:
        if server is not None:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        promoted = group.promoted()
        group.close()
    general: dict[str, int] = {}
    sensitive: dict[str, int] = {}
    for kind, _started, _ended, status in outcomes:
        bucket = general if kind == "general" else sensitive
        bucket[str(status)] = bucket.get(str(status), 0) + 1
    refused_after = [e for k, _s, e, st in outcomes if k == "sensitive" and st == 503]
    recovered = [
        e
        for k, s, e, st in outcomes
        if k == "sensitive" and st != 503 and s > max(refused_after, default=killed_at)
    ]
    return RedisDrillReport(
        master_killed_after=kill_after,
        general=general,
        sensitive=sensitive,
        responses_500=sum(1 for o in outcomes if o[3] == 500),
        general_failures=sum(1 for o in outcomes if o[0] == "general" and o[3] != 200),
        sensitive_refused_503=sensitive.get("503", 0),
        sensitive_recovered_seconds=round(min(recovered) - killed_at, 2) if recovered else None,
        promoted=promoted,
    )


def _live(httpx: Any, url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/api/health/live").is_success)
    except httpx.HTTPError:
        return False


async def _redis_load(
    url: str, duration: float, kill_after: float, group: Any
) -> tuple[list[tuple[str, float, float, int]], float]:
    import httpx

    outcomes: list[tuple[str, float, float, int]] = []
    start = time.monotonic()
    stop_at = start + duration
    killed: list[float] = []
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def general() -> None:
            while time.monotonic() < stop_at:
                began = time.monotonic()
                try:
                    status = (await client.get("/api/v1/openapi.json")).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append(("general", began, time.monotonic(), status))
                await asyncio.sleep(0.02)

        async def sensitive() -> None:
            # A wrong password: 401 when the limiter answers, 503 when it cannot.
            body = {"email": "nobody@example.com", "password": "not-the-password"}
            while time.monotonic() < stop_at:
                began = time.monotonic()
                try:
                    status = (await client.post("/api/v1/auth/login", json=body)).status_code
                except httpx.HTTPError:
                    status = 0
                outcomes.append(("sensitive", began, time.monotonic(), status))
                await asyncio.sleep(0.1)

        async def kill() -> None:
            await asyncio.sleep(kill_after)
            killed.append(time.monotonic())
            await asyncio.to_thread(group.kill_master)

        await asyncio.gather(general(), general(), sensitive(), kill())
    return outcomes, killed[0]
