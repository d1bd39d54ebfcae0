"""The request path's in-memory copies (a user's status and roles, the deny list, the quota
table) and their invalidation by change notices: a change is refused in the same process at
once, in another process as soon as its notice arrives, and a copy is never trusted while
notices cannot arrive. Real Redis, both backends."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from garrison.auth import users
from garrison.auth.authenticate import user_state
from garrison.auth.denylist import DenyList, deny_key
from garrison.auth.state import UserState, UserStateCache
from garrison.db.engine import Database
from garrison.events import Actor
from garrison.quotas import service as quotas
from garrison.quotas.service import QuotaLookup
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.store.base import StoreUnavailable
from garrison.store.memory import MemoryStore
from garrison.store.notices import NoticeBus, mark
from garrison.store.pubsub import MemoryPubSub, RedisPubSub
from garrison.store.ratelimit import Rate, RedisRateLimiter
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import ROOT, clean_env


@pytest.fixture
def prefix() -> str:
    return f"garrison-notices-{secrets.token_hex(4)}:"


@pytest.fixture
def shared(tmp_path: Path, database_url: str, redis_url: str, prefix: str) -> Settings:
    """Settings with Redis, so the notice bus is live."""
    return make_settings(
        tmp_path, database_url=database_url, redis_url=redis_url, redis_prefix=prefix
    )


@pytest.fixture
async def kit(shared: Settings) -> AsyncIterator[AuthApp]:
    async with auth_app(shared) as app:
        bus = runtime_of(app.running.app).get(NoticeBus)
        await asyncio.wait_for(bus.subscribed.wait(), timeout=10)
        yield app


async def _admin_headers(kit: AuthApp) -> dict[str, str]:
    return bearer(await kit.token(role="admin"))


async def _user_id(kit: AuthApp, headers: dict[str, str]) -> str:
    me = await kit.client.get("/api/v1/auth/me", headers=headers)
    assert me.status_code == 200, me.text
    user_id: str = me.json()["id"]
    return user_id


async def test_a_disabled_user_is_refused_at_once_by_the_process_that_cached_it(
    kit: AuthApp,
) -> None:
    admin = await _admin_headers(kit)
    user = bearer(await kit.token())
    user_id = await _user_id(kit, user)
    cache = kit.runtime.user_states
    assert cache.usable
    assert cache.get(user_id)[0], "the first request left the user's state in the copy"
    disabled = await kit.client.post(f"/api/v1/admin/users/{user_id}/disable", headers=admin)
    assert disabled.status_code == 200, disabled.text
    assert not cache.get(user_id)[0], "the commit dropped the entry"
    refused = await kit.client.get("/api/v1/auth/me", headers=user)
    assert refused.status_code == 401


async def test_a_role_taken_away_or_a_permission_removed_applies_at_once(kit: AuthApp) -> None:
    admin = await _admin_headers(kit)
    role = f"readers{secrets.token_hex(3)}"
    made = await kit.client.post(
        "/api/v1/admin/roles", headers=admin, json={"name": role, "permissions": ["records:read"]}
    )
    assert made.status_code == 201, made.text
    user = bearer(await kit.token())
    user_id = await _user_id(kit, user)
    assigned = await kit.client.put(
        f"/api/v1/admin/users/{user_id}/roles", headers=admin, json={"roles": [role]}
    )
    assert assigned.status_code == 200, assigned.text
    assert (await kit.client.get("/api/v1/_probe/records", headers=user)).status_code == 200
    # The role loses the permission: the user's cached permissions go with it.
    patched = await kit.client.patch(
        f"/api/v1/admin/roles/{role}", headers=admin, json={"permissions": ["reports:read"]}
    )
    assert patched.status_code == 200, patched.text
    assert (await kit.client.get("/api/v1/_probe/records", headers=user)).status_code == 403
    assert (await kit.client.get("/api/v1/_probe/reports", headers=user)).status_code == 200
    # The role is taken away.
    cleared = await kit.client.put(
        f"/api/v1/admin/users/{user_id}/roles", headers=admin, json={"roles": []}
    )
    assert cleared.status_code == 200, cleared.text
    assert (await kit.client.get("/api/v1/_probe/reports", headers=user)).status_code == 403


async def test_a_rolled_back_change_sends_no_notice(kit: AuthApp) -> None:
    await kit.user(role="admin")  # disabling the user must not leave the system without one
    user = bearer(await kit.token())
    user_id = await _user_id(kit, user)
    cache = kit.runtime.user_states
    epoch = cache.epoch

    async def fail_after_the_change() -> None:
        async with kit.runtime.db.transaction() as session:
            await users.set_status(
                session, user_id=user_id, status="disabled", actor=Actor.system()
            )
            raise RuntimeError("the change fails after the service ran")

    with pytest.raises(RuntimeError):
        await fail_after_the_change()
    assert cache.epoch == epoch
    assert cache.get(user_id)[0]
    assert (await kit.client.get("/api/v1/auth/me", headers=user)).status_code == 200


async def test_a_change_committed_by_another_process_reaches_this_one(
    kit: AuthApp, shared: Settings
) -> None:
    """A command-line process (no runtime, no subscription) disables the user; this
    process's copy drops the entry when the notice arrives over Redis."""
    await kit.user(role="admin")
    user = bearer(await kit.token())
    user_id = await _user_id(kit, user)
    cache = kit.runtime.user_states
    assert cache.get(user_id)[0]
    script = textwrap.dedent(
        f"""
        from garrison.audit import install_recorder
        from garrison.auth import users
        from garrison.db import Database
        from garrison.events import Actor
        from garrison.settings import load_settings
        from garrison.store import notices
        from garrison.store.factory import open_pubsub

        settings = load_settings(_env_file=None)
        notices.configure_commands(lambda: open_pubsub(settings))
        install_recorder()

        async def main() -> None:
            db = Database(settings.db_url, settings.db)
            try:
                async with db.transaction() as session:
                    await users.set_status(
                        session, user_id={user_id!r}, status="disabled", actor=Actor.system()
                    )
            finally:
                await db.dispose()

        notices.run_with_notices(main())
        """
    )
    env = clean_env(
        {
            "GARRISON_DATABASE_URL": shared.database_url or "",
            "GARRISON_REDIS_URL": shared.redis_url or "",
            "GARRISON_REDIS_PREFIX": shared.redis_prefix,
            "GARRISON_DATA_DIR": str(shared.data_dir),
        }
    )
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", script],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The notice is on its way or here: wait for the entry to go (a deadline, no pause).
    started = time.monotonic()
    while cache.get(user_id)[0]:
        assert time.monotonic() - started < 10, "the other process's notice never arrived"
        await asyncio.sleep(0.01)
    assert (await kit.client.get("/api/v1/auth/me", headers=user)).status_code == 401


