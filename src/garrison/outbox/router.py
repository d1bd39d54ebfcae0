"""Admin view of the outbox: parked (poison) messages with their last error, and putting one
back in line. Guarded by the one ``OutboxAdmin`` dependency below."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel

from garrison import events
from garrison.audit.chain import canonical_time
from garrison.deps import ReadSession, WriteSession
from garrison.errors import Forbidden, NotFound
from garrison.events import Actor, Event
from garrison.gateway.client_ip import is_loopback
from garrison.gateway.scope import state
from garrison.outbox import service

router = APIRouter(prefix="/api/v1/outbox", tags=["outbox"])


def require_outbox_admin(request: Request) -> None:
    """Until RBAC lands: only callers on loopback may manage the outbox."""
    if not is_loopback(state(request.scope).get("client_ip")):
        raise Forbidden("managing the outbox needs the admin role")


OutboxAdmin = Annotated[None, Depends(require_outbox_admin)]


class ParkedMessage(BaseModel):
    id: int
    event_id: str
    topic: str
    attempts: int
    created_at: str
    parked_at: str | None
    last_error: str | None
    payload: dict[str, Any]


class ParkedPage(BaseModel):
    items: list[ParkedMessage]
    next_cursor: int | None


def _time(value: datetime | None) -> str | None:
    return canonical_time(value) if value is not None else None


@router.get("/parked", summary="Messages that failed every attempt")
async def parked(
    _admin: OutboxAdmin,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=0)] = None,
) -> ParkedPage:
    rows, next_id = await service.list_parked(session, limit=limit, after=cursor)
    items = [
        ParkedMessage(
            id=row.id,
            event_id=row.event_id,
            topic=row.topic,
            attempts=row.attempts,
            created_at=canonical_time(row.created_at),
            parked_at=_time(row.parked_at),
            last_error=row.last_error,
            payload=orjson.loads(row.payload),
        )
        for row in rows
    ]
    return ParkedPage(items=items, next_cursor=next_id)


@router.post("/parked/{message_id}/retry", summary="Put a parked message back in line")
async def retry(
    _admin: OutboxAdmin,
    session: WriteSession,
    message_id: Annotated[int, Path(ge=1)],
) -> dict[str, int]:
    if not await service.requeue(session, message_id=message_id):
        raise NotFound(f"no parked message {message_id}")
    await events.emit(
        session,
        Event(
            action="outbox.message.requeued",
            actor=Actor.anonymous(),
            target_type="outbox_message",
            target_id=str(message_id),
        ),
    )
    return {"requeued": message_id}
