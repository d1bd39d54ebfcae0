"""Builds the ASGI application from one ``Settings`` object.

The gateway's middleware order is written here and nowhere else (outermost first).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from garrison import __version__
from garrison.audit.router import router as audit_router
from garrison.auth.admin_router import router as admin_router
from garrison.auth.apikeys_router import router as api_keys_router
from garrison.auth.email_router import router as auth_email_router
from garrison.auth.identify import principal_key, principal_roles
from garrison.auth.router import router as auth_router
from garrison.auth.router import well_known as auth_well_known
from garrison.auth.runtime import AuthRuntime
from garrison.db.engine import Database
from garrison.db.migrate import head_revisions
from garrison.gateway.access_log import AccessLogMiddleware
from garrison.gateway.body_limit import BodyLimitMiddleware
from garrison.gateway.client_ip import ClientIpMiddleware
from garrison.gateway.content_type import ContentTypeMiddleware
from garrison.gateway.errors import ErrorsMiddleware, install_exception_handlers
from garrison.gateway.metrics import MetricsMiddleware
from garrison.gateway.rate_limit import Identify, RateLimitMiddleware, RateLimitStats
from garrison.gateway.request_id import RequestIdMiddleware
from garrison.gateway.security_headers import SecurityHeadersMiddleware
from garrison.log import configure_logging, get_logger
from garrison.metrics import instrument_database
from garrison.metrics.process import sample_forever
from garrison.metrics.router import router as metrics_router
from garrison.ops.backup.router import router as backups_router
from garrison.ops.health import HealthService
from garrison.ops.router import router as health_router
from garrison.outbox.registry import import_handler_modules
from garrison.outbox.router import router as outbox_router
from garrison.outbox.worker import Worker
from garrison.quotas.router import router as quotas_router
from garrison.quotas.service import QuotaLookup
from garrison.records.cache import CollectionCache
from garrison.records.collections_router import router as collections_router
from garrison.records.router import router as records_router
from garrison.settings import Settings, load_settings
from garrison.store.factory import open_cache, open_rate_limiter, open_store
from garrison.tracing import TracingMiddleware, create_provider
from garrison.tracing import instrument_database as trace_database

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

API_PREFIX = "/api/v1"
log = get_logger("garrison.app")


def _middleware(
    settings: Settings,
    stats: RateLimitStats,
    identify: Identify | None,
    tracer: TracerProvider | None,
) -> list[Middleware]:
    http = settings.http
    metrics = [Middleware(MetricsMiddleware)] if settings.metrics.enabled else []
    tracing = [] if tracer is None else [Middleware(TracingMiddleware, provider=tracer)]
    return [
        Middleware(RequestIdMiddleware),
        *tracing,
        Middleware(ClientIpMiddleware, trusted_proxies=http.trusted_proxies),
        *metrics,
        Middleware(AccessLogMiddleware),
        Middleware(SecurityHeadersMiddleware, hsts=http.hsts, hsts_max_age=http.hsts_max_age),
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
            stats=stats,
        ),
        Middleware(BodyLimitMiddleware, max_bytes=http.max_body_bytes),
        Middleware(ContentTypeMiddleware, allowed=http.allowed_content_types),
    ]


def create_app(settings: Settings, *, identify: Identify | None = principal_key) -> FastAPI:
    """``identify`` names the caller for rate limits (``user:<id>``, ``key:<id>``, …; by
    default the authenticated principal); when it returns None the caller is keyed by its
    client address."""
    stats = RateLimitStats()
    tracer = create_provider(settings.tracing) if settings.tracing.enabled else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url, settings.db)
        store = open_store(settings)
        app.state.db = db
        app.state.store = store
        app.state.collections = CollectionCache()
        app.state.rate_limiter = open_rate_limiter(store)
        app.state.cache = open_cache(settings, store)
        app.state.quota_lookup = QuotaLookup(
            db=db, cache=app.state.cache, ttl=settings.rate_limit.quota_cache_seconds
        )
        app.state.health = HealthService(
            db=db,
            store=store if settings.redis_url else None,
            data_dir=settings.data_dir,
            settings=settings.health,
            expected_revisions=head_revisions(),
            app_settings=settings,
        )
        app.state.auth = AuthRuntime(settings, db, store)
        await app.state.auth.start()
        sampler: asyncio.Task[None] | None = None
        if settings.metrics.enabled:
            instrument_database(db)
            sampler = asyncio.create_task(
                sample_forever(settings.metrics.process_interval, settings.metrics.multiproc_dir)
            )
        if tracer is not None:
            trace_database(db, tracer)
        stop = asyncio.Event()
        worker = task = None
        if settings.worker.in_process:
            import_handler_modules(settings.worker.handler_modules)
            worker = Worker(db, settings)
            task = asyncio.create_task(worker.run(stop), name="garrison-worker")
        log.info("garrison.ready", env=settings.env, pid=os.getpid())
        try:
            yield
        finally:
            if worker is not None and task is not None:
                await worker.shutdown(stop, task)
            if sampler is not None:
                sampler.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sampler
            await app.state.rate_limiter.close()
            await app.state.auth.stop()
            await store.close()
            await db.dispose()
            if tracer is not None:
                await asyncio.to_thread(tracer.shutdown)  # flushes the spans still queued

    app = FastAPI(
        title="Garrison",
        version=__version__,
        summary="Self-hosted API backend platform",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        middleware=_middleware(settings, stats, identify, tracer),
    )
    app.state.settings = settings
    app.state.rate_limit_stats = stats
    install_exception_handlers(app)
    app.include_router(health_router)
    app.include_router(collections_router)
    app.include_router(records_router)
    app.include_router(quotas_router)
    app.include_router(metrics_router)
    app.include_router(audit_router)
    app.include_router(outbox_router)
    app.include_router(auth_router)
    app.include_router(auth_email_router)
    app.include_router(api_keys_router)
    app.include_router(admin_router)
    app.include_router(backups_router)
    app.include_router(auth_well_known)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for the HTTP server's workers: each worker loads the same settings."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
