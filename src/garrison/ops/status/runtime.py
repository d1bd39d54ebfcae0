"""The status domain's long-lived parts for one app process (a runtime component): the
snapshot cache, the read-only switch, error tracking, and the first-start hint."""

from __future__ import annotations

import asyncio
import contextlib

from garrison.auth import users
from garrison.db.engine import Database
from garrison.log import get_logger
from garrison.mail import Mailer, open_mailer
from garrison.ops.alerts import errortracking
from garrison.ops.health import HealthService
from garrison.ops.status.readonly import ReadOnlySwitch
from garrison.ops.status.snapshot import StatusService
from garrison.settings import Settings

log = get_logger("garrison.status")
FIRST_ADMIN_COMMAND = "garrison users create --email you@example.com --role admin --password-stdin"


class StatusRuntime:
    def __init__(self, settings: Settings, db: Database, health: HealthService) -> None:
        self.settings = settings
        self.db = db
        self.service = StatusService(
            db=db,
            health=health,
            settings=settings.status,
            data_dir=settings.data_dir,
            public_url=settings.issuer,
        )
        self.read_only = ReadOnlySwitch(db, poll_seconds=settings.status.maintenance_poll_seconds)
        self.mailer: Mailer = open_mailer(settings)
        self.needs_first_admin: bool | None = None  # None: not known yet
        self._boot: asyncio.Task[None] | None = None

    async def start(self) -> None:
        errortracking.init(self.settings)
        self._boot = asyncio.create_task(self._first_start_hint())

    async def stop(self) -> None:
        if self._boot is not None and not self._boot.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._boot, timeout=2.0)
        errortracking.close()

    def changed(self) -> None:
        """An incident or window changed here: this process shows it at once."""
        self.service.invalidate()
        self.read_only.invalidate()

    async def first_admin_needed(self) -> bool:
        if self.needs_first_admin is not False:
            await self._check_users()
        return bool(self.needs_first_admin)

    async def _check_users(self) -> None:
        async with self.db.read_session() as session:
            _, total = await users.list_users(session, limit=1, offset=0)
        self.needs_first_admin = total == 0

    async def _first_start_hint(self) -> None:
        try:
            await self._check_users()
        except Exception as exc:  # not migrated yet, or down: health says so
            log.debug("status.users_unknown", error=type(exc).__name__)
            return
        if self.needs_first_admin:
            log.warning(
                "garrison.first_admin",
                message="no account exists yet; create the first administrator with",
                command=FIRST_ADMIN_COMMAND,
            )
