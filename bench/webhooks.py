"""Webhook delivery figures, all against local receivers on loopback (SQLite, temp dir).

1. throughput: 3,000 deliveries (1,500 events x 2 endpoints) to a receiver in a separate
   process that answers 204 at once; deliveries/s from the first claim to the last result.
2. latency: events committed at 200/s for 5 s to two endpoints, a real ``garrison worker``
   process woken through Redis pub/sub; commit-to-receipt p50/p99 of one endpoint
   (CLOCK_MONOTONIC is one clock for every process).
3. isolation: the same with the second endpoint hanging 30 s; the first endpoint's p99
   against phase 2 (target: < 20 % change).
4. no-subscriber cost: a create (one insert and its event) against the worker's sealing
   cost per event when no one subscribes, and under the old contract (a message per event).

    flock /tmp/garrison-bench.lock .venv/bin/python -m bench.webhooks [--latency] [--sqlite]

Latency phases run on the local MariaDB (``--sqlite`` for the embedded default).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis
from sqlalchemy import func, select, text
from tests import services
from tests.webhook_receiver import Receiver

from garrison import events
from garrison.audit import install_keyring
from garrison.audit.sealer import seal_pending
from garrison.crypto import keyring_for
from garrison.db import Database, migrate
from garrison.events import Actor, Event
from garrison.log import configure_logging
from garrison.outbox.registry import Message, Registry
from garrison.settings import Settings, load_settings
from garrison.store import wake
from garrison.webhooks import service
from garrison.webhooks.models import SUCCEEDED, WebhookMessage
from garrison.worker import Worker

LOG = open(os.environ.get("BENCH_WORKER_LOG", os.devnull), "ab")  # noqa: SIM115
REDIS_URL = os.environ.get("GARRISON_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def settings_in(directory: Path, **webhooks: Any) -> Settings:
    settings = load_settings(
        _env_file=None,
        data_dir=directory,
        log={"level": "warning", "format": "json"},
        worker={"in_process": False, "poll_interval": 1.0},
        webhooks={"poll_interval": 1.0, **webhooks},
    )
    install_keyring(settings)
    return settings


async def add_endpoint(db: Database, settings: Settings, url: str) -> str:
    async with db.transaction() as session:
        endpoint, _ = await service.create_endpoint(
            session,
            url=url,
            events=["record.*"],
            description="",
            enabled=True,
            headers={},
            rate_per_second=None,
            config=settings.webhooks,
            development=True,
            keyring=keyring_for(settings),
            actor=Actor.system(),
        )
    return endpoint.id


async def emit(db: Database, n: int, batch: int = 100) -> None:
    for start in range(0, n, batch):
        async with db.transaction() as session:
            for i in range(start, min(n, start + batch)):
                await events.emit(
                    session,
                    Event(
                        action="record.created",
                        actor=Actor.system(),
                        target_type="posts",
                        target_id=f"r{i}",
                        data={},
                    ),
                )


async def throughput(directory: Path) -> float:
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before the clock runs
        [sys.executable, "-m", "bench.webhooks", "--receiver"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        settings = settings_in(directory, endpoint_concurrency=32, global_concurrency=128)
        await migrate.upgrade(settings.db_url, settings.db)
        db = Database(settings.db_url, settings.db)
        for _ in range(2):
            await add_endpoint(db, settings, f"http://127.0.0.1:{port}/ok")
        await emit(db, 1500)
        worker = Worker(db, settings)
        await worker.seal()
        assert worker.webhooks is not None
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(worker.webhooks.run(stop))
        while True:
            async with db.read_session() as session:
                done = (
                    await session.execute(
                        select(func.count())
                        .select_from(WebhookMessage)
                        .where(WebhookMessage.status == SUCCEEDED)
                    )
                ).scalar_one()
            if done >= 3000:
                break
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - started
        stop.set()
        await task
        await db.dispose()
        return 3000 / elapsed
    finally:
        proc.terminate()
        proc.wait(10)


async def latency(directory: Path, *, second: str, database_url: str | None) -> list[float]:
    """Commit-to-receipt of the ``/ok`` endpoint's deliveries at 200 events/s, with a
    second endpoint at ``second`` (``/other`` answers at once, ``/hang`` never). A real
    ``garrison worker`` process delivers; commits wake it through Redis pub/sub."""
    prefix = f"bench-wh-{uuid.uuid4().hex[:8]}:"
    settings = settings_in(directory, timeout=30.0)
    if database_url:
        settings.database_url = database_url
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    receiver = await Receiver().start()
    await add_endpoint(db, settings, receiver.url("/ok"))
    await add_endpoint(db, settings, receiver.url(second))
    redis = aioredis.Redis.from_url(REDIS_URL)
    stop_waking = wake.use_redis(redis, prefix)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GARRISON_")},
        "GARRISON_DATABASE_URL": settings.db_url,
        "GARRISON_DATA_DIR": str(settings.data_dir),
        "GARRISON_REDIS_URL": REDIS_URL,
        "GARRISON_REDIS_PREFIX": prefix,
        "GARRISON_LOG__LEVEL": "warning",
        "GARRISON_LOG__FORMAT": "json",
        "GARRISON_WEBHOOKS__TIMEOUT": "30",
    }
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "garrison", "worker", env=env, stdout=LOG, stderr=LOG
    )
    committed: dict[str, float] = {}
    rate, seconds = 200, 5
    try:
        await asyncio.sleep(2)  # let the worker start and subscribe before the clock runs
        started = time.monotonic()
        for i in range(rate * seconds):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = Event(
                action="record.created",
                actor=Actor.system(),
                target_type="posts",
                target_id=f"r{i}",
                data={},
            )
            async with db.transaction() as session:
                await events.emit(session, event)
            committed[event.id] = time.monotonic()
        await receiver.wait_for("/ok", rate * seconds, seconds=120)
    finally:
        worker.terminate()
        await worker.wait()
        await stop_waking()
        await redis.aclose()
        receiver.release()
        await receiver.close()
        await db.dispose()
    latencies = []
    for delivery in receiver.to("/ok"):
        event_id = orjson.loads(delivery.body)["data"]["id"]
        latencies.append((delivery.received - committed[event_id]) * 1000)
    return latencies


async def write_cost(directory: Path) -> tuple[float, float, float]:
    """(create ms, sealing ms per event with no subscriber, sealing ms under the old rule)."""
    settings = settings_in(directory)
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    async with db.transaction() as session:
        await session.execute(text("CREATE TABLE bench_rows (id INTEGER PRIMARY KEY, body TEXT)"))
    n = 1000
    started = time.perf_counter()
    for i in range(n):
        async with db.transaction() as session:
            await session.execute(
                text("INSERT INTO bench_rows (body) VALUES (:b)"), {"b": f'{{"n": {i}}}'}
            )
            await events.emit(
                session,
                Event(
                    action="record.created",
                    actor=Actor.system(),
                    target_type="posts",
                    target_id=str(i),
                ),
            )
    create_ms = (time.perf_counter() - started) * 1000 / n
    await seal_pending(db, batch_size=500, registry=Registry())  # warm-up

    async def wanted(message: Message, db: Database) -> None: ...

    everything = Registry()
    everything.register("*", wanted)
    samples: dict[str, list[float]] = {"none": [], "old": []}
    for _ in range(3):  # alternate, so load from elsewhere falls on both alike
        for name, registry in (("none", Registry()), ("old", everything)):
            await emit(db, n)
            started = time.perf_counter()
            await seal_pending(db, batch_size=500, registry=registry)
            samples[name].append((time.perf_counter() - started) * 1000 / n)
    await db.dispose()
    return create_ms, statistics.median(samples["none"]), statistics.median(samples["old"])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    configure_logging(settings_in(Path(tempfile.gettempdir()) / "garrison-bench-wh"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "--latency" not in sys.argv:
            rate = await throughput(root / "t")
            print(f"throughput: {rate:,.0f} deliveries/s (target >= 1,000)")
        sqlite = "--sqlite" in sys.argv
        mariadb = None if sqlite else await asyncio.to_thread(services.create_mysql_database)
        other = None if sqlite else await asyncio.to_thread(services.create_mysql_database)
        print(f"latency phases on {'MariaDB' if mariadb else 'SQLite'}")
        try:
            base = await latency(root / "l", second="/other", database_url=mariadb)
            hung = await latency(root / "h", second="/hang", database_url=other)
        finally:
            for url in (mariadb, other):
                if url:
                    await asyncio.to_thread(services.drop_mysql_database, url)
        print(
            f"latency at 200 events/s: p50 {statistics.median(base):.1f} ms, "
            f"p99 {pct(base, 0.99):.1f} ms (targets 100 ms / 1,000 ms)"
        )
        change = pct(hung, 0.99) / pct(base, 0.99) - 1
        print(
            f"with a hanging endpoint: p50 {statistics.median(hung):.1f} ms, "
            f"p99 {pct(hung, 0.99):.1f} ms ({change:+.0%} p99, target < 20 %)"
        )
        create_ms, none_ms, old_ms = await write_cost(root / "w")
        print(
            f"create {create_ms:.3f} ms; worker per event with no subscriber {none_ms:.3f} ms "
            f"({none_ms / create_ms:.1%} of a create), old contract {old_ms:.3f} ms "
            f"({old_ms / create_ms:.1%})"
        )


async def serve_receiver() -> None:
    receiver = await Receiver().start()
    print(receiver.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    if "--receiver" in sys.argv:
        asyncio.run(serve_receiver())
    else:
        asyncio.run(main())
