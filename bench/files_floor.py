"""The download floor of ``bench/files.py``: one static file (``BENCH_STATIC_FILE``) served
by Starlette's ``FileResponse`` from a bare ASGI app on the same HTTP server (granian) as
Garrison. Only ``bench/`` uses this."""

from __future__ import annotations

import os

from starlette.responses import FileResponse

from garrison.types import Receive, Scope, Send

PATH = os.environ.get("BENCH_STATIC_FILE", "")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await FileResponse(PATH, media_type="application/octet-stream")(scope, receive, send)
