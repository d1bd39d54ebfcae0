"""Workflows that own their transaction: a record written together with its files, a
standalone upload. The files stream into storage before the transaction opens; the rows
and the record commit together or not at all, and on failure the objects are removed
again (the orphan sweeper is the backstop if this process dies first)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.db.engine import Database
from garrison.errors import Unauthorized
from garrison.events import Event
from garrison.files import service
from garrison.files.models import FileRow
from garrison.files.runtime import FileRuntime
from garrison.files.service import Rules, rules_for
from garrison.files.upload import PartRules, Received, receive
from garrison.records import idempotency, query
from garrison.records import service as records_service
from garrison.records.errors import RecordNotFound
from garrison.records.kinds import file_ids
from garrison.records.query import Caller
from garrison.records.registry import Collection
from garrison.records.validation import Mode


def _signed_in(caller: Caller) -> str:
    if caller.id is None:
        raise Unauthorized("uploading files needs a signed-in caller")
    return caller.id


async def _room_left(db: Database, files: FileRuntime, owner: str) -> None:
    """Refuse before any byte is stored when the caller's quota is already used up."""
    if files.settings.user_quota_bytes is not None:
        async with db.read_session() as session:
            await service.check_quota(
                session, owner=owner, adding=0, quota=files.settings.user_quota_bytes
            )


async def _store_rows(
    session: AsyncSession, files: FileRuntime, received: Received, owner: str
) -> None:
    adding = sum(upload.size for upload in received.uploads)
    if adding:
        await service.check_quota(
            session, owner=owner, adding=adding, quota=files.settings.user_quota_bytes
        )
    await service.add_pending(session, uploads=received.uploads, owner=owner)


def part_rules(collection: Collection, files: FileRuntime) -> dict[str, PartRules]:
    return {
        field.name: PartRules(
            rules_for(field, files.settings.default_max_size), field.max_files or 1
        )
        for field in collection.spec.fields
        if field.type == "file"
    }


async def _receive(
    stream: AsyncIterator[bytes],
    content_type: str,
    files: FileRuntime,
    parts: dict[str, PartRules],
    *,
    allow_data: bool = True,
) -> Received:
    return await receive(
        stream,
        content_type,
        storage=files.storage,
        parts=parts,
        max_parts=files.settings.max_parts,
        max_data_bytes=files.settings.max_data_bytes,
        allow_data=allow_data,
    )


def _merged(
    collection: Collection, received: Received, current: dict[str, Any] | None
) -> dict[str, Any]:
    """The record's fields with the uploaded files' ids in their fields: a single-file
    field takes the new file, a multi-file field appends to the ids it has (or that
    ``data`` gives)."""
    data = dict(received.data or {})
    for name, uploads in received.files.items():
        field = collection.spec.field(name)
        assert field is not None
        new = [upload.id for upload in uploads]
        if (field.max_files or 1) == 1:
            data[name] = new[-1]
        else:
            kept = data[name] if name in data else (current or {}).get(name)
            data[name] = [*file_ids(kept), *new]
    return data


def _fingerprint(path: str, received: Received) -> bytes:
    """What a retry must repeat: the fields and each file's field, name and content."""
    files = sorted((u.name, u.sha256, name) for name, ups in received.files.items() for u in ups)
    return idempotency.fingerprint("POST", path, {"data": received.data, "files": files})


async def create_with_files(
    db: Database,
    files: FileRuntime,
    *,
    collection: Collection,
    caller: Caller,
    stream: AsyncIterator[bytes],
    content_type: str,
    idempotency_key: str | None = None,
    path: str = "",
) -> tuple[dict[str, Any], int, bool]:
    """The record, its status and whether it is a replay. With ``idempotency_key``, a
    retry of the same upload (same fields, same files' bytes) gets the first answer and
    stores nothing; the key is claimed once the body is in, as the JSON route does."""
    owner = _signed_in(caller)
    if idempotency_key is not None:
        idempotency.check_key(idempotency_key)
    query.check_action(collection, "create", caller)  # refused before any byte is stored
    await _room_left(db, files, owner)
    received = await _receive(stream, content_type, files, part_rules(collection, files))
    scope = f"{caller.actor.kind}:{caller.actor.id}:{collection.name}"
    claimed = False
    try:
        if idempotency_key is not None:
            replay = await idempotency.begin(
                db, scope=scope, key=idempotency_key, fingerprint=_fingerprint(path, received)
            )
            if replay is not None:
                await service.discard(files.storage, received.uploads)
                return replay.body, replay.status, True
            claimed = True
        async with db.transaction() as session:
            await _store_rows(session, files, received, owner)
            record = await records_service.create_record(
                session,
                collection=collection,
                data=_merged(collection, received, None),
                caller=caller,
            )
            if idempotency_key is not None:
                await idempotency.complete(
                    session, scope=scope, key=idempotency_key, status=201, body=record
                )
            return record, 201, False
    except BaseException:
        await service.discard(files.storage, received.uploads)
        if claimed:
            assert idempotency_key is not None
            await idempotency.abandon(db, scope=scope, key=idempotency_key)
        raise


async def update_with_files(
    db: Database,
    files: FileRuntime,
    *,
    collection: Collection,
    record_id: str,
    caller: Caller,
    mode: Mode,
    if_match: int | None,
    stream: AsyncIterator[bytes],
    content_type: str,
) -> dict[str, Any]:
    owner = _signed_in(caller)
    query.check_action(collection, "update", caller)
    await _room_left(db, files, owner)
    received = await _receive(stream, content_type, files, part_rules(collection, files))
    try:
        async with db.transaction() as session:
            current = await query.get_record(
                session, collection=collection, record_id=record_id, caller=caller
            )
            if current is None:
                raise RecordNotFound(f"no record {record_id!r} in {collection.name!r}")
            await _store_rows(session, files, received, owner)
            return await records_service.update_record(
                session,
                collection=collection,
                record_id=record_id,
                data=_merged(collection, received, current),
                mode=mode,
                caller=caller,
                if_match=if_match,
            )
    except BaseException:
        await service.discard(files.storage, received.uploads)
        raise


async def upload_standalone(
    db: Database,
    files: FileRuntime,
    *,
    caller: Caller,
    stream: AsyncIterator[bytes],
    content_type: str,
) -> dict[str, Any]:
    """One file (part ``file``), kept unattached until a record write names its id; the
    field's rules are checked then."""
    owner = _signed_in(caller)
    await _room_left(db, files, owner)
    parts = {"file": PartRules(Rules("#/file", files.settings.default_max_size))}
    received = await _receive(stream, content_type, files, parts, allow_data=False)
    if not received.uploads:
        from garrison.files.errors import MalformedUpload

        raise MalformedUpload("the upload has no 'file' part")
    try:
        async with db.transaction() as session:
            await _store_rows(session, files, received, owner)
            row = await session.get(FileRow, received.uploads[0].id)
            assert row is not None
            described = service.describe(row)
            await events.emit(
                session,
                Event(
                    action=service.UPLOADED,
                    actor=caller.actor,
                    target_type="file",
                    target_id=row.id,
                    data=described,
                ),
            )
            return described
    except BaseException:
        await service.discard(files.storage, received.uploads)
        raise
