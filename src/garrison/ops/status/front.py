"""``GET /``: what is running and where to go next. HTML for browsers, JSON for API clients
(by ``Accept``). While no account exists, callers on this machine also see the command that
creates the first administrator."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from sqlalchemy.engine import make_url
from starlette.responses import Response

from garrison import __version__
from garrison.context import state
from garrison.gateway.client_ip import is_loopback
from garrison.ops.status import render
from garrison.ops.status.runtime import FIRST_ADMIN_COMMAND, StatusRuntime
from garrison.runtime import runtime_of

router = APIRouter(include_in_schema=False)


def wants_html(accept: str) -> bool:
    """True when ``text/html`` ranks above ``application/json`` (browsers send it first)."""
    best: dict[str, float] = {}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            if param.startswith("q="):
                try:
                    quality = float(param[2:])
                except ValueError:
                    quality = 0.0
        best[media.lower()] = max(best.get(media.lower(), 0.0), quality)
    html = max(best.get("text/html", 0.0), best.get("application/xhtml+xml", 0.0))
    json = max(best.get("application/json", 0.0), best.get("application/*", 0.0))
    return html > 0 and html >= json


@router.get("/")
async def front_door(request: Request) -> Response:
    settings = runtime_of(request).settings
    runtime = runtime_of(request).get(StatusRuntime)
    info: dict[str, Any] = {
        "name": "Garrison",
        "version": __version__,
        "environment": settings.env,
        "database": make_url(settings.db_url).get_backend_name(),
        "links": {
            "docs": "/api/docs",
            "openapi": "/api/v1/openapi.json",
            "status": "/status",
            "health": "/api/health",
        },
    }
    if is_loopback(state(request.scope).get("client_ip")):
        try:
            needed = await runtime.first_admin_needed()
        except Exception:  # the database is down or not migrated: say nothing here
            needed = False
        if needed:
            info["first_admin"] = {"command": FIRST_ADMIN_COMMAND}
    headers = {"Cache-Control": "no-store", "Vary": "Accept"}
    if wants_html(request.headers.get("accept", "")):
        return Response(
            render.html("home.html", info=info),
            media_type="text/html; charset=utf-8",
            headers=headers,
        )
    return Response(orjson.dumps(info), media_type="application/json", headers=headers)
