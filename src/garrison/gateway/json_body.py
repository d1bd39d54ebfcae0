"""JSON request bodies must be JSON that every later layer can store and write back.

Python's ``json`` module (which the framework parses bodies with) accepts what no other
part of the stack can hold: lone UTF-16 surrogates (``"\\ud800"``: not UTF-8, so the driver,
the log and the response encoder fail on them), ``NaN``/``Infinity`` and numbers that
overflow to infinity (``1e400``), and nesting deep enough to exhaust the recursion limit.
This layer parses JSON bodies once with orjson, which refuses all of those, and answers
400 ``malformed-body`` saying where when Python would have taken the body; a body that
passes (or that is no JSON at all, which the route reports) is replayed unchanged. It sits
inside the body limit, so it never buffers more than the limit allows.
"""

from __future__ import annotations

import json

import orjson

from garrison.context import header, request_id
from garrison.errors import MalformedBody, problem_response
from garrison.types import ASGIApp, Message, Receive, Scope, Send

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _is_json(value: bytes | None) -> bool:
    if value is None:
        return False
    media = value.decode("latin-1").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class StrictJsonMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in _BODY_METHODS
            or not _is_json(header(scope, b"content-type"))
        ):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body.strip():
            try:
                orjson.loads(body)
            except orjson.JSONDecodeError as exc:
                if _python_accepts(body):  # the cases this layer exists for
                    error = MalformedBody(f"the request body is not valid JSON: {exc}")
                    response = problem_response(error, request_id=request_id(scope))
                    await response(scope, receive, send)
                    return
                # Not JSON for anyone: the route reports it (or reads it raw) as before.
        replayed: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay([replayed], receive), send)


def _python_accepts(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, RecursionError):
        return False
    return True


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
