"""One JSON access-log line per request, written after the response.

Logged: method, route template (never the raw path of a matched route, which can carry
tokens), status, duration, request id (bound by the request-id layer), client IP and the user
id when a later layer put one in the state. Never headers or query strings.
"""

from __future__ import annotations

import time

from garrison.context import StatusCapture, route_template, state
from garrison.log import get_logger, info_line
from garrison.types import ASGIApp, Receive, Scope, Send

log = get_logger("garrison.access")
_UNMATCHED_PATH_CHARS = 120


def write_line(scope: Scope, status: int, started: float) -> None:
    """The request's line (``started``: ``time.perf_counter()`` when it arrived)."""
    values = state(scope)
    route = route_template(scope)
    info_line(
        log,
        "http.request",
        {
            "method": scope["method"],
            "route": route or "<unmatched>",
            "path": None if route else scope["path"][:_UNMATCHED_PATH_CHARS],
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "client_ip": values.get("client_ip"),
            "user_id": values.get("user_id"),
            "request_id": values.get("request_id"),
        },
    )


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        capture = StatusCapture(send)
        try:
            await self.app(scope, receive, capture)
        finally:
            write_line(scope, capture.status, started)
