"""Read-only mode during a maintenance window that asks for it.

``ReadOnlySwitch`` re-reads the window in progress at most every
``status.maintenance_poll_seconds`` (only when a write asks; reads never look), and keeps
the last answer when the database cannot be read. ``ReadOnlyMiddleware`` answers writes
with 503, ``Retry-After`` (seconds to the window's end) and a problem naming the window.
Status management itself stays writable, so an operator can end the window early.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from garrison.context import request_id, state
from garrison.db.engine import Database
from garrison.errors import ServiceUnavailable, problem_response
from garrison.log import get_logger
from garrison.ops.status import service
from garrison.runtime import find_runtime
from garrison.types import ASGIApp, Receive, Scope, Send

log = get_logger("garrison.status")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXEMPT_PREFIXES = ("/api/v1/status", "/status", "/api/v1/auth/login", "/api/v1/auth/token")


class ReadOnlyMaintenance(ServiceUnavailable):
    """A maintenance window has made the API read-only: writes get 503 until it ends."""

    slug, title = "read-only-maintenance", "Read-Only During Maintenance"


@dataclass(frozen=True)
class Window:
    id: str
    title: str
    ends_at: datetime


class ReadOnlySwitch:
    def __init__(self, db: Database, *, poll_seconds: float) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self._window: Window | None = None
        self._checked = -math.inf
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        self._checked = -math.inf

    async def current(self) -> Window | None:
        if time.monotonic() - self._checked >= self.poll_seconds:
            async with self._lock:
                if time.monotonic() - self._checked >= self.poll_seconds:
                    await self._refresh()
        window = self._window
        if window is not None and window.ends_at <= datetime.now(UTC):
            return None
        return window

    async def _refresh(self) -> None:
        try:
            async with self.db.read_session() as session:
                row = await service.read_only_window(session, now=datetime.now(UTC))
            self._window = None if row is None else Window(row.id, row.title, row.ends_at)
        except Exception as exc:  # keep the last answer; the write will meet the outage
            log.warning("status.read_only_unknown", error=type(exc).__name__)
        self._checked = time.monotonic()


class ReadOnlyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in SAFE_METHODS
            or scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        runtime = find_runtime(scope)
        switch = None if runtime is None else runtime.find(ReadOnlySwitch)
        window = None if switch is None else await switch.current()
        if window is None:
            await self.app(scope, receive, send)
            return
        seconds = max(1, math.ceil((window.ends_at - datetime.now(UTC)).total_seconds()))
        state(scope)["maintenance"] = window.id
        error = ReadOnlyMaintenance(
            f"the API is read-only during maintenance {window.title!r} until "
            f"{window.ends_at.isoformat()}",
            headers={"Retry-After": str(seconds)},
            maintenance={
                "id": window.id,
                "title": window.title,
                "ends_at": window.ends_at.isoformat(),
            },
        )
        await problem_response(error, request_id=request_id(scope))(scope, receive, send)
