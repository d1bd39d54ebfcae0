"""Request ids: keep a sane incoming ``X-Request-ID``, else make one; echo it and log it."""

from __future__ import annotations

import re
import uuid

import structlog

from garrison.context import header, state
from garrison.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[A-Za-z0-9._:@+=/-]{8,128}$")


def request_id_for(scope: Scope) -> str:
    """A sane incoming ``X-Request-ID``, else a new one; left in the request state."""
    incoming = header(scope, HEADER)
    value = incoming.decode() if incoming and _SANE.match(incoming) else uuid.uuid4().hex
    state(scope)["request_id"] = value
    return value


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = request_id_for(scope)
        encoded = value.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                headers.append((HEADER, encoded))
                message["headers"] = headers
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=value):
            await self.app(scope, receive, send_with_id)
