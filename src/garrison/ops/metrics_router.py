"""``GET /metrics``: the Prometheus exposition, for whoever the settings let in.

- ``metrics.listen`` set, or metrics disabled: not served here (404); ``garrison serve``
  serves them on the separate address instead.
- ``metrics.token`` set: ``Authorization: Bearer <token>`` is required (401 otherwise).
- no token: open to loopback callers in development; not exposed at all elsewhere.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from garrison.context import state
from garrison.errors import NotFound, Unauthorized
from garrison.gateway.client_ip import is_loopback
from garrison.metrics import METRICS_PATH
from garrison.metrics.database import refresh_pool, refresh_replication, refresh_storage
from garrison.metrics.exposition import CONTENT_TYPE, exposition
from garrison.runtime import runtime_of
from garrison.settings import Settings

router = APIRouter(include_in_schema=False)


def _bearer(request: Request) -> bytes | None:
    value = request.headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip().encode()


def check_access(request: Request, settings: Settings) -> None:
    config = settings.metrics
    if not config.enabled or config.listen is not None:
        raise NotFound()
    if config.token is not None:
        presented = _bearer(request)
        expected = config.token.get_secret_value().encode()
        if presented is None or not hmac.compare_digest(presented, expected):
            raise Unauthorized(
                "a valid bearer token is required",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return
    if not (settings.is_development and is_loopback(state(request.scope).get("client_ip"))):
        raise NotFound()


@router.get(METRICS_PATH)
async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    check_access(request, runtime.settings)
    refresh_pool(runtime.db)
    await refresh_replication(runtime.db)
    await refresh_storage(runtime.db, runtime.settings.health.database_warn_mb)
    body = await run_in_threadpool(exposition, runtime.settings.metrics.multiproc_dir)
    return Response(body, media_type=CONTENT_TYPE)
