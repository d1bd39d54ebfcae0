"""Requests that carry a body must say it is a media type the API accepts, else 415."""

from __future__ import annotations

from collections.abc import Iterable

from garrison.context import header, request_id
from garrison.errors import UnsupportedMediaType, problem_response
from garrison.types import ASGIApp, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _has_body(scope: Scope) -> bool:
    length = header(scope, b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return header(scope, b"transfer-encoding") is not None


class ContentTypeMiddleware:
    def __init__(self, app: ASGIApp, *, allowed: Iterable[str], path_prefix: str = "/api/") -> None:
        self.app = app
        self.allowed = frozenset(media.lower() for media in allowed)
        self.path_prefix = path_prefix

    def _acceptable(self, value: bytes | None) -> bool:
        if value is None:
            return False
        media = value.decode("latin-1").split(";", 1)[0].strip().lower()
        return media in self.allowed or (
            media.startswith("application/") and media.endswith("+json")
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.path_prefix)
            and _has_body(scope)
            and not self._acceptable(header(scope, b"content-type"))
        ):
            error = UnsupportedMediaType(
                "send the body as one of: " + ", ".join(sorted(self.allowed)),
                headers={"Accept-Post": ", ".join(sorted(self.allowed))},
            )
            await problem_response(error, request_id=request_id(scope))(scope, receive, send)
            return
        await self.app(scope, receive, send)
