"""The auth domain's long-lived parts for one process: hasher, key ring, lockout, caches.

Created once in the app's lifespan (a component of ``garrison.runtime.Runtime``) and by
CLI commands that need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError

from garrison.auth.denylist import DenyList
from garrison.auth.keys import KeyRing, Sealer
from garrison.auth.lockout import Lockout
from garrison.auth.oauth.oidc import ProviderClient
from garrison.auth.passwords import Hasher
from garrison.auth.state import UserStateCache
from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.mail import Mailer, open_mailer
from garrison.settings import Settings
from garrison.store.base import KeyValueStore
from garrison.store.notices import NoticeBus

log = get_logger("garrison.auth")


@dataclass
class ApiKeyCache:
    """A short in-process cache of API-key hash → key id, for cheap identification."""

    ttl: float
    _items: dict[str, tuple[str | None, float]] = field(default_factory=dict)

    def get(self, digest: str) -> tuple[bool, str | None]:
        item = self._items.get(digest)
        if item is None or item[1] < time.monotonic():
            return False, None
        return True, item[0]

    def put(self, digest: str, key_id: str | None) -> None:
        if len(self._items) > 10_000:
            self._items.clear()
        self._items[digest] = (key_id, time.monotonic() + self.ttl)


class AuthRuntime:
    def __init__(
        self,
        settings: Settings,
        db: Database,
        store: KeyValueStore,
        *,
        notices: NoticeBus | None = None,
    ) -> None:
        assert settings.secret_key is not None
        self.settings = settings
        self.db = db
        self.store = store
        self.hasher = Hasher(settings.auth)
        self.keyring = KeyRing(db, Sealer(settings.secret_key.get_secret_value()))
        self.lockout = Lockout(store, settings.auth, db=db)
        self.deny_list = DenyList(
            db, store, refresh_seconds=settings.auth.deny_list_refresh_seconds, notices=notices
        )
        # A user's status and roles, per process (see auth.state); without a bus, none.
        self.user_states = UserStateCache(notices, ttl=settings.auth.state_cache_seconds)
        self.api_keys = ApiKeyCache(ttl=settings.auth.api_key_cache_seconds)
        self.mailer: Mailer = open_mailer(settings)
        self.providers = ProviderClient(settings.auth)  # identity providers, outbound
        self._boot: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load (or create) the signing keys in the background: a database that is down or
        not migrated yet must not hold up the start (health reports it); the key ring loads
        itself on first use too."""
        self._boot = asyncio.create_task(self._bootstrap())
        await self.deny_list.start()

    async def _bootstrap(self) -> None:
        try:
            await self.keyring.bootstrap()
        except (DBAPIError, OSError) as exc:
            log.warning("auth.keys.not_loaded", error=type(exc).__name__)

    async def stop(self) -> None:
        await self.deny_list.stop()
        await self.providers.close()
        # Let a quick load finish (cancelling aiosqlite mid-call leaves its thread behind);
        # a load stuck on an unreachable database is cancelled after two seconds.
        if self._boot is not None and not self._boot.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._boot, timeout=2.0)
