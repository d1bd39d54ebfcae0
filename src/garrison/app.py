"""Builds the ASGI application from one ``Settings`` object.

The gateway's middleware order is written here and nowhere else (outermost first).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from garrison import __version__
from garrison.auth.admin_router import router as admin_router
from garrison.auth.apikeys_router import router as api_keys_router
from garrison.auth.email_router import router as auth_email_router
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
from garrison.gateway.request_id import RequestIdMiddleware
from garrison.gateway.security_headers import SecurityHeadersMiddleware
from garrison.log import configure_logging
from garrison.ops.health import HealthService
from garrison.ops.router import router as health_router
from garrison.settings import Settings, load_settings
from garrison.store.factory import open_store

API_PREFIX = "/api/v1"


def _middleware(settings: Settings) -> list[Middleware]:
    http = settings.http
    return [
        Middleware(RequestIdMiddleware),
        Middleware(ClientIpMiddleware, trusted_proxies=http.trusted_proxies),
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
        Middleware(BodyLimitMiddleware, max_bytes=http.max_body_bytes),
        Middleware(ContentTypeMiddleware, allowed=http.allowed_content_types),
    ]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.db_url, settings.db)
        store = open_store(settings)
        app.state.db = db
        app.state.store = store
        app.state.health = HealthService(
            db=db,
            store=store if settings.redis_url else None,
            data_dir=settings.data_dir,
            settings=settings.health,
            expected_revisions=head_revisions(),
        )
        app.state.auth = AuthRuntime(settings, db, store)
        try:
            await app.state.auth.start()
            yield
        finally:
            await app.state.auth.stop()
            await store.close()
            await db.dispose()

    app = FastAPI(
        title="Garrison",
        version=__version__,
        summary="Self-hosted API backend platform",
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
        middleware=_middleware(settings),
    )
    app.state.settings = settings
    install_exception_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(auth_email_router)
    app.include_router(api_keys_router)
    app.include_router(admin_router)
    app.include_router(auth_well_known)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for the HTTP server's workers: each worker loads the same settings."""
    settings = load_settings()
    configure_logging(settings)
    return create_app(settings)
