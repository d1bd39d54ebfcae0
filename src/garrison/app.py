"""Builds the ASGI application from one ``Settings`` object.

The gateway's middleware order is written here and nowhere else (outermost first).
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from garrison import __version__, openapi
from garrison.audit import install_recorder
from garrison.audit.router import router as audit_router
from garrison.auth.admin_router import router as admin_router
from garrison.auth.apikeys_router import router as api_keys_router
from garrison.auth.email_router import router as auth_email_router
from garrison.auth.identify import principal_key, principal_roles
from garrison.auth.oauth import authorize as oauth_authorize
from garrison.auth.oauth import providers_router as oauth_providers
from garrison.auth.oauth import server_router as oauth_server
from garrison.auth.router import router as auth_router
from garrison.auth.router import well_known as auth_well_known
from garrison.files import install_attachments
from garrison.files.router import is_multipart, record_uploads
from garrison.files.router import router as files_router
from garrison.flags.ofrep import router as ofrep_router
from garrison.flags.router import router as flags_router
from garrison.gateway.body_limit import BodyLimitMiddleware
from garrison.gateway.client_ip import ClientAddress
from garrison.gateway.content_type import ContentTypeMiddleware
from garrison.gateway.errors import ErrorsMiddleware, install_exception_handlers
from garrison.gateway.json_body import StrictJsonMiddleware
from garrison.gateway.pipeline import GatewayMiddleware
from garrison.gateway.rate_limit import Identify, RateLimitMiddleware, RateLimitStats
from garrison.gateway.security_headers import SecurityHeaders
from garrison.log import configure_logging, get_logger
from garrison.ops.alerts.errortracking import ErrorTrackingMiddleware
from garrison.ops.backup.router import router as backups_router
from garrison.ops.deploy.router import router as deploys_router
from garrison.ops.metrics_router import router as metrics_router
from garrison.ops.router import router as health_router
from garrison.ops.status import front
from garrison.ops.status import router as status_routes
from garrison.ops.status.readonly import ReadOnlyMiddleware
from garrison.outbox.router import router as outbox_router
from garrison.privacy.router import router as privacy_router
from garrison.quotas.router import router as quotas_router
from garrison.quotas.service import QuotaLookup
from garrison.records.collections_router import router as collections_router
from garrison.records.router import router as records_router
from garrison.runtime import attach, find_runtime
from garrison.settings import Settings, load_settings
from garrison.startup import open_runtime
from garrison.store.ratelimit import Rate
from garrison.tracing import TracingMiddleware, create_provider
from garrison.types import Scope
from garrison.webhooks.catalogue import catalogue_router as webhook_catalogue
from garrison.webhooks.router import router as webhooks_router

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

API_PREFIX = "/api/v1"
# Routes that take uploads (a larger body limit) and that serve stored files (sandboxed).
UPLOAD_PATHS = re.compile(r"^/api/v1/(files|collections/[^/]+/records(/[^/]+)?)$")
FILE_PATHS = re.compile(r"^/api/v1/collections/[^/]+/records/[^/]+/files/")
log = get_logger("garrison.app")


def _middleware(
    settings: Settings,
    stats: RateLimitStats,
    identify: Identify | None,
    tracer: TracerProvider | None,
) -> list[Middleware]:
    http = settings.http
    tracing = [] if tracer is None else [Middleware(TracingMiddleware, provider=tracer)]
    security = SecurityHeaders(
        hsts=http.hsts,
        hsts_max_age=http.hsts_max_age,
        page_prefixes=("/status", "/oauth"),  # status page, feed, stylesheet; consent page
        page_paths=frozenset({"/"}),  # the front door
        sandboxed=FILE_PATHS,
    )
    return [
        # Outside the gateway layer, so the access-log line is written inside the span.
        *tracing,
        # Request id, client address, metrics, access log, security headers: one layer.
        Middleware(
            GatewayMiddleware,
            address=ClientAddress(http.trusted_proxies),
            security=security,
            metrics=settings.metrics.enabled,
        ),
        Middleware(
            CORSMiddleware,
            allow_origins=http.cors_origins,
            allow_credentials=http.cors_allow_credentials,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "If-Match",
                "If-None-Match",
                "Idempotency-Key",
                "X-API-Key",
                "X-Request-ID",
            ],
            expose_headers=["ETag", "RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID"],
            max_age=600,
        ),
        Middleware(ErrorsMiddleware),
        *([Middleware(ErrorTrackingMiddleware)] if settings.sentry_dsn else []),
        # Rate limits sit after the client-IP layer (anonymous callers are keyed by the
        # resolved address), inside access log, security headers, CORS and errors (a 429 is
        # logged, carries the same headers, is readable cross-origin, and a fault in the
        # limiter becomes a problem, never a bare 500), and before body limit, content type
        # and the router, so a refused request costs no body read and no validation.
        Middleware(
            RateLimitMiddleware,
            settings=settings.rate_limit,
            identify=identify,
            roles=principal_roles if identify is principal_key else None,
            quota=_quota,
            stats=stats,
        ),
        Middleware(ReadOnlyMiddleware),
        Middleware(
            BodyLimitMiddleware,
            max_bytes=http.max_body_bytes,
            raised=lambda scope: (
                settings.files.max_upload_bytes
                if is_multipart(scope) and UPLOAD_PATHS.match(scope["path"])
                else None
            ),
        ),
        Middleware(ContentTypeMiddleware, allowed=http.allowed_content_types),
        Middleware(StrictJsonMiddleware),
    ]


# Matching is in order, one route at a time (FastAPI 0.165's router costs 4-7 µs a route
# that does not match, measured with bench/profile_request.py), so the hottest routes come
# first: health, OFREP (two routes, polled hard by every SDK), records, the status page.
ROUTERS = (
    health_router,
    ofrep_router,
    record_uploads,  # multipart bodies only; before the records router's JSON routes
    records_router,
    status_routes.pages,  # the public page is hot
    flags_router,
    collections_router,
    files_router,
    quotas_router,
    metrics_router,
    audit_router,
    outbox_router,
    auth_router,
    oauth_server.endpoints,
    oauth_providers.router,
    oauth_authorize.router,
    auth_email_router,
    api_keys_router,
    admin_router,
    oauth_server.admin,
    privacy_router,
    backups_router,
    deploys_router,
    auth_well_known,
    status_routes.api,
    front.router,
    webhooks_router,
)


async def _quota(scope: Scope, principal: str, roles: Sequence[str]) -> Rate | None:
    """The admin-set quota of ``principal`` for the rate limiter (None: the default)."""
    runtime = find_runtime(scope)
    return None if runtime is None else await runtime.get(QuotaLookup)(principal, roles)


def create_app(settings: Settings, *, identify: Identify | None = principal_key) -> FastAPI:
    """``identify`` names the caller for rate limits (``user:<id>``, ``key:<id>``, …; by
    default the authenticated principal); when it returns None the caller is keyed by its
    client address."""
    install_recorder(settings)  # every event of this process goes to the audit log
    install_attachments(settings)  # record writes reach the files of file fields
    stats = RateLimitStats()
    tracer = create_provider(settings.tracing) if settings.tracing.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_runtime(settings, tracer=tracer, components=(stats,)) as runtime:
            attach(app, runtime)
            log.info("garrison.ready", env=settings.env, pid=os.getpid())
            try:
                yield
            finally:
                attach(app, None)

    app = FastAPI(
        title="Garrison",
        version=__version__,
        summary="Self-hosted API backend platform",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        middleware=_middleware(settings, stats, identify, tracer),
        # No trailing-slash redirects: the router would build an absolute http:// URL from
        # the client's Host header (an open redirect, and a downgrade behind TLS).
        redirect_slashes=False,
    )
    install_exception_handlers(app)
    openapi.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.webhooks.include_router(webhook_catalogue())
    return app


def create_app_from_env() -> FastAPI:
    """Factory for the HTTP server's workers: each worker loads the same settings."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
