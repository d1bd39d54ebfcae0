"""Request bodies larger than the limit get 413, announced (Content-Length) or streamed.

``raised`` gives some requests a larger limit (the upload routes, decided in ``app.py``):
they enforce their own per-file limits while streaming."""

from __future__ import annotations

from collections.abc import Callable

from garrison.context import header, request_id
from garrison.errors import PayloadTooLarge, problem_response
from garrison.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        raised: Callable[[Scope], int | None] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.raised = raised

    def _error(self, limit: int) -> PayloadTooLarge:
        return PayloadTooLarge(f"the request body exceeds {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if self.raised is not None:
            limit = self.raised(scope) or limit
        declared = header(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > limit
            except ValueError:
                too_large = False  # the server rejects a malformed length itself
            if too_large:
                response = problem_response(self._error(limit), request_id=request_id(scope))
                await response(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise self._error(limit)
            return message

        await self.app(scope, limited_receive, send)
