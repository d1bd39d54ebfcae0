"""Garrison as production runs it: a fresh MariaDB database migrated and seeded through the
product's own registry and services, then ``garrison serve --workers N`` and ``garrison
worker`` with ``GARRISON_ENV=production`` (``PROD_DB_*``, Redis, a real secret).

Only limits that would turn a load test into a rate-limit test are raised (the limiter
still runs, and still asks Redis on every request), and access tokens live an hour so one
login covers the whole run.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncmy
import httpx
from sqlalchemy.engine import make_url

from bench.records import SERVER_URL, admin_sql
from bench.suite import procs
from garrison.audit import install_recorder
from garrison.auth import service
from garrison.auth.runtime import AuthRuntime
from garrison.db import Database, migrate
from garrison.events import Actor
from garrison.log import configure_logging
from garrison.records import registry
from garrison.records.ids import uuid7
from garrison.settings import AUTH_SENSITIVE_PATHS, load_settings
from garrison.store.factory import open_store

REDIS_URL = os.environ.get("GARRISON_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PASSWORD = "bench horse battery staple"
SIGNED_IN = "@auth.id != null"
ITEMS: dict[str, Any] = {
    "name": "items",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100},
        {"name": "score", "type": "integer", "indexed": True},
        {"name": "done", "type": "boolean"},
    ],
    # Signed-in users (role "user": records:*) may list, view and create.
    "rules": {"list": SIGNED_IN, "view": SIGNED_IN, "create": SIGNED_IN},
}
UNLIMITED = 1_000_000_000
API = "/api/v1/collections/items/records"


@dataclass
class Seeded:
    url: str  # the database's SQLAlchemy URL
    ids: list[str]  # ids of the seeded rows
    scores: int  # score values 0..scores-1, 20 rows each
    emails: list[str]
    rows: list[tuple[str, int, bool]] = field(default_factory=list)  # (title, score, done)
    # The installation's master secret: the seeding and the servers are one installation
    # (the seeded users' audit keys are wrapped with it).
    secret: str = field(default_factory=lambda: secrets.token_hex(32))


def seed_rows(rows: int) -> list[tuple[str, int, bool]]:
    """The rows both Garrison and PocketBase get: 20 per score value."""
    scores = max(1, rows // 20)
    return [(f"item {i}", i % scores, i % 2 == 0) for i in range(rows)]


def database_name(stamp: str) -> str:
    return f"garrison_suite_{stamp.lower()}"


async def prepare(name: str, rows: int, users: int, data_dir: Path) -> Seeded:
    await admin_sql(f"DROP DATABASE IF EXISTS `{name}`")
    await admin_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    url = f"{SERVER_URL}/{name}?charset=utf8mb4"
    secret = secrets.token_hex(32)
    settings = load_settings(
        _env_file=None,
        data_dir=data_dir,
        database_url=url,
        secret_key=secret,
        log={"level": "warning"},
    )
    configure_logging(settings)
    install_recorder(settings)
    await migrate.upgrade(settings.db_url, settings.db)
    db = Database(settings.db_url, settings.db)
    store = open_store(settings)
    emails = [f"bench{i}@example.com" for i in range(users)]
    try:
        async with db.transaction() as session:
            await registry.create_collection(session, data=ITEMS, actor=Actor.system())
        runtime = AuthRuntime(settings, db, store)
        for email in emails:
            await service.register(
                runtime,
                email=email,
                password=PASSWORD,
                roles=["user"],
                actor=Actor.system(),
                verified=True,
            )
    finally:
        await store.close()
        await db.dispose()
    data = seed_rows(rows)
    ids = await _insert(url, data)
    return Seeded(
        url=url, ids=ids, scores=max(1, rows // 20), emails=emails, rows=data, secret=secret
    )


async def _insert(url: str, data: list[tuple[str, int, bool]]) -> list[str]:
    parsed = make_url(url)
    conn = await asyncmy.connect(
        host=parsed.host,
        port=parsed.port or 3306,
        user=parsed.username,
        password=parsed.password or "",
        db=parsed.database,
        autocommit=False,
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    ids: list[str] = []
    try:
        async with conn.cursor() as cursor:
            for start in range(0, len(data), 5000):
                batch = []
                for title, score, done in data[start : start + 5000]:
                    ids.append(uuid7())
                    batch.append((ids[-1], now, now, None, 1, title, score, done))
                await cursor.executemany(
                    "INSERT INTO c_items (id, created_at, updated_at, owner, version, title,"
                    " score, done) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    batch,
                )
                await conn.commit()
            await cursor.execute("ANALYZE TABLE c_items")
    finally:
        conn.close()
    return ids


def drop(name: str) -> None:
    asyncio.run(admin_sql(f"DROP DATABASE IF EXISTS `{name}`"))


def environment(seeded: Seeded, data_dir: Path, stamp: str, workers: int) -> dict[str, str]:
    parsed = make_url(seeded.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GARRISON_", "PROD_DB_"))}
    routes = [
        {
            "name": "auth",
            "paths": AUTH_SENSITIVE_PATHS,
            "requests_per_minute": UNLIMITED,
            "burst": UNLIMITED,
            "sensitive": True,
        }
    ]
    env |= {
        "GARRISON_ENV": "production",
        "GARRISON_DATA_DIR": str(data_dir),
        "GARRISON_REDIS_URL": REDIS_URL,
        "GARRISON_REDIS_PREFIX": f"garrison-bench-{stamp}:",
        "GARRISON_SECRET_KEY": seeded.secret,
        "GARRISON_METRICS__TOKEN": secrets.token_hex(24),
        "GARRISON_HTTP__WORKERS": str(workers),
        "GARRISON_RATE_LIMIT__REQUESTS_PER_MINUTE": str(UNLIMITED),
        "GARRISON_RATE_LIMIT__BURST": str(UNLIMITED),
        "GARRISON_RATE_LIMIT__ROUTES": json.dumps(routes),
        "GARRISON_AUTH__ACCESS_TOKEN_TTL": "3600",
        "PROD_DB_HOST": parsed.host or "127.0.0.1",
        "PROD_DB_PORT": str(parsed.port or 3306),
        "PROD_DB_NAME": parsed.database or "",
        "PROD_DB_USERNAME": parsed.username or "root",
        "PROD_DB_PASSWORD": parsed.password or "",
    }
    return env


@dataclass
class Running:
    base: str
    serve: Any  # subprocess.Popen[bytes]
    worker: Any
    tokens: list[str]  # one access token per seeded user

    @property
    def pids(self) -> list[int]:
        return [self.serve.pid, self.worker.pid]


def start(seeded: Seeded, env: dict[str, str], workers: int, work: Path) -> Running:
    """``garrison serve`` and ``garrison worker``."""
    port = procs.free_port()
    log = work / "garrison.log"
    garrison = [sys.executable, "-m", "garrison"]
    serve = procs.start(
        [*garrison, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env,
        log,
    )
    worker_log = work / "garrison-worker.log"
    worker = procs.start([sys.executable, "-m", "garrison", "worker"], env, worker_log)
    try:
        procs.wait_accepting(port, serve, log)
        base = f"http://127.0.0.1:{port}"
        tokens = [login(base, email)["access_token"] for email in seeded.emails]
    except BaseException:
        procs.stop(serve)
        procs.stop(worker)
        raise
    return Running(base=base, serve=serve, worker=worker, tokens=tokens)


def login(base: str, email: str) -> dict[str, Any]:
    for _ in range(50):  # the key ring may still be loading right after the start
        response = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
        )
        if response.status_code == 200:
            body: dict[str, Any] = response.json()
            return body
        if response.status_code != 503:
            break
        time.sleep(0.2)
    raise RuntimeError(f"login as {email}: {response.status_code} {response.text[:300]}")


def k6_target(seeded: Seeded, running: Running, path: Path) -> Path:
    sample = random.sample(seeded.ids, min(len(seeded.ids), 5000))
    path.write_text(
        json.dumps(
            {
                "base": running.base,
                "health": "/api/health",
                "get_prefix": f"{API}/",
                "list_pre": f"{API}?limit=20&filter=score%20%3D%20",
                "list_post": "",
                "create_path": API,
                "auths": [f"Bearer {token}" for token in running.tokens],
                "ids": sample,
                "scores": seeded.scores,
                "login_path": "/api/v1/auth/login",
                "refresh_path": "/api/v1/auth/token",
                "logins": [{"email": e, "password": PASSWORD} for e in seeded.emails],
            }
        )
    )
    return path
