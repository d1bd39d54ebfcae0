"""Brute-force protection on the memory store and on Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from garrison.auth.errors import LockedOut
from garrison.auth.lockout import Lockout
from garrison.settings import AuthSettings, Settings
from garrison.store.base import KeyValueStore
from garrison.store.memory import MemoryStore
from garrison.store.redis import RedisStore
from tests.authkit import PASSWORD, auth_app
from tests.conftest import make_settings
from tests.helpers import free_port


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[KeyValueStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url: str = request.getfixturevalue("redis_url")
    redis = RedisStore(url, prefix=f"garrison-test-{uuid.uuid4().hex}:")
    yield redis
    await redis.close()


def _settings(**values: float) -> AuthSettings:
    base = {"lockout_threshold": 3, "lockout_base_seconds": 10, "lockout_max_seconds": 40}
    return AuthSettings.model_validate({**base, **values})


async def test_lock_grows_exponentially_and_ends(store: KeyValueStore) -> None:
    clock = Clock()
    lockout = Lockout(store, _settings(), clock=clock)
    for _ in range(2):
        assert await lockout.failed("account", "a@example.com", None) == 0
        await lockout.check("account", "a@example.com", None)
    assert await lockout.failed("account", "a@example.com", None) == 10
    with pytest.raises(LockedOut) as locked:
        await lockout.check("account", "a@example.com", None)
    assert locked.value.headers["Retry-After"] == "10"
    assert locked.value.status == 429
    # Other accounts are not affected.
    await lockout.check("account", "b@example.com", None)

    clock.now += 10  # the lock ends by itself
    await lockout.check("account", "a@example.com", None)
    assert await lockout.failed("account", "a@example.com", None) == 20
    clock.now += 20
    assert await lockout.failed("account", "a@example.com", None) == 40
    clock.now += 40
    assert await lockout.failed("account", "a@example.com", None) == 40  # capped
    clock.now += 40
    await lockout.succeeded("account", "a@example.com")
    await lockout.check("account", "a@example.com", None)
    assert await lockout.failed("account", "a@example.com", None) == 0  # counter reset


async def test_ip_and_global_caps(store: KeyValueStore) -> None:
    clock = Clock()
    lockout = Lockout(
        store, _settings(lockout_ip_threshold=4, lockout_global_per_minute=1000), clock=clock
    )
    for n in range(4):
        await lockout.failed("account", f"user{n}@example.com", "203.0.113.9")
    with pytest.raises(LockedOut):
        await lockout.check("account", "fresh@example.com", "203.0.113.9")
    await lockout.check("account", "fresh@example.com", "203.0.113.10")

    spread = Lockout(store, _settings(lockout_global_per_minute=5), clock=clock)
    clock.now += 120
    for n in range(5):
        await spread.failed("account", f"g{n}-{uuid.uuid4().hex}@example.com", None)
    with pytest.raises(LockedOut):
        await spread.check("account", "anyone@example.com", None)
    clock.now += 60
    await spread.check("account", "anyone@example.com", None)


async def test_keys_never_hold_addresses() -> None:
    store = MemoryStore()
    lockout = Lockout(store, _settings(), clock=Clock())
    await lockout.failed("account", "secret.person@example.com", "198.51.100.1")
    assert all("secret.person" not in key and "198.51.100.1" not in key for key in store._data)


async def test_login_lockout_over_http(tmp_path: Path, database_url: str) -> None:
    settings: Settings = make_settings(
        tmp_path,
        database_url=database_url,
        auth={"lockout_threshold": 3, "lockout_base_seconds": 30},
    )
    async with auth_app(settings) as kit:
        clock = Clock()
        kit.runtime.lockout.clock = clock
        email = await kit.user()
        for _ in range(3):
            wrong = await kit.client.post(
                "/api/v1/auth/login", json={"email": email, "password": "not the password"}
            )
            assert wrong.status_code == 401
        locked = await kit.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert locked.status_code == 429
        assert locked.headers["retry-after"] == "30"
        assert locked.headers["content-type"] == "application/problem+json"
        clock.now += 30
        assert (await kit.login(email))["access_token"]


async def test_client_secret_guessing_is_locked_out(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auth={"lockout_threshold": 2})
    async with auth_app(settings) as kit:
        for _ in range(2):
            response = await kit.client.post(
                "/api/v1/auth/token",
                data={"grant_type": "client_credentials"},
                auth=("svc_guessed", "gcs_guess"),
            )
            assert response.status_code == 401
        locked = await kit.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "client_credentials"},
            auth=("svc_guessed", "gcs_guess"),
        )
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0


async def test_store_outage_fails_open(tmp_path: Path) -> None:
    dead = RedisStore(
        f"redis://127.0.0.1:{free_port()}/0", prefix="garrison-test-dead:", timeout=0.2
    )
    lockout = Lockout(dead, _settings(), clock=Clock())
    await lockout.check("account", "a@example.com", "192.0.2.1")
    assert await lockout.failed("account", "a@example.com", "192.0.2.1") == 0
    await lockout.succeeded("account", "a@example.com")
    await dead.close()


async def test_lockout_is_recorded_as_an_event(tmp_path: Path) -> None:
    import io
    import json

    from garrison.log import configure_logging

    settings = make_settings(tmp_path, auth={"lockout_threshold": 1})
    stream = io.StringIO()
    settings.log.format = "json"
    configure_logging(settings, stream=stream)
    async with auth_app(settings) as kit:
        email = await kit.user()
        await kit.client.post("/api/v1/auth/login", json={"email": email, "password": "nope nope"})
    events = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    [lock] = [e for e in events if e.get("action") == "auth.lockout"]
    assert lock["outcome"] == "denied"
    assert lock["ip"] == "127.0.0.1"
    assert lock["request_id"]
    assert email not in stream.getvalue()
