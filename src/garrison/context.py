"""The current request, for code far from the request object.

Two kinds of per-request values live here, below the gateway and the domains so every layer
can read them:

- ``RequestContext`` (id, client address, user agent) in a context variable: services and
  the event seam read it instead of taking a ``Request``;
- the values middleware leave in the ASGI ``scope["state"]`` for later layers (request id,
  the resolved principal, the matched route), with small typed accessors.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from garrison.types import Message, Scope, Send, State


@dataclass(frozen=True)
class RequestContext:
    request_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None


EMPTY = RequestContext()
_current: ContextVar[RequestContext] = ContextVar("garrison_request_context", default=EMPTY)


def current_context() -> RequestContext:
    return _current.get()


def set_context(context: RequestContext) -> object:
    """Set the context; returns a token for ``reset_context``."""
    return _current.set(context)


def reset_context(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


def state(scope: Scope) -> State:
    """The request's ``scope["state"]``, created on first use."""
    value: State = scope.setdefault("state", {})
    return value


def request_id(scope: Scope) -> str | None:
    value: Any = state(scope).get("request_id")
    return value if isinstance(value, str) else None


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (``name`` lower-case)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value)
    return None


class StatusCapture:
    """Wraps ``send`` to remember the response status (500 until a response starts), for
    the layers that report on a request after it ran (access log, metrics, tracing)."""

    __slots__ = ("send", "status")

    def __init__(self, send: Send) -> None:
        self.send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self.send(message)


def route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