async def test_a_logout_in_another_process_is_refused_here_at_once(kit: AuthApp) -> None:
    """This process never hears of the logout (its notice is not sent here), but the store
    has it, and the store is asked: by the rate limiter's round trip when it runs (the
    production profile), else by the deny list itself."""
    login = await kit.login(await kit.user())
    headers = bearer(login["access_token"])
    assert (await kit.client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    claims = kit.runtime.keyring.recall(login["access_token"], leeway=30)
    assert claims is not None
    # What another process's logout leaves behind: the row's copy in the store.
    await kit.runtime.store.set(deny_key(claims.jti), b"1", ttl=600)
    assert claims.jti not in kit.runtime.deny_list._local
    refused = await kit.client.get("/api/v1/auth/me", headers=headers)
    assert refused.status_code == 401


@pytest.fixture
async def limited(
    tmp_path: Path, database_url: str, redis_url: str, prefix: str
) -> AsyncIterator[AuthApp]:
    """The production profile's shape: every API request is rate limited."""
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        rate_limit={"requests_per_minute": 100_000, "burst": 100_000},
    )
    async with auth_app(settings) as app:
        yield app


class _NoGet(MemoryStore):
    """A store whose reads fail: only the rate limiter's round trip can answer."""

    async def get(self, key: str) -> bytes | None:
        raise StoreUnavailable("reads are off in this test")


async def test_the_rate_limiter_round_trip_answers_the_deny_list(limited: AuthApp) -> None:
    login = await limited.login(await limited.user())
    headers = bearer(login["access_token"])
    assert (await limited.client.get("/api/v1/auth/me", headers=headers)).status_code == 200
    claims = limited.runtime.keyring.recall(login["access_token"], leeway=30)
    assert claims is not None
    await limited.runtime.store.set(deny_key(claims.jti), b"1", ttl=600)
    limited.runtime.deny_list.store = _NoGet()  # the deny list itself cannot ask
    refused = await limited.client.get("/api/v1/auth/me", headers=headers)
    assert refused.status_code == 401


async def test_a_quota_change_is_used_at_once(kit: AuthApp) -> None:
    runtime = runtime_of(kit.running.app)
    lookup = runtime.get(QuotaLookup)
    role = f"metered{secrets.token_hex(3)}"
    assert await lookup("user:x", [role]) is None  # the table is now in the copy
    async with runtime.db.transaction() as session:
        await quotas.set_quota(
            session,
            subject_type="role",
            subject=role,
            requests_per_minute=7,
            burst=None,
            actor=Actor.system(),
        )
    rate = await lookup("user:x", [role])
    assert rate is not None
    assert rate.limit == 7
    async with runtime.db.transaction() as session:
        await quotas.delete_quota(session, subject_type="role", subject=role, actor=Actor.system())
    assert await lookup("user:x", [role]) is None


