"""Health endpoints: public status for everyone, the detailed checks for operators."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from garrison.auth.deps import optional_principal
from garrison.context import state
from garrison.errors import GarrisonError
from garrison.gateway.client_ip import is_loopback
from garrison.ops.health import MEDIA_TYPE, HealthReport, HealthService
from garrison.runtime import runtime_of

router = APIRouter(prefix="/api/health", tags=["health"])
HEALTH_PERMISSION = "health:read"

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {MEDIA_TYPE: {}}, "description": "pass or warn"},
    503: {"content": {MEDIA_TYPE: {}}, "description": "fail"},
}


async def _is_operator(request: Request) -> bool:
    """Loopback callers, and callers whose credential holds ``health:read``."""
    settings = runtime_of(request).settings
    if settings.health.details == "loopback" and is_loopback(state(request.scope).get("client_ip")):
        return True
    if "authorization" not in request.headers and "x-api-key" not in request.headers:
        return False
    try:
        principal = await optional_principal(request)
    except GarrisonError:
        return False  # a bad credential gets the public view, never an error
    return principal is not None and principal.can(HEALTH_PERMISSION)


async def _health_response(request: Request, report: HealthReport) -> Response:
    settings = runtime_of(request).settings
    operator = await _is_operator(request)
    body = report.detailed(settings.env) if operator else report.public()
    status = report.http_status
    headers = {"Retry-After": "5"} if status == 503 else None  # every 503 says when to retry
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=MEDIA_TYPE)


@router.get("", responses=_RESPONSES, summary="Overall health (dependencies included)")
async def health(request: Request) -> Response:
    service = runtime_of(request).get(HealthService)
    return await _health_response(request, await service.report())


@router.get("/ready", responses=_RESPONSES, summary="Ready to serve traffic")
async def ready(request: Request) -> Response:
    service = runtime_of(request).get(HealthService)
    return await _health_response(request, await service.report())


@router.get("/live", responses=_RESPONSES, summary="The process is alive")
async def live() -> Response:
    return Response(b'{"status":"pass"}', media_type=MEDIA_TYPE)
