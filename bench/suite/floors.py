"""The floors: the least any Python server on this machine can do for the same request.

Each is a factory served by the same server Garrison uses (granian, uvloop, 2 workers):

- ``hello``: a bare ASGI app answering every request with a 13-byte JSON body;
- ``fastapi_hello``: the same answer from a FastAPI route (the framework's own cost);
- ``raw_driver``: pure ASGI plus an asyncmy pool running the records API's SELECTs for
  get-by-id and the 20-row filtered list, rows encoded with orjson (the database's cost).

The raw-driver floor reads ``BENCH_FLOOR_DB_URL`` (a ``mysql+asyncmy://`` URL).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

HELLO = b'{"hello":"w"}'
JSON_HEADERS = [(b"content-type", b"application/json")]
COLUMNS = "id, created_at, updated_at, owner, version, title, score, done"


async def _lifespan(
    receive: Receive, send: Send, startup: Any = None, shutdown: Any = None
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if startup is not None:
                await startup()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if shutdown is not None:
                await shutdown()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS})
    await send({"type": "http.response.body", "body": body})


def hello() -> App:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await _respond(send, 200, HELLO)

    return app


def fastapi_hello() -> Any:
    from fastapi import FastAPI
    from starlette.responses import Response

    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get("/hello")
    async def say_hello() -> Response:
        return Response(HELLO, media_type="application/json")

    return app


def raw_driver() -> App:
    import asyncmy
    import orjson
    from asyncmy.cursors import DictCursor
    from sqlalchemy.engine import make_url

    url = make_url(os.environ["BENCH_FLOOR_DB_URL"])
    state: dict[str, Any] = {}

    async def startup() -> None:
        state["pool"] = await asyncmy.create_pool(
            host=url.host,
            port=url.port or 3306,
            user=url.username,
            password=url.password or "",
            db=url.database,
            minsize=1,
            maxsize=10,  # Garrison's default pool size
            autocommit=True,
        )

    async def shutdown() -> None:
        state["pool"].close()
        await state["pool"].wait_closed()

    async def query(sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
        async with state["pool"].acquire() as conn, conn.cursor(DictCursor) as cursor:
            await cursor.execute(sql, args)
            rows: list[dict[str, Any]] = await cursor.fetchall()
            return rows

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, startup, shutdown)
            return
        path: str = scope["path"]
        if path.startswith("/items/"):
            rows = await query(f"SELECT {COLUMNS} FROM c_items WHERE id = %s", (path[7:],))
            if not rows:
                await _respond(send, 404, b'{"detail":"not found"}')
                return
            await _respond(send, 200, orjson.dumps(rows[0], default=str))
            return
        if path == "/items":
            params = parse_qs(scope["query_string"].decode())
            score = int(params.get("score", ["0"])[0])
            rows = await query(
                f"SELECT {COLUMNS} FROM c_items WHERE score = %s ORDER BY id LIMIT 21", (score,)
            )
            await _respond(send, 200, orjson.dumps({"items": rows[:20]}, default=str))
            return
        await _respond(send, 404, b'{"detail":"not found"}')

    return app