async def test_copies_are_not_trusted_without_notices(settings: Settings) -> None:
    """The embedded default has no Redis: the bus is never live, so the database answers
    every time (a command beside the server could not announce its change)."""
    async with auth_app(settings) as kit:
        await kit.user(role="admin")
        user = bearer(await kit.token())
        user_id = await _user_id(kit, user)
        assert not kit.runtime.user_states.usable
        assert not kit.runtime.user_states.get(user_id)[0]
        async with kit.runtime.db.transaction() as session:
            await users.set_status(
                session, user_id=user_id, status="disabled", actor=Actor.system()
            )
        assert (await kit.client.get("/api/v1/auth/me", headers=user)).status_code == 401


async def test_a_load_that_began_before_a_notice_is_not_kept(kit: AuthApp) -> None:
    user = bearer(await kit.token())
    user_id = await _user_id(kit, user)
    cache = kit.runtime.user_states
    cache.forget(user_id)
    epoch = cache.epoch
    stale = UserState("active", 0, ("user",), frozenset({"records:*"}))
    cache.forget(user_id)  # a notice arrives while the load is under way
    cache.put(user_id, stale, epoch=epoch)
    assert not cache.get(user_id)[0]
    state = await user_state(kit.runtime, user_id)  # a fresh load is kept
    assert state is not None
    assert cache.get(user_id) == (True, state)


async def test_the_bus_resets_every_copy_when_it_subscribes(redis_url: str, prefix: str) -> None:
    bus = NoticeBus(RedisPubSub(redis_url, prefix=prefix))
    cache = UserStateCache(bus, ttl=30)
    assert not cache.usable  # not subscribed yet
    await bus.start()
    try:
        await asyncio.wait_for(bus.subscribed.wait(), timeout=10)
        assert cache.usable
        cache.put("u1", UserState("active", 0, (), frozenset()), epoch=cache.epoch)
        epoch = cache.epoch
        # Another process's notice.
        publisher = aioredis.Redis.from_url(redis_url)
        try:
            await publisher.publish(prefix + "notices", b"elsewhere|auth.user|u1")
        finally:
            await publisher.aclose()
        started = time.monotonic()
        while cache.epoch == epoch:
            assert time.monotonic() - started < 10
            await asyncio.sleep(0.01)
        assert not cache.get("u1")[0]
    finally:
        await bus.stop()
    assert not cache.usable


async def test_the_in_process_bus_delivers_locally_and_is_never_live(
    records_db: Database,
) -> None:
    bus = NoticeBus(MemoryPubSub())
    heard: list[str] = []
    bus.on("topic", heard.append, lambda: None)
    await bus.start()
    try:
        assert not bus.live
        await bus.announce("topic", "a")
        async with records_db.transaction() as session:
            mark(session, "topic", "b")
            mark(session, "topic", "b")  # marked twice, announced once
        assert heard == ["a", "b"]
    finally:
        await bus.stop()


async def test_the_rate_limit_round_trip_answers_the_probe(redis_url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, prefix=prefix)
    try:
        rate = Rate.per_minute(100)
        assert (await limiter.hit("k", rate)).probed is None
        assert (await limiter.hit("k", rate, probe="auth:deny:nope")).probed is False
        await client.set(prefix + "auth:deny:yes", b"1", ex=60)
        decision = await limiter.hit("k", rate, probe="auth:deny:yes")
        assert decision.allowed
        assert decision.probed is True
    finally:
        await client.delete(prefix + "auth:deny:yes", prefix + "rl:k")
        await client.aclose()


async def test_the_deny_list_hears_other_processes_and_takes_the_store_answer(
    records_db: Database, redis_url: str, prefix: str
) -> None:
    store = MemoryStore()
    bus = NoticeBus(RedisPubSub(redis_url, prefix=prefix))
    deny = DenyList(records_db, store, refresh_seconds=1, notices=bus)
    await store.set(deny_key("t1"), b"1", ttl=60)
    assert await deny.is_denied("t1"), "no answer in hand: the store is asked"
    assert not await deny.is_denied("t1", in_store=False), "this request's store answer"
    await bus.start()
    try:
        await asyncio.wait_for(bus.subscribed.wait(), timeout=10)
        other = NoticeBus(RedisPubSub(redis_url, prefix=prefix))
        await other.start(listen=False)
        try:
            await other.announce("auth.deny", f"t2 {time.time() + 600:.0f}")
        finally:
            await other.stop()
        started = time.monotonic()
        while not await deny.is_denied("t2", in_store=False):
            assert time.monotonic() - started < 10, "the other process's logout never arrived"
            await asyncio.sleep(0.01)
    finally:
        await bus.stop()
