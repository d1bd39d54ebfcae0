"""The benchmark's server: Garrison, plus floor endpoints that run the same SELECTs as the
records API straight through the raw driver (asyncmy), in the same process, on the same
event loop and behind the same middleware. Only ``bench/`` uses this; it is not a product
route."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncmy
import orjson
from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.engine import make_url
from starlette.responses import Response

from garrison.app import create_app_from_env
from garrison.runtime import runtime_of

floor = APIRouter(prefix="/bench/floor")


def _encode(row: dict[str, Any]) -> bytes:
    return orjson.dumps(row, default=str)


@floor.get("/items/{record_id}")
async def floor_get(record_id: str, request: Request) -> Response:
    pool = request.app.state.floor_pool
    async with pool.acquire() as conn, conn.cursor(asyncmy.cursors.DictCursor) as cursor:
        await cursor.execute("SELECT * FROM c_items WHERE id = %s", (record_id,))
        row = await cursor.fetchone()
    if row is None:
        return Response(status_code=404)
    return Response(_encode(row), media_type="application/json")


@floor.get("/items")
async def floor_list(score: int, request: Request) -> Response:
    pool = request.app.state.floor_pool
    async with pool.acquire() as conn, conn.cursor(asyncmy.cursors.DictCursor) as cursor:
        await cursor.execute(
            "SELECT * FROM c_items WHERE score = %s ORDER BY id LIMIT 21", (score,)
        )
        rows = await cursor.fetchall()
    return Response(_encode({"items": rows[:20]}), media_type="application/json")


def create() -> FastAPI:
    if os.environ.get("GARRISON_BENCH_AUDIT") == "off":
        # The comparison run of bench/audit_api_cost.py: the event seam only logs, as it did
        # before the audit domain existed, so the difference is the audit and outbox work.
        from garrison import events

        async def log_only(session: object, event: events.Event) -> None:
            events._log(event)

        events.emit = log_only  # type: ignore[assignment]
    app = create_app_from_env()
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner(app):
            settings = runtime_of(app).settings
            url = make_url(settings.db_url)
            app.state.floor_pool = await asyncmy.create_pool(
                host=url.host,
                port=url.port or 3306,
                user=url.username,
                password=url.password or "",
                db=url.database,
                minsize=1,
                maxsize=settings.db.pool_size,
                autocommit=True,
            )
            try:
                yield
            finally:
                app.state.floor_pool.close()
                await app.state.floor_pool.wait_closed()

    app.router.lifespan_context = lifespan
    app.include_router(floor)
    return app
