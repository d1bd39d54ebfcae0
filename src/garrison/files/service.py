"""Storing, attaching, reading and releasing files (typed, keyword-only, never commits).

An upload streams into storage first (``Receiver``), outside any transaction; its row is
written in the caller's transaction, which also writes the record it belongs to. If that
transaction fails, the caller discards the objects (``discard``); the sweeper removes any
object that was left with no row. A file a record no longer holds has its row deleted and
a ``file.deleted`` event emitted in the same transaction: the worker deletes the objects
once it commits (at least once, see ``files.jobs``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.errors import ValidationFailed
from garrison.events import Actor, Event
from garrison.files.errors import FileTooLarge, StorageQuotaExceeded
from garrison.files.models import FileRow, OwnerLock
from garrison.files.sniff import SNIFF_BYTES, allowed, sniff
from garrison.files.storage import Storage, Writer
from garrison.records.kinds import file_ids
from garrison.records.query import Caller
from garrison.records.registry import Collection
from garrison.records.spec import FieldSpec

DELETED = "file.deleted"
UPLOADED = "file.uploaded"  # standalone uploads (a record write reports its own files)


def _now() -> datetime:
    return datetime.now(UTC)


def object_key(file_id: str) -> str:
    return f"files/{file_id}"


def thumb_key(file_id: str, size: str) -> str:
    return f"thumbs/{file_id}/{size}"


@dataclass(frozen=True)
class Upload:
    """An object in storage whose row is not written yet."""

    id: str
    key: str
    name: str
    size: int
    content_type: str
    sha256: str


@dataclass(frozen=True)
class Rules:
    """What one upload must satisfy; ``pointer`` names it in problems (``#/avatar``)."""

    pointer: str
    max_size: int
    mime_types: list[str] | None = None


def rules_for(field: FieldSpec, default_max_size: int) -> Rules:
    return Rules(f"#/{field.name}", field.max_size or default_max_size, field.mime_types)


class Receiver:
    """One file arriving in chunks: sniffed from its first bytes, counted against its
    limit as it streams (``FileTooLarge`` the moment it passes), hashed, and written."""

    def __init__(self, storage: Storage, *, filename: str, rules: Rules) -> None:
        self.storage = storage
        self.filename = filename
        self.rules = rules
        self.id = str(uuid.uuid4())
        self.key = object_key(self.id)
        self.size = 0
        self.digest = hashlib.sha256()
        self.head = bytearray()
        self.content_type: str | None = None
        self.writer: Writer | None = None

    async def feed(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.rules.max_size:
            raise FileTooLarge(
                f"the file is larger than {self.rules.max_size} bytes",
                errors=[{"pointer": self.rules.pointer, "detail": "is too large"}],
            )
        self.digest.update(chunk)
        if self.writer is None:
            self.head += chunk
            if len(self.head) < SNIFF_BYTES:
                return
            await self._open()
            chunk, self.head = bytes(self.head), bytearray()
        assert self.writer is not None
        await self.writer.write(chunk)

    async def _open(self) -> None:
        mime = sniff(bytes(self.head[:SNIFF_BYTES]))
        if not allowed(mime, self.rules.mime_types):
            wanted = ", ".join(self.rules.mime_types or [])
            raise ValidationFailed(
                "an uploaded file's content is not of an allowed type",
                errors=[{"pointer": self.rules.pointer, "detail": f"is {mime}; allowed: {wanted}"}],
            )
        self.content_type = mime
        self.writer = await self.storage.writer(self.key)

    async def finish(self) -> Upload:
        if self.writer is None:
            await self._open()
            assert self.writer is not None
            await self.writer.write(bytes(self.head))
        await self.writer.commit()
        assert self.content_type is not None
        return Upload(
            self.id, self.key, self.filename, self.size, self.content_type, self.digest.hexdigest()
        )

    async def abort(self) -> None:
        if self.writer is not None:
            await self.writer.abort()


async def discard(storage: Storage, uploads: Iterable[Upload]) -> None:
    """Remove stored objects whose rows never committed (best effort: the sweeper is the
    backstop)."""
    for upload in uploads:
        try:
            await storage.delete(upload.key)
        except Exception:  # noqa: S112 - the orphan sweeper removes it later
            continue


async def add_pending(session: AsyncSession, *, uploads: Iterable[Upload], owner: str) -> None:
    """Rows for stored uploads, not yet bound to a record."""
    now = _now()
    for upload in uploads:
        session.add(
            FileRow(
                id=upload.id,
                name=upload.name,
                size=upload.size,
                content_type=upload.content_type,
                sha256=upload.sha256,
                storage_key=upload.key,
                owner=owner,
                created_at=now,
            )
        )
    await session.flush()


def describe(row: FileRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "size": row.size,
        "content_type": row.content_type,
        "sha256": row.sha256,
        "created_at": row.created_at.isoformat().replace("+00:00", "Z"),
    }


async def get_file(
    session: AsyncSession, *, collection: str, record_id: str, field: str, file_id: str
) -> FileRow | None:
    row = await session.get(FileRow, file_id)
    if row is None or (row.collection, row.record_id, row.field) != (collection, record_id, field):
        return None
    return row


async def files_of(session: AsyncSession, *, collection: str, record_id: str) -> list[FileRow]:
    found = await session.scalars(
        select(FileRow).where(FileRow.collection == collection, FileRow.record_id == record_id)
    )
    return list(found)


async def release(session: AsyncSession, *, rows: Iterable[FileRow], actor: Actor) -> int:
    """Delete the rows; their objects go once this commits (a ``file.deleted`` event each)."""
    count = 0
    for row in rows:
        await session.execute(delete(FileRow).where(FileRow.id == row.id))
        await events.emit(
            session,
            Event(
                action=DELETED,
                actor=actor,
                target_type="file",
                target_id=row.id,
                data={"id": row.id, "key": row.storage_key, "collection": row.collection},
            ),
        )
        count += 1
    return count


def _refused(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        "a file field names a file that cannot be attached",
        errors=[{"pointer": pointer, "detail": detail}],
    )


class FileAttachments:
    """``records.attachments.Attachments`` for this domain."""

    def __init__(self, default_max_size: int) -> None:
        self.default_max_size = default_max_size

    async def attach(
        self,
        session: AsyncSession,
        *,
        collection: Collection,
        record_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any],
        caller: Caller,
    ) -> None:
        dropped: list[FileRow] = []
        for field in collection.spec.fields:
            if field.type != "file" or field.name not in after:
                continue
            old = file_ids((before or {}).get(field.name))
            new = file_ids(after[field.name])
            await self._bind(
                session, collection, record_id, field, [i for i in new if i not in old], caller
            )
            gone = [i for i in old if i not in new]
            if gone:
                rows = await session.scalars(select(FileRow).where(FileRow.id.in_(gone)))
                dropped.extend(r for r in rows if r.record_id == record_id)
        await release(session, rows=dropped, actor=caller.actor)

    async def _bind(
        self,
        session: AsyncSession,
        collection: Collection,
        record_id: str,
        field: FieldSpec,
        ids: list[str],
        caller: Caller,
    ) -> None:
        if not ids:
            return
        pointer = f"#/{field.name}"
        if caller.id is None:
            raise _refused(pointer, "files can be attached by signed-in callers only")
        rows = {r.id: r for r in await session.scalars(select(FileRow).where(FileRow.id.in_(ids)))}
        rules = rules_for(field, self.default_max_size)
        for file_id in ids:
            row = rows.get(file_id)
            if row is None or row.owner != caller.id or row.record_id is not None:
                raise _refused(pointer, f"{file_id} is not an unattached upload of yours")
            if row.size > rules.max_size:
                raise _refused(pointer, f"{file_id} is larger than {rules.max_size} bytes")
            if not allowed(row.content_type, rules.mime_types):
                raise _refused(pointer, f"{file_id} is {row.content_type}, not an allowed type")
        result = await session.execute(
            update(FileRow)
            .where(FileRow.id.in_(ids), FileRow.record_id.is_(None))
            .values(
                collection=collection.name,
                record_id=record_id,
                field=field.name,
                attached_at=_now(),
            )
        )
        if result.rowcount != len(ids):  # type: ignore[attr-defined]
            raise _refused(pointer, "a file was attached elsewhere meanwhile")

    async def detach(
        self, session: AsyncSession, *, collection: Collection, record_id: str, caller: Caller
    ) -> None:
        rows = await files_of(session, collection=collection.name, record_id=record_id)
        await release(session, rows=rows, actor=caller.actor)


async def expired_pending(session: AsyncSession, *, before: datetime, limit: int) -> list[FileRow]:
    found = await session.scalars(
        select(FileRow).where(FileRow.record_id.is_(None), FileRow.created_at < before).limit(limit)
    )
    return list(found)


async def known_ids(session: AsyncSession, ids: list[str]) -> set[str]:
    if not ids:
        return set()
    return set(await session.scalars(select(FileRow.id).where(FileRow.id.in_(ids))))


async def files_of_owner(session: AsyncSession, *, owner: str) -> list[FileRow]:
    """Every file ``owner`` uploaded (attached or not), oldest first (privacy export)."""
    found = await session.scalars(
        select(FileRow).where(FileRow.owner == owner).order_by(FileRow.created_at, FileRow.id)
    )
    return list(found)


async def release_of_owner(
    session: AsyncSession, *, owner: str, collections: Iterable[str], actor: Actor
) -> int:
    """Erasure: release every file ``owner`` uploaded that is unattached or belongs to one
    of ``collections`` (those whose records are deleted or anonymized); how many."""
    names = list(collections)
    found = await session.scalars(
        select(FileRow).where(
            FileRow.owner == owner,
            or_(FileRow.record_id.is_(None), FileRow.collection.in_(names)),
        )
    )
    await session.execute(delete(OwnerLock).where(OwnerLock.owner == owner[:64]))
    return await release(session, rows=list(found), actor=actor)


async def check_quota(session: AsyncSession, *, owner: str, adding: int, quota: int | None) -> None:
    """``StorageQuotaExceeded`` when ``owner``'s files plus ``adding`` bytes pass ``quota``
    (None: no quota). Checked before an upload streams (``adding`` 0: already full?) and
    again, with the stored sizes, in the transaction that writes the rows: that check
    (``adding`` > 0) first takes the owner's lock, so two uploads at once cannot both count
    the bytes used before either."""
    if quota is None:
        return
    if adding and session.get_bind().dialect.name != "sqlite":
        claim = mysql_insert(OwnerLock).values(owner=owner[:64], locked_at=datetime.now(UTC))
        await session.execute(claim.on_duplicate_key_update(locked_at=claim.inserted.locked_at))
    used = int(
        await session.scalar(
            select(func.coalesce(func.sum(FileRow.size), 0)).where(FileRow.owner == owner)
        )
        or 0
    )
    if used + adding > quota or (adding == 0 and used >= quota):
        raise StorageQuotaExceeded(
            f"your files would take {used + adding} of your {quota} bytes",
            used=used,
            quota=quota,
        )


async def attached_before(
    session: AsyncSession, *, before: datetime, after_id: str, limit: int
) -> list[FileRow]:
    """Attached rows older than ``before``, in id order from ``after_id`` (sweeper pages)."""
    found = await session.scalars(
        select(FileRow)
        .where(FileRow.record_id.is_not(None), FileRow.attached_at < before, FileRow.id > after_id)
        .order_by(FileRow.id)
        .limit(limit)
    )
    return list(found)
