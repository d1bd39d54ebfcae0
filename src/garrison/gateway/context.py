"""The current request's context (id, client address, user agent) for code far from the
request object: services and the event seam read it instead of taking a ``Request``."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass


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
