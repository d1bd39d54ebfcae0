"""File endpoints (thin: bind, call, respond).

- ``POST /api/v1/files``: a standalone upload (part ``file``), attached later by id.
- ``POST|PATCH|PUT /api/v1/collections/{name}/records[/{id}]`` with ``multipart/form-data``:
  the record's fields (part ``data``, JSON) and its files in one request and one
  transaction. These routes match multipart bodies only; JSON bodies go to the records
  router as before.
- ``GET …/records/{id}/files/{field}/{file_id}`` (``?thumb=WxH``, ``?token=``) and
  ``POST …/{file_id}/signed-url``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from starlette.responses import Response, StreamingResponse
from starlette.routing import Match

from garrison.deps import database_of
from garrison.files import downloads, http, workflow
from garrison.files.errors import storage_errors
from garrison.files.runtime import FileRuntime
from garrison.records.cache import CollectionCache
from garrison.records.deps import ReaderDep, WriterDep
from garrison.records.registry import Collection
from garrison.records.router import caller_key, etag, parse_if_match
from garrison.records.validation import Mode, encode
from garrison.runtime import runtime_of
from garrison.types import Scope

RECORDS = "/api/v1/collections/{name}/records"
FILE = RECORDS + "/{record_id}/files/{field}/{file_id}"
THUMB_TYPES = {"image/gif": "image/png"}  # GIF thumbnails are written as PNG


def is_multipart(scope: Scope) -> bool:
    for name, value in scope.get("headers", ()):
        if name == b"content-type":
            return bool(value[:19].lower() == b"multipart/form-data")
    return False


class MultipartRoute(APIRoute):
    """Matches only ``multipart/form-data`` requests, so it can share a path and method
    with the JSON route of the records router (which comes after it)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and not is_multipart(scope):
            return Match.NONE, {}
        return match, child


router = APIRouter(tags=["files"])
record_uploads = APIRouter(tags=["files"], route_class=MultipartRoute, include_in_schema=False)


def _files(request: Request) -> FileRuntime:
    return runtime_of(request).get(FileRuntime)


async def _collection(request: Request, name: str) -> Collection:
    return await runtime_of(request).get(CollectionCache).get(database_of(request).fast_read, name)


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode(body), status, headers=headers, media_type="application/json")


@router.post("/api/v1/files", status_code=201, summary="Upload a file to attach later")
async def upload_file(request: Request, caller: WriterDep) -> Response:
    described = await workflow.upload_standalone(
        database_of(request),
        _files(request),
        caller=caller,
        stream=request.stream(),
        content_type=request.headers.get("content-type", ""),
    )
    return _json(described, 201)


@record_uploads.post(RECORDS, status_code=201)
async def create_record_with_files(name: str, request: Request, caller: WriterDep) -> Response:
    db = database_of(request)
    record, status, replayed = await workflow.create_with_files(
        db,
        _files(request),
        collection=await _collection(request, name),
        caller=caller,
        stream=request.stream(),
        content_type=request.headers.get("content-type", ""),
        idempotency_key=request.headers.get("idempotency-key"),
        path=request.url.path,
    )
    db.note_write(caller_key(caller))
    headers = {"Location": f"{request.url.path}/{record['id']}", "ETag": etag(record)}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(record, status, headers)


async def _update(name: str, record_id: str, request: Request, caller: Any, mode: Mode) -> Response:
    db = database_of(request)
    record = await workflow.update_with_files(
        db,
        _files(request),
        collection=await _collection(request, name),
        record_id=record_id,
        caller=caller,
        mode=mode,
        if_match=parse_if_match(request.headers.get("if-match")),
        stream=request.stream(),
        content_type=request.headers.get("content-type", ""),
    )
    db.note_write(caller_key(caller))
    return _json(record, headers={"ETag": etag(record)})


@record_uploads.patch(RECORDS + "/{record_id}")
async def patch_record_with_files(
    name: str, record_id: str, request: Request, caller: WriterDep
) -> Response:
    return await _update(name, record_id, request, caller, "patch")


@record_uploads.put(RECORDS + "/{record_id}")
async def replace_record_with_files(
    name: str, record_id: str, request: Request, caller: WriterDep
) -> Response:
    return await _update(name, record_id, request, caller, "replace")


Thumb = Annotated[str | None, Query(max_length=9, description="a thumbnail size, WxH")]
Token = Annotated[str | None, Query(max_length=200, description="a signed link's token")]


@router.get(FILE, summary="Download a file of a record", response_class=Response)
async def download_file(
    name: str,
    record_id: str,
    field: str,
    file_id: str,
    request: Request,
    caller: ReaderDep,
    thumb: Thumb = None,
    token: Token = None,
) -> Response:
    files = _files(request)
    collection = await _collection(request, name)
    row = await downloads.find(
        database_of(request),
        files,
        collection=collection,
        record_id=record_id,
        field_name=field,
        file_id=file_id,
        caller=caller,
        token=token,
    )
    sent = await downloads.prepare(
        files,
        row=row,
        spec=downloads.file_field(collection, field),
        thumb=thumb,
        range_header=request.headers.get("range"),
        if_none_match=request.headers.get("if-none-match"),
        if_range=request.headers.get("if-range"),
    )
    content_type = (
        THUMB_TYPES.get(row.content_type, row.content_type) if thumb else row.content_type
    )
    headers = {
        "ETag": sent.etag,
        "Cache-Control": "private, no-cache",
        "Accept-Ranges": "none" if thumb else "bytes",
        "Content-Disposition": http.disposition(row.name, content_type),
        **sent.headers,
    }
    if sent.status == 304:
        return Response(status_code=304, headers=headers)
    redirect = downloads.presigned(files, row=row, thumb=thumb, content_type=content_type)
    if redirect is not None:
        return Response(
            status_code=302, headers={"Location": redirect, "Cache-Control": "no-store"}
        )
    if sent.body is not None:
        return Response(sent.body, sent.status, headers=headers, media_type=content_type)
    end = row.size if sent.end is None else sent.end
    headers["Content-Length"] = str(end - sent.start)
    return StreamingResponse(
        await _opened(files.storage.read(sent.key, sent.start, end)),
        sent.status,
        headers=headers,
        media_type=content_type,
    )


async def _opened(body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``body`` with its first chunk already read: a storage that fails is a 503 before
    the response starts, not a cut-off 200."""
    async with storage_errors():
        first = await anext(body, b"")

    async def chained() -> AsyncIterator[bytes]:
        yield first
        async for chunk in body:
            yield chunk

    return chained()


@router.post(FILE + "/signed-url", summary="A short-lived link to a file, for browsers")
async def sign_file(
    name: str, record_id: str, field: str, file_id: str, request: Request, caller: ReaderDep
) -> dict[str, object]:
    files = _files(request)
    collection = await _collection(request, name)
    await downloads.find(
        database_of(request),
        files,
        collection=collection,
        record_id=record_id,
        field_name=field,
        file_id=file_id,
        caller=caller,
        token=None,
    )
    return downloads.signed_link(
        files, path=request.url.path.removesuffix("/signed-url"), file_id=file_id
    )
