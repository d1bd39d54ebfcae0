"""Records endpoints: /api/v1/collections/{name}/records[/{id}] (thin: bind, call, respond)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Header, Request
from sqlalchemy.exc import DBAPIError
from starlette.responses import Response

from garrison.db.retry import is_retryable, is_transient, with_retry
from garrison.deps import database_of
from garrison.errors import PreconditionFailed
from garrison.records import idempotency, params, query, service
from garrison.records.cache import CollectionCache
from garrison.records.deps import ReaderDep, WriterDep
from garrison.records.errors import RecordNotFound
from garrison.records.query import Caller
from garrison.records.registry import Collection
from garrison.records.schemas import RecordPage
from garrison.records.validation import Mode, check_body, encode
from garrison.runtime import runtime_of

router = APIRouter(prefix="/api/v1/collections/{name}/records", tags=["records"])
T = TypeVar("T")
Data = Annotated[dict[str, Any], Body(description="the record's fields")]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=200,
        pattern=r'^\s*(\*|(W/)?"?[0-9]{1,18}"?)\s*(,.*)?$',
        description="the record's ETag (its version): the change applies only to that version",
    ),
]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status, headers=headers, media_type="application/json")


def etag(record: dict[str, Any]) -> str:
    return f'"{record["version"]}"'


MAX_VERSION_DIGITS = 18  # versions are 32-bit counters; longer tags name no version


def parse_if_match(value: str | None) -> int | None:
    """The version an If-Match names; None when absent or ``*``."""
    if value is None or value.strip() == "*":
        return None
    tag = value.split(",")[0].strip().removeprefix("W/").strip('"')
    if not (tag.isascii() and tag.isdigit()) or len(tag) > MAX_VERSION_DIGITS:
        raise PreconditionFailed("If-Match does not name a version of this record")
    return int(tag)


def _stale_table(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    return "no such column" in text or "unknown column" in text or "no such table" in text


def caller_key(caller: Caller) -> str:
    """Whose writes a read must see (read-your-writes on replicas)."""
    return f"{caller.actor.kind}:{caller.actor.id}"


async def with_collection(
    request: Request, name: str, work: Callable[[Collection], Awaitable[T]]
) -> T:
    """Run ``work`` with the collection. A table that changed under a cached definition
    (another worker changed the schema) gets the work retried once from the start; a
    transient database error (a failover) gets it retried within the retry deadline (see
    ``db.retry``). ``work`` opens its own transaction when it writes."""
    cache = runtime_of(request).get(CollectionCache)
    db = database_of(request)
    stale: list[bool] = []

    async def once() -> T:
        try:
            return await work(await cache.get(db.fast_read, name))
        except DBAPIError as exc:
            if _stale_table(exc) or is_transient(exc):
                cache.forget(name)
            raise

    def retry_if(exc: BaseException) -> bool:
        if isinstance(exc, DBAPIError) and _stale_table(exc):
            stale.append(True)
            return len(stale) == 1
        return is_retryable(exc)

    return await with_retry(once, deadline=db.settings.retry_deadline, retry_if=retry_if)


@router.get(
    "",
    response_model=RecordPage,
    summary="List records",
    openapi_extra=params.OPENAPI,  # the query parameters, read by params.parse_list_params
)
async def list_records(name: str, request: Request, caller: ReaderDep) -> Response:
    wanted = params.parse_list_params(request.query_params)
    db = database_of(request)

    async def work(collection: Collection) -> query.Page:
        return await query.list_records(
            await db.reader_for(caller_key(caller)),
            collection=collection,
            caller=caller,
            filter=wanted.filter,
            sort=wanted.sort,
            cursor=wanted.cursor,
            limit=wanted.limit,
            fields=wanted.fields,
            count=wanted.count,
        )

    page = await with_collection(request, name, work)
    body: dict[str, Any] = {"items": page.items, "next_cursor": page.next_cursor}
    if wanted.count:
        body["total"] = page.total
    return _json(body)


@router.post("", status_code=201, summary="Create a record")
async def create_record(
    name: str,
    data: Data,
    request: Request,
    caller: WriterDep,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Response:
    check_body(data)  # storable JSON before anything serialises it (fingerprint, audit)
    db = database_of(request)
    scope = f"{caller.actor.kind}:{caller.actor.id}:{name}"
    if idempotency_key is not None:
        key = idempotency.check_key(idempotency_key)
        request_print = idempotency.fingerprint("POST", request.url.path, data)
        replay = await idempotency.begin(db, scope=scope, key=key, fingerprint=request_print)
        if replay is not None:
            return _json(
                replay.body,
                replay.status,
                {"Idempotent-Replayed": "true", "ETag": etag(replay.body)},
            )

    async def work(collection: Collection) -> dict[str, Any]:
        async with db.transaction() as session:
            record = await service.create_record(
                session, collection=collection, data=data, caller=caller
            )
            if idempotency_key is not None:
                await idempotency.complete(
                    session, scope=scope, key=idempotency_key, status=201, body=record
                )
        return record

    try:
        record = await with_collection(request, name, work)
    except BaseException:
        if idempotency_key is not None:
            await idempotency.abandon(db, scope=scope, key=idempotency_key)
        raise
    db.note_write(caller_key(caller))
    location = f"{request.url.path}/{record['id']}"
    return _json(record, 201, {"Location": location, "ETag": etag(record)})


_IF_NONE_MATCH = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "an ETag from an earlier response: 304 when the record has not changed",
}


# If-None-Match is read from the request, not declared as a parameter: FastAPI's header
# parameter handling is a visible share of this, the hottest endpoint.
@router.get("/{record_id}", summary="Get a record", openapi_extra={"parameters": [_IF_NONE_MATCH]})
async def get_record(name: str, record_id: str, request: Request, caller: ReaderDep) -> Response:
    if_none_match = request.headers.get("if-none-match")
    db = database_of(request)

    async def work(collection: Collection) -> dict[str, Any] | None:
        return await query.get_record(
            await db.reader_for(caller_key(caller)),
            collection=collection,
            record_id=record_id,
            caller=caller,
        )

    row = await with_collection(request, name, work)
    if row is None:
        raise RecordNotFound(f"no record {record_id!r} in {name!r}")
    tag = etag(row)
    if if_none_match is not None and tag in [
        t.strip().removeprefix("W/") for t in if_none_match.split(",")
    ]:
        return Response(status_code=304, headers={"ETag": tag})
    return _json(row, headers={"ETag": tag})


async def _update(
    name: str,
    record_id: str,
    data: dict[str, Any],
    mode: Mode,
    request: Request,
    caller: Caller,
    if_match: str | None,
) -> Response:
    version = parse_if_match(if_match)
    check_body(data)
    db = database_of(request)

    async def work(collection: Collection) -> dict[str, Any]:
        async with db.transaction() as session:
            return await service.update_record(
                session,
                collection=collection,
                record_id=record_id,
                data=data,
                mode=mode,
                caller=caller,
                if_match=version,
            )

    record = await with_collection(request, name, work)
    db.note_write(caller_key(caller))
    return _json(record, headers={"ETag": etag(record)})


@router.patch("/{record_id}", summary="Change some fields of a record")
async def patch_record(
    name: str,
    record_id: str,
    data: Data,
    request: Request,
    caller: WriterDep,
    if_match: IfMatch = None,
) -> Response:
    return await _update(name, record_id, data, "patch", request, caller, if_match)


@router.put("/{record_id}", summary="Replace a record")
async def replace_record(
    name: str,
    record_id: str,
    data: Data,
    request: Request,
    caller: WriterDep,
    if_match: IfMatch = None,
) -> Response:
    return await _update(name, record_id, data, "replace", request, caller, if_match)


@router.delete("/{record_id}", status_code=204, summary="Delete a record")
async def delete_record(
    name: str,
    record_id: str,
    request: Request,
    caller: WriterDep,
    if_match: IfMatch = None,
) -> Response:
    version = parse_if_match(if_match)
    db = database_of(request)

    async def work(collection: Collection) -> None:
        async with db.transaction() as session:
            await service.delete_record(
                session, collection=collection, record_id=record_id, caller=caller, if_match=version
            )

    await with_collection(request, name, work)
    db.note_write(caller_key(caller))
    return Response(status_code=204)
