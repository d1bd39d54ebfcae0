"""The OpenFeature Remote Evaluation Protocol: ``POST /ofrep/v1/evaluate/flags/{key}`` and
the bulk ``POST /ofrep/v1/evaluate/flags`` (with ``ETag`` / ``If-None-Match``), so the
OpenFeature SDKs' OFREP providers work unchanged.

Callers authenticate with an API key (or service token) holding ``flags:evaluate``, or a
user's access token: the token then seeds the context (``targetingKey`` is the user id,
``roles`` the user's roles), and those identity attributes cannot be overridden by the body.
A checked credential is trusted for ``flags.principal_cache_seconds`` (see
``PrincipalCache``).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from garrison.auth.deps import optional_principal
from garrison.auth.errors import InsufficientScope, InvalidToken
from garrison.auth.principal import Principal
from garrison.context import state
from garrison.flags.principals import PrincipalCache
from garrison.flags.rules import FLAG_NOT_FOUND, INVALID_CONTEXT, TARGETING_KEY
from garrison.flags.runtime import FlagRuntime, context_tag
from garrison.runtime import runtime_of

router = APIRouter(prefix="/ofrep/v1", tags=["flags"])
EVALUATE = "flags:evaluate"
PARSE_ERROR = "PARSE_ERROR"
_JSON = "application/json"


# OFREP's own error shape (the SDKs' providers read it); authentication errors stay
# problem details like everywhere else.
_OFREP_ERROR = {
    "description": "an OFREP evaluation error",
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "required": ["errorCode"],
                "properties": {
                    "key": {"type": "string"},
                    "errorCode": {"type": "string"},
                    "errorDetails": {"type": "string"},
                },
            }
        }
    },
}


def _error(status: int, code: str, details: str, key: str | None = None) -> Response:
    body: dict[str, Any] = {"errorCode": code, "errorDetails": details}
    if key is not None:
        body["key"] = key
    return Response(orjson.dumps(body), status_code=status, media_type=_JSON)


async def _caller(request: Request) -> Principal:
    cache: PrincipalCache = runtime_of(request).get(FlagRuntime).principals
    digest = PrincipalCache.digest(request)
    principal = cache.get(digest) if digest is not None else None
    if principal is not None:
        values = state(request.scope)
        values["principal"] = principal
        values["user_id"] = principal.user_id or principal.id
    else:
        principal = await optional_principal(request)
        if principal is None:
            raise InvalidToken("authentication is required", presented=False)
        if digest is not None:
            cache.put(digest, principal)
    if principal.kind != "user" and not principal.can(EVALUATE):
        raise InsufficientScope(EVALUATE)
    return principal


async def _context(request: Request, principal: Principal) -> dict[str, Any] | Response:
    raw = await request.body()
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        return _error(400, PARSE_ERROR, "the request body is not JSON")
    if not isinstance(body, dict):
        return _error(400, INVALID_CONTEXT, "the request body is a JSON object")
    context = body.get("context", {})
    if not isinstance(context, dict):
        return _error(400, INVALID_CONTEXT, "context is a JSON object")
    targeting = context.get(TARGETING_KEY)
    if targeting is not None and not isinstance(targeting, str):
        return _error(400, INVALID_CONTEXT, "targetingKey is a string")
    if principal.kind == "user":
        context = {**context, TARGETING_KEY: principal.id, "roles": list(principal.roles)}
    return context


def _runtime(request: Request) -> FlagRuntime:
    return runtime_of(request).get(FlagRuntime)


@router.post(
    "/evaluate/flags/{key}",
    summary="Evaluate one flag (OFREP)",
    responses={400: _OFREP_ERROR, 404: _OFREP_ERROR},
)
async def evaluate_flag(request: Request, key: str) -> Response:
    principal = await _caller(request)
    context = await _context(request, principal)
    if isinstance(context, Response):
        return context
    resolution = _runtime(request).evaluate(key, context)
    if resolution.error_code == FLAG_NOT_FOUND:
        return _error(404, FLAG_NOT_FOUND, f"no flag {key!r}", key)
    if resolution.error_code is not None:
        return _error(400, resolution.error_code, resolution.error_details or "", key)
    return Response(orjson.dumps(resolution.ofrep()), media_type=_JSON)


@router.post(
    "/evaluate/flags",
    summary="Evaluate every flag (OFREP bulk)",
    responses={400: _OFREP_ERROR, 304: {"description": "not modified (the ETag matched)"}},
)
async def evaluate_flags(request: Request) -> Response:
    principal = await _caller(request)
    context = await _context(request, principal)
    if isinstance(context, Response):
        return context
    runtime = _runtime(request)
    snapshot = runtime.snapshot
    etag = context_tag(snapshot.tag, context)
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    results = [evaluator(context).ofrep() for evaluator in snapshot.evaluators.values()]
    return Response(
        orjson.dumps({"flags": results, "metadata": {}}), media_type=_JSON, headers={"ETag": etag}
    )
