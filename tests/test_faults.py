"""Outages, for real: a private mariadbd stopped under a running server, a private
redis-server killed and started again empty. Each asserts the status codes, Retry-After,
and that logouts and lockouts held (README, "When a dependency is down")."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from garrison.settings import AUTH_SENSITIVE_PATHS
from garrison.store.base import StoreUnavailable
from garrison.store.ratelimit import Rate, RedisRateLimiter
from garrison.store.redis import RedisStore
from tests import services
from tests.hardening_server import (
    ADMIN_EMAIL,
    PASSWORD,
    USER_EMAIL,
    Running,
    running_server,
    server_env,
)
from tests.throwaway_mariadb import throwaway_mariadb
from tests.throwaway_redis import RedisProcess, throwaway_redis

pytestmark = pytest.mark.slow
PROBLEM = "application/problem+json"


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # a bounded pause between probes of a recovering service


def _restart_redis_empty(server: RedisProcess) -> subprocess.Popen[bytes]:
    """The same port, a new process with nothing in it (a flush, a failover)."""
    server.kill()
    binary = shutil.which("redis-server")
    assert binary is not None
    proc = subprocess.Popen(
        [binary, "--port", str(server.port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    server.proc = proc  # type: ignore[assignment]
    return proc


def _collection(running: Running) -> None:
    response = httpx.post(
        f"{running.base_url}/api/v1/collections",
        headers=running.headers("admin"),
        json={
            "name": "notes",
            "fields": [{"name": "title", "type": "text"}],
            "rules": {"list": "", "view": "", "create": "", "update": "", "delete": ""},
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text


# --- the database stopped ------------------------------------------------------------------


def test_database_outage_is_503_with_retry_after_on_every_path(tmp_path: Path) -> None:
    with throwaway_mariadb(tmp_path / "mariadb") as db:
        # A request retries a lost database for DB__RETRY_DEADLINE (15 s) before its 503, to
        # ride out a failover; the answer after the deadline is what this test is about.
        env = server_env(tmp_path / "var", db.url, None) | {"GARRISON_DB__RETRY_DEADLINE": "2"}
        with running_server(env) as running:
            _collection(running)
            base = running.base_url
            admin, user = running.headers("admin"), running.headers("user")
            made = httpx.post(f"{base}/api/v1/collections/notes/records", json={"title": "a"},
                              headers=user)  # fmt: skip
            assert made.status_code == 201, made.text
            record = made.json()["id"]
            records = f"{base}/api/v1/collections/notes/records"
            requests: list[tuple[str, str, dict[str, str], object]] = [
                ("GET", f"{base}/api/v1/auth/me", user, None),
                ("GET", records, user, None),
                ("GET", f"{records}?filter=title%20%3D%20'a'", user, None),
                ("GET", f"{records}/{record}", user, None),
                ("POST", records, user, {"title": "b"}),
                ("PATCH", f"{records}/{record}", user, {"title": "c"}),
                ("DELETE", f"{records}/{record}", user, None),
                ("GET", f"{base}/api/v1/collections", admin, None),
                ("GET", f"{base}/api/v1/admin/users", admin, None),
                ("GET", f"{base}/api/v1/audit", admin, None),
                ("GET", f"{base}/api/v1/api-keys", user, None),
                ("POST", f"{base}/api/v1/auth/login", {}, {"email": USER_EMAIL,
                                                           "password": PASSWORD}),
            ]  # fmt: skip
            db.kill()
            with httpx.Client(timeout=30) as client:
                for method, url, headers, body in requests:
                    response = client.request(method, url, headers=headers, json=body)
                    where = f"{method} {url}"
                    assert response.status_code == 503, (where, response.text)
                    assert int(response.headers["retry-after"]) >= 1, where
                    assert response.headers["content-type"].startswith(PROBLEM), where
                ready = client.get(f"{base}/api/health/ready")
                assert ready.status_code == 503
                assert "retry-after" in ready.headers
                db.start()
                wait_for(
                    lambda: client.get(f"{base}/api/v1/auth/me", headers=user).status_code == 200,
                    "the API to answer again once the database is back",
                )
                after = client.post(records, json={"title": "d"}, headers=user)
                assert after.status_code == 201, after.text


# --- Redis killed, then started again empty -------------------------------------------------


def _limited_env(env: dict[str, str]) -> dict[str, str]:
    routes = [
        {"name": "auth", "paths": AUTH_SENSITIVE_PATHS, "requests_per_minute": 100_000,
         "burst": 100_000, "sensitive": True},
    ]  # fmt: skip
    return env | {
        "GARRISON_RATE_LIMIT__REQUESTS_PER_MINUTE": "100000",
        "GARRISON_RATE_LIMIT__BURST": "100000",
        "GARRISON_RATE_LIMIT__ROUTES": json.dumps(routes),
        "GARRISON_AUTH__LOCKOUT_BASE_SECONDS": "600",
        "GARRISON_AUTH__LOCKOUT_IP_THRESHOLD": "100000",
        "GARRISON_AUTH__DENY_LIST_REFRESH_SECONDS": "0.5",
        # A killed Redis refuses at once; a slow answer is not what this test is about. On
        # a machine whose cores are busy, a login burst's Redis replies can take longer than
        # the 0.5 s default and would fail the sensitive routes closed (503) as an outage.
        "GARRISON_REDIS_TIMEOUT": "5",
    }


@pytest.fixture(params=["sqlite", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/faults.db"
        return
    url = services.create_mysql_database()
    try:
        yield url
    finally:
        services.drop_mysql_database(url)


def _login(client: httpx.Client, base: str, email: str, password: str) -> httpx.Response:
    return client.post(f"{base}/api/v1/auth/login", json={"email": email, "password": password})


def test_redis_lost_and_restarted_empty_keeps_logouts_and_lockouts(
    tmp_path: Path, database: str
) -> None:
    with throwaway_redis() as redis:
        env = _limited_env(server_env(tmp_path / "var", database, redis.url))
        with running_server(env) as running, httpx.Client(timeout=30) as client:
            base = running.base_url
            _collection(running)
            me = f"{base}/api/v1/auth/me"
            kept = running.headers("admin")
            ended = {"Authorization": f"Bearer {running.login('admin')}"}
            assert client.post(f"{base}/api/v1/auth/logout", headers=ended).status_code == 204
            assert client.get(me, headers=ended).status_code == 401
            for _ in range(10):  # until the user's account is locked
                if _login(client, base, USER_EMAIL, "wrong password!").status_code == 429:
                    break
            locked = _login(client, base, USER_EMAIL, PASSWORD)
            assert locked.status_code == 429
            assert "retry-after" in locked.headers

            redis.kill()
            # Authenticated reads keep working; the logout known before still holds.
            assert client.get(me, headers=kept).status_code == 200
            assert client.get(me, headers=ended).status_code == 401
            listed = client.get(f"{base}/api/v1/collections/notes/records")
            assert listed.status_code == 200
            assert "ratelimit" in listed.headers  # limited per process, never unlimited
            login = _login(client, base, ADMIN_EMAIL, PASSWORD)
            assert login.status_code == 503  # a sensitive route fails closed
            assert int(login.headers["retry-after"]) >= 1

            _restart_redis_empty(redis)
            wait_for(
                lambda: _login(client, base, "nobody@example.com", "x" * 12).status_code != 503,
                "the sensitive routes to answer once Redis is back",
            )
            assert client.get(me, headers=ended).status_code == 401  # still logged out
            relocked = _login(client, base, USER_EMAIL, PASSWORD)
            assert relocked.status_code == 429
            assert "retry-after" in relocked.headers
            assert client.get(me, headers=kept).status_code == 200

            # No stray 503 from a pooled connection that died with the old Redis.
            async def burst() -> list[int]:
                async with httpx.AsyncClient(timeout=60) as many:
                    calls = [
                        many.post(
                            f"{base}/api/v1/auth/login",
                            json={
                                "email": f"{uuid.uuid4().hex}@example.com",
                                "password": "not the password",
                            },
                        )
                        for _ in range(40)
                    ]
                    return [r.status_code for r in await asyncio.gather(*calls)]

            statuses = asyncio.run(burst())
            assert 503 not in statuses, statuses
            assert 500 not in statuses, statuses


# --- finding 13 at the store level ----------------------------------------------------------


async def test_pooled_connections_survive_a_redis_restart() -> None:
    """Every connection the pool holds dies with the server; none may fail a command."""
    with throwaway_redis() as redis:
        store = RedisStore(redis.url, prefix=f"t13-{uuid.uuid4().hex[:8]}:")
        limiter = RedisRateLimiter(store.client, prefix=store.prefix)
        rate = Rate.per_minute(100_000, 100_000)

        async def use(i: int) -> None:
            await store.set(f"k{i}", b"1")
            await limiter.hit(f"x{i}", rate)

        try:
            await asyncio.gather(*(use(i) for i in range(20)))  # 20 pooled connections
            _restart_redis_empty(redis)
            await asyncio.to_thread(
                wait_for, lambda: _pings(redis.port), "the new redis-server to answer"
            )
            failures = 0
            for _ in range(3):
                for outcome in await asyncio.gather(
                    *(use(i) for i in range(20)), return_exceptions=True
                ):
                    if isinstance(outcome, StoreUnavailable):
                        failures += 1
                    elif isinstance(outcome, BaseException):
                        raise outcome
            assert failures == 0
        finally:
            await store.close()


def _pings(port: int) -> bool:
    import redis as sync_redis

    client = sync_redis.Redis(port=port, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except sync_redis.RedisError:
        return False
    finally:
        client.close()
