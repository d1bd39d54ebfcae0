"""Serving a file: the record's view rule (or a signed link) decides who may read it; a
hidden record's file is a 404 exactly like a missing one. Thumbnails are made once and
kept in storage beside the original."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from garrison.db.engine import Database
from garrison.errors import ValidationFailed
from garrison.files import http, service, signing, thumbs
from garrison.files.errors import FileNotFound, storage_errors
from garrison.files.models import FileRow
from garrison.files.runtime import FileRuntime
from garrison.files.sniff import IMAGE_TYPES
from garrison.files.storage import S3Storage
from garrison.records import query
from garrison.records.errors import RuleDenied
from garrison.records.query import Caller
from garrison.records.registry import Collection
from garrison.records.spec import FieldSpec


@dataclass
class Download:
    """What to send: the whole object or ``start``..``end`` of it, or ``body`` (a thumbnail)."""

    row: FileRow
    key: str
    size: int
    etag: str
    status: int = 200
    start: int = 0
    end: int | None = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def file_field(collection: Collection, name: str) -> FieldSpec:
    spec = collection.spec.field(name)
    if spec is None or spec.type != "file":
        raise FileNotFound(f"{collection.name!r} has no file field {name!r}")
    return spec


async def find(
    db: Database,
    files: FileRuntime,
    *,
    collection: Collection,
    record_id: str,
    field_name: str,
    file_id: str,
    caller: Caller,
    token: str | None,
) -> FileRow:
    """The file's row, once the caller may read it: the record is visible to them, or
    ``token`` is a live signed link to this file."""
    file_field(collection, field_name)
    missing = FileNotFound(f"no file {file_id!r} on this record")
    if token is not None:
        signing.verify(files.keyring, file_id=file_id, token=token)
    else:
        reader = await db.reader_for(f"{caller.actor.kind}:{caller.actor.id}")
        try:
            record = await query.get_record(
                reader, collection=collection, record_id=record_id, caller=caller
            )
        except RuleDenied:
            record = None
        if record is None:
            raise missing
    async with db.read_session() as session:
        row = await service.get_file(
            session,
            collection=collection.name,
            record_id=record_id,
            field=field_name,
            file_id=file_id,
        )
    if row is None:
        raise missing
    return row


def signed_link(files: FileRuntime, *, path: str, file_id: str) -> dict[str, object]:
    expires = int(time.time()) + files.settings.signed_url_seconds
    token = signing.sign(files.keyring, file_id=file_id, expires=expires)
    return {"url": f"{path}?token={token}", "token": token, "expires_at": expires}


async def prepare(
    files: FileRuntime,
    *,
    row: FileRow,
    spec: FieldSpec,
    thumb: str | None,
    range_header: str | None,
    if_none_match: str | None,
    if_range: str | None,
) -> Download:
    if thumb is not None:
        return await _thumbnail(files, row=row, spec=spec, size=thumb, if_none_match=if_none_match)
    download = Download(row, row.storage_key, row.size, f'"{row.sha256}"')
    if http.matches(if_none_match, download.etag):
        download.status = 304
        return download
    if if_range is not None and if_range.strip() != download.etag:
        range_header = None  # the client's copy is stale: send all of it
    wanted = http.byte_range(range_header, row.size)
    if wanted is not None:
        download.status, (download.start, download.end) = 206, wanted
        download.headers["Content-Range"] = f"bytes {wanted[0]}-{wanted[1] - 1}/{row.size}"
    return download


async def _thumbnail(
    files: FileRuntime, *, row: FileRow, spec: FieldSpec, size: str, if_none_match: str | None
) -> Download:
    allowed = spec.thumbs or []
    if size not in allowed:
        raise ValidationFailed(
            "this thumbnail size is not offered",
            errors=[{"parameter": "thumb", "detail": f"must be one of: {', '.join(allowed)}"}],
        )
    if row.content_type not in IMAGE_TYPES:
        raise ValidationFailed(
            "only images have thumbnails",
            errors=[{"parameter": "thumb", "detail": f"the file is {row.content_type}"}],
        )
    key = service.thumb_key(row.id, size)
    download = Download(row, key, 0, f'"{row.sha256}-{size}"')
    if http.matches(if_none_match, download.etag):
        download.status = 304
        return download
    async with storage_errors():
        await _cached_thumbnail(files, row=row, key=key, size=size, download=download)
    return download


async def _cached_thumbnail(
    files: FileRuntime, *, row: FileRow, key: str, size: str, download: Download
) -> None:
    storage = files.storage
    if await storage.exists(key):
        download.body = await storage.read_all(key)
    else:
        if row.size > files.settings.thumb_max_source_bytes:
            raise ValidationFailed(
                "the image is too large to thumbnail",
                errors=[{"parameter": "thumb", "detail": "the source file is too large"}],
            )
        source = await storage.read_all(row.storage_key)
        download.body = await thumbs.thumbnail(
            source,
            content_type=row.content_type,
            size=thumbs.parse_size(size),
            max_pixels=files.settings.thumb_max_pixels,
        )
        await storage.put(key, download.body)
    download.size = len(download.body)


def presigned(
    files: FileRuntime, *, row: FileRow, thumb: str | None, content_type: str
) -> str | None:
    """With ``s3_presigned_redirects`` on an S3 backend: a short-lived link straight to the
    object (the caller's access was checked already); None to serve the bytes here."""
    storage = files.storage
    if not files.settings.s3_presigned_redirects or thumb is not None:
        return None
    if not isinstance(storage, S3Storage):
        return None
    return storage.presigned_url(
        row.storage_key,
        content_type=content_type,
        disposition=http.disposition(row.name, content_type),
        expires_in=files.settings.signed_url_seconds,
    )
