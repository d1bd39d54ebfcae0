"""What the audit trail costs a record write.

A "record write" is one transaction that looks its collection up and inserts a JSON record,
as the data API's create does. The audited variant also calls ``events.emit`` in that
transaction: one insert of the audit entry (sealing into the hash chain and the outbox
message happen later, in the worker). Each writer alternates the two kinds write by write
against the same database, so load from anything else falls on both alike; the figure is
the ratio of the median latencies.

    .venv/bin/python -m bench.audit_cost                 # SQLite (temp dir) and MariaDB
    .venv/bin/python -m bench.audit_cost --writes 500 --rounds 7 --concurrency 1 8
    GARRISON_BENCH_MYSQL_URL=mysql+asyncmy://root@127.0.0.1:3306 (the default)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.audit import install_keyring
from garrison.db import Database, migrate, transact
from garrison.events import Actor, Event
from garrison.log import configure_logging
from garrison.settings import Settings, load_settings

MYSQL_SERVER = os.environ.get("GARRISON_BENCH_MYSQL_URL", "mysql+asyncmy://root@127.0.0.1:3306")


async def _mysql(statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(MYSQL_SERVER)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _write(db: Database, n: int, *, audited: bool) -> None:
    body = {"title": f"record {n}", "done": False, "tags": ["a", "b"], "n": n}

    async def work(session: AsyncSession) -> None:
        # What the data API does for a create: look the collection up, insert the record.
        collection = (
            await session.execute(text("SELECT id FROM bench_collections WHERE name = 'todos'"))
        ).scalar_one()
        result = await session.execute(
            text("INSERT INTO bench_records (collection_id, body) VALUES (:c, :body)"),
            {"c": collection, "body": orjson.dumps(body).decode()},
        )
        if audited:
            await events.emit(
                session,
                Event(
                    action="record.created",
                    actor=Actor("user", "bench"),
                    target_type="todos",
                    target_id=str(getattr(result, "lastrowid", n)),
                    changes={k: (None, v) for k, v in body.items()},
                ),
            )

    await transact(db, work)


async def _round(db: Database, writes: int, concurrency: int) -> tuple[list[float], list[float]]:
    """Per-write latencies (plain, audited). Each writer alternates the two kinds, so load
    from anything else on the machine falls on both alike."""
    plain: list[float] = []
    audited: list[float] = []

    async def writer(offset: int) -> None:
        for i in range(writes // concurrency):
            for kind, sink in ((False, plain), (True, audited)):
                started = time.perf_counter()
                await _write(db, offset + i, audited=kind)
                sink.append(time.perf_counter() - started)

    await asyncio.gather(*(writer(w * writes) for w in range(concurrency)))
    return plain, audited


def _quiet_json_logs(settings: Settings) -> None:
    """As in production: JSON log lines (the event line included), here to /dev/null."""
    settings.log.format, settings.log.level = "json", "info"
    configure_logging(settings, stream=open(os.devnull, "w"))  # noqa: SIM115


async def measure(settings: Settings, writes: int, rounds: int, concurrency: int) -> str:
    _quiet_json_logs(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    key = "INTEGER PRIMARY KEY" if settings.is_sqlite else "BIGINT PRIMARY KEY AUTO_INCREMENT"
    try:
        async with db.transaction() as session:
            await session.execute(
                text(f"CREATE TABLE bench_collections (id {key}, name VARCHAR(64) NOT NULL)")
            )
            await session.execute(text("INSERT INTO bench_collections (name) VALUES ('todos')"))
            await session.execute(
                text(
                    f"CREATE TABLE bench_records (id {key}, "
                    "collection_id INTEGER NOT NULL, body TEXT NOT NULL)"
                )
            )
        await _round(db, 50, 1)  # warm up pools and statement caches
        plain: list[float] = []
        audited: list[float] = []
        for _ in range(rounds):
            p, a = await _round(db, writes, concurrency)
            plain.extend(p)
            audited.extend(a)
    finally:
        await db.dispose()
    base, cost = statistics.median(plain), statistics.median(audited)
    overhead = (cost / base - 1) * 100
    return (
        f"{'sqlite' if settings.is_sqlite else 'mariadb':8} concurrency={concurrency:<3} "
        f"median plain {base * 1e3:6.3f} ms  audited {cost * 1e3:6.3f} ms  "
        f"overhead {overhead:+6.1f}%"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--backend", choices=["sqlite", "mariadb", "both"], default="both")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for concurrency in args.concurrency:
            if args.backend in ("sqlite", "both"):
                path = Path(tmp) / f"bench-{concurrency}.db"
                settings = load_settings(
                    _env_file=None,
                    data_dir=Path(tmp),
                    database_url=f"sqlite+aiosqlite:///{path}",
                )
                install_keyring(settings)
                print(await measure(settings, args.writes, args.rounds, concurrency), flush=True)
            if args.backend in ("mariadb", "both"):
                name = f"garrison_bench_{uuid.uuid4().hex[:10]}"
                await _mysql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
                try:
                    settings = load_settings(
                        _env_file=None,
                        data_dir=Path(tmp),
                        database_url=f"{MYSQL_SERVER}/{name}?charset=utf8mb4",
                    )
                    install_keyring(settings)
                    line = await measure(settings, args.writes, args.rounds, concurrency)
                    print(line, flush=True)
                finally:
                    await _mysql(f"DROP DATABASE IF EXISTS `{name}`")


if __name__ == "__main__":
    asyncio.run(main())
