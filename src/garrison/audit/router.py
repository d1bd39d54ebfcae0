"""``GET /api/v1/audit`` (search, cursor-paginated, newest first) and
``GET /api/v1/audit/export`` (NDJSON, oldest first). Both need the ``audit:read``
permission, checked by the one ``AuditReader`` dependency below."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from starlette.responses import Response, StreamingResponse

from garrison.audit import personal, service
from garrison.audit.schemas import AuditPage, entry_dict
from garrison.auth.deps import require
from garrison.auth.principal import Principal
from garrison.deps import DatabaseDep, ReadSession, SettingsDep
from garrison.errors import ValidationFailed

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])
NDJSON = "application/x-ndjson"
ACTOR_KINDS = ("user", "api_key", "service", "system", "anonymous")


AuditReader = Annotated[Principal, require("audit:read")]


def _invalid(parameter: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        "the request has invalid fields", errors=[{"parameter": parameter, "detail": detail}]
    )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def audit_query(
    actor: Annotated[
        str | None,
        Query(
            max_length=220,
            pattern=r"^(user|api_key|service|system|anonymous)(:.*)?$",
            description="`kind` or `kind:id`, e.g. `user:42`",
        ),
    ] = None,
    action: Annotated[
        str | None, Query(max_length=128, description="dotted prefix, e.g. `auth.login`")
    ] = None,
    target: Annotated[
        str | None, Query(max_length=260, description="`type` or `type:id`, e.g. `record:7`")
    ] = None,
    outcome: Literal["success", "denied", "failed"] | None = None,
    since: Annotated[datetime | None, Query(description="inclusive, ISO 8601")] = None,
    until: Annotated[datetime | None, Query(description="exclusive, ISO 8601")] = None,
) -> service.AuditQuery:
    actor_kind = actor_id = target_type = target_id = None
    if actor:
        actor_kind, _, rest = actor.partition(":")
        actor_id = rest or None
        if actor_kind not in ACTOR_KINDS:
            raise _invalid("actor", f"the kind must be one of {', '.join(ACTOR_KINDS)}")
    if target:
        target_type, _, rest = target.partition(":")
        target_id = rest or None
        if not target_type:
            raise _invalid("target", "give `type` or `type:id`")
    since, until = _utc(since), _utc(until)
    if since and until and since >= until:
        raise _invalid("until", "must be after `since`")
    return service.AuditQuery(
        actor_kind=actor_kind,
        actor_id=actor_id,
        action=action or None,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        since=since,
        until=until,
    )


QueryDep = Annotated[service.AuditQuery, Depends(audit_query)]


@router.get("", response_model=AuditPage, summary="Search the audit log (newest first)")
async def search(
    _reader: AuditReader,
    query: QueryDep,
    session: ReadSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    after = None
    if cursor is not None:
        after = service.decode_cursor(cursor)
        if after is None:
            raise _invalid("cursor", "is not a cursor this API returned")
    rows, next_seq = await service.search(session, query=query, limit=limit, after=after)
    opened = await personal.open_rows(session, rows)
    body = {
        "items": [entry_dict(row) for row in opened],
        "next_cursor": service.encode_cursor(next_seq) if next_seq is not None else None,
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get(
    "/export",
    summary="Export matching entries as NDJSON (oldest first)",
    responses={200: {"content": {NDJSON: {}}, "description": "one entry per line"}},
)
async def export(
    _reader: AuditReader, query: QueryDep, db: DatabaseDep, settings: SettingsDep
) -> StreamingResponse:
    batch = settings.audit.export_batch_size

    async def lines() -> AsyncIterator[bytes]:
        after = 0
        while True:
            async with db.read_session() as session:
                rows = await service.export_batch(session, query=query, limit=batch, after=after)
                opened = await personal.open_rows(session, rows)
            if not rows:
                return
            yield b"".join(orjson.dumps(entry_dict(row)) + b"\n" for row in opened)
            after = int(rows[-1].id)

    return StreamingResponse(
        lines(),
        media_type=NDJSON,
        headers={"Content-Disposition": 'attachment; filename="audit.ndjson"'},
    )
