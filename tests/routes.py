"""Endpoints that exist only in tests, to drive the gateway through every path."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.responses import JSONResponse

from garrison.context import state
from garrison.errors import Conflict

router = APIRouter(prefix="/api/v1/_test")


class Person(BaseModel):
    email: str = Field(min_length=3)
    age: int = Field(ge=0)


@router.post("/echo")
async def echo(person: Person) -> dict[str, Any]:
    return person.model_dump()


@router.post("/raw")
async def raw(request: Request) -> dict[str, int]:
    body = await request.body()
    return {"received": len(body)}


@router.get("/boom")
async def boom() -> None:
    raise RuntimeError("internal-detail-that-must-not-leak")


@router.get("/conflict")
async def conflict() -> None:
    raise Conflict("already there", resource="thing")


@router.get("/cached")
async def cached() -> JSONResponse:
    return JSONResponse({"ok": True}, headers={"Cache-Control": "public, max-age=60"})


@router.get("/whoami/{item_id}")
async def whoami(item_id: str, request: Request) -> dict[str, Any]:
    state(request.scope)["user_id"] = "user-123"
    return {
        "client": request.client.host if request.client else None,
        "scheme": request.url.scheme,
        "request_id": state(request.scope).get("request_id"),
        "item": item_id,
    }


@router.get("/pool-exhausted")
async def pool_exhausted() -> None:
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    raise PoolTimeout("QueuePool limit of size 10 overflow 20 reached, connection timed out")


@router.get("/db-busy")
async def db_busy() -> None:
    import sqlite3

    from sqlalchemy.exc import OperationalError

    raise OperationalError("UPDATE t", {}, sqlite3.OperationalError("database is locked"))
