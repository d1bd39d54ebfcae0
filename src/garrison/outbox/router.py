"""Admin view of the outbox: parked (poison) messages with their last error, and putting one
back in line. Guarded by the one ``OutboxAdmin`` dependency below."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from garrison import events
from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import ReadSession, WriteSession
from garrison.errors import NotFound
from garrison.events import Event
from garrison.outbox import service
from garrison.types import canonical_time

router = APIRouter(prefix="/api/v1/outbox", tags=["outbox"])


OutboxAdmin = Annotated[Principal, require("outbox:admin")]


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
    cursor: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
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
    message_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> dict[str, int]:
    if not await service.requeue(session, message_id=message_id):
        raise NotFound(f"no parked message {message_id}")
    await events.emit(
        session,
        Event(
            action="outbox.message.requeued",
            actor=_admin.actor,
            target_type="outbox_message",
            target_id=str(message_id),
        ),
    )
    return {"requeued": message_id}
