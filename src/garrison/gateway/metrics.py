"""Request count, duration and in-flight gauge, labelled by method, route template, status.

The route label is the template the router matched (``/api/v1/collections/{name}``), never
the raw path, which can carry ids and tokens; a path no route matched is ``<unmatched>``.
"""

from __future__ import annotations

import time

from garrison.context import StatusCapture, route_template
from garrison.metrics.registry import HTTP_IN_FLIGHT, observe_request
from garrison.types import ASGIApp, Receive, Scope, Send


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        capture = StatusCapture(send)
        HTTP_IN_FLIGHT.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, capture)
        finally:
            HTTP_IN_FLIGHT.dec()
            elapsed = time.perf_counter() - started
            observe_request(scope["method"], route_template(scope), capture.status, elapsed)
