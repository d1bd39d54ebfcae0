"""Logouts and lockouts live in the database: a new process, or an empty store, still
knows them (in-process, both backends; the real outage is in test_faults.py)."""

from __future__ import annotations

from pathlib import Path

from garrison.auth.denylist import DenyList
from garrison.auth.lockout import Lockout
from garrison.settings import Settings
from garrison.store.base import StoreUnavailable
from garrison.store.memory import MemoryStore
from tests.authkit import auth_app, bearer


class DownStore(MemoryStore):
    """A store that does not answer (Redis away)."""

    async def get(self, key: str) -> bytes | None:
        raise StoreUnavailable("down")

    async def set(self, key: str, value: bytes, *, ttl: float | None = None) -> None:
        raise StoreUnavailable("down")


async def test_a_logout_is_known_to_a_new_process_with_an_empty_store(settings: Settings) -> None:
    async with auth_app(settings) as kit:
        login = await kit.login(await kit.user())
        headers = bearer(login["access_token"])
        me = await kit.client.get("/api/v1/auth/me", headers=headers)
        assert me.status_code == 200
        logout = await kit.client.post("/api/v1/auth/logout", headers=headers)
        assert logout.status_code == 204
        claims = kit.runtime.keyring.recall(login["access_token"], leeway=30)
        assert claims is not None

        fresh = DenyList(kit.runtime.db, MemoryStore(), refresh_seconds=1)
        assert not await fresh.is_denied(claims.jti)  # nothing loaded yet, nothing in the store
        assert await fresh.refresh() >= 1
        assert await fresh.is_denied(claims.jti)
        offline = DenyList(kit.runtime.db, DownStore(), refresh_seconds=1)
        await offline.refresh()
        assert await offline.is_denied(claims.jti)  # the store down: the copy decides
        assert not await offline.is_denied("not-a-logged-out-token")


async def test_a_lock_survives_the_store_losing_its_data(
    settings: Settings, tmp_path: Path
) -> None:
    async with auth_app(settings) as kit:
        now = [1_000_000.0]
        auth = settings.auth.model_copy(update={"lockout_threshold": 2})
        first = Lockout(MemoryStore(), auth, clock=lambda: now[0], db=kit.runtime.db)
        subject = f"{tmp_path.name}@example.com"
        assert await first.failed("account", subject, None) == 0
        assert await first.failed("account", subject, None) > 0
        # Another process, a flushed Redis: the lock is still there, and still ends.
        for store in (MemoryStore(), DownStore()):
            second = Lockout(store, auth, clock=lambda: now[0], db=kit.runtime.db)
            assert await second._remaining("account", subject) > 0
        now[0] += auth.lockout_max_seconds + 1
        assert await first._remaining("account", subject) == 0
        await first.succeeded("account", subject)
        assert (
            await Lockout(MemoryStore(), auth, db=kit.runtime.db)._remaining("account", subject)
            == 0
        )
