"""Per-request values that middleware leave in ``scope["state"]`` for later layers."""

from __future__ import annotations

from typing import Any

from garrison.types import Scope, State


def state(scope: Scope) -> State:
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


def route_template(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else None
