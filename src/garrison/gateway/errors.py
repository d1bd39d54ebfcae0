"""Every error leaves as RFC 9457 ``application/problem+json``.

``install_exception_handlers`` maps Garrison's error tree and the framework's own errors
(unknown route, wrong method, request validation) to problems. ``ErrorsMiddleware`` is the
last line: any other exception becomes a generic 500 carrying the request id, and its
traceback goes to the log only.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from garrison.context import request_id
from garrison.db.retry import is_transient
from garrison.errors import (
    GarrisonError,
    MalformedBody,
    ServiceUnavailable,
    ValidationFailed,
    error_for_status,
    problem_response,
)
from garrison.log import get_logger
from garrison.types import ASGIApp, Message, Receive, Scope, Send

log = get_logger("garrison.errors")

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_INTERNAL_DETAIL = "An unexpected error occurred; quote the request id when reporting it."


def _problem(request: Request, error: GarrisonError) -> Response:
    return problem_response(error, request_id=request_id(request.scope))


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI error entries as RFC 9457 ``errors`` members with a location."""
    result: list[dict[str, Any]] = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        where, rest = (loc[0], loc[1:]) if loc else ("body", [])
        entry: dict[str, Any] = {"detail": error.get("msg", "invalid value")}
        if where == "body":
            entry["pointer"] = "#/" + "/".join(
                p.replace("~", "~0").replace("/", "~1") for p in rest
            )
        elif where in ("query", "path"):
            entry["parameter"] = ".".join(rest)
        elif where == "header":
            entry["header"] = ".".join(rest)
        else:
            entry["pointer"] = "#/" + "/".join(loc)
        result.append(entry)
    return result


async def _garrison_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GarrisonError)
    return _problem(request, exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail: str | None = exc.detail if isinstance(exc.detail, str) else None
    if detail and detail == _default_phrase(exc.status_code):
        detail = None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    error = error_for_status(exc.status_code, detail, headers)
    return _problem(request, error)


def _allowed_methods(request: Request) -> str:
    """Every method some route serves on this path: the router reports only the first
    route that matched the path, and a path's methods can be spread over several."""
    methods: set[str] = set()
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return ", ".join(sorted(methods))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return _problem(request, MalformedBody("the request body is not valid JSON"))
    return _problem(
        request,
        ValidationFailed("the request has invalid fields", errors=validation_errors(errors)),
    )


async def _database_error(request: Request, exc: Exception) -> Response:
    """A lost connection, a deadlock or a lock wait is the database being briefly away or
    busy: 503 with Retry-After, not a 500. Anything else is unexpected."""
    assert isinstance(exc, DBAPIError)
    if is_transient(exc):
        log.warning("http.database_unavailable", error=type(exc.orig).__name__)
        return _problem(
            request,
            ServiceUnavailable(
                "the database is briefly unavailable; retry shortly", headers={"Retry-After": "1"}
            ),
        )
    return await _unexpected(request, exc)


async def _pool_exhausted(request: Request, exc: Exception) -> Response:
    """Every database connection stayed busy for the pool's whole timeout: the server is
    overloaded, which is a 503 to retry, not a 500."""
    log.warning("http.database_pool_exhausted")
    return _problem(
        request,
        ServiceUnavailable("the server is busy; retry shortly", headers={"Retry-After": "1"}),
    )


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("http.unhandled_exception", exc_info=exc)
    return _problem(request, GarrisonError(_INTERNAL_DETAIL))


def _default_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GarrisonError, _garrison_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _pool_exhausted)
    app.add_exception_handler(Exception, _unexpected)


class ErrorsMiddleware:
    """Turns an exception that escaped the app into a generic 500 problem."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except GarrisonError as exc:  # raised by a layer below the router (e.g. body limit)
            if started:
                raise
            await problem_response(exc, request_id=request_id(scope))(scope, receive, send)
        except Exception as exc:
            log.error("http.unhandled_exception", exc_info=exc)
            if started:
                return  # the status line is gone; the server closes the connection
            error = GarrisonError(_INTERNAL_DETAIL)
            await problem_response(error, request_id=request_id(scope))(scope, receive, send)
