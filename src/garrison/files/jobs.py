"""The files domain's background work, run by the worker.

- ``FileCleanup``: the outbox handler for ``file.deleted``: deletes the object and its
  thumbnails. Deleting a missing key is no error, so a redelivered message is harmless.
- ``sweep``: removes unattached uploads older than the grace period (row, then objects),
  files whose record or collection went without the records service (a dropped
  collection, retention), and objects that have no row once they are older than the grace
  period (an upload whose transaction failed, a crash between storing and committing).
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.events import Actor
from garrison.files import service
from garrison.files.models import FileRow
from garrison.files.storage import Storage, open_storage
from garrison.log import get_logger
from garrison.outbox.registry import Message, Registry
from garrison.records import owned, registry
from garrison.settings import Settings

log = get_logger("garrison.files")


async def delete_objects(storage: Storage, file_id: str, key: str | None = None) -> None:
    await storage.delete(key or service.object_key(file_id))
    async for thumb, _ in storage.list(f"thumbs/{file_id}"):
        await storage.delete(thumb)


class FileCleanup:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    @classmethod
    def from_settings(cls, settings: Settings) -> FileCleanup:
        return cls(open_storage(settings))

    def install(self, registry: Registry) -> None:
        registry.register(service.DELETED, self.deliver, key="files")

    async def deliver(self, message: Message, db: Database) -> None:
        file_id = str(message.payload.get("data", {}).get("id") or message.target_id or "")
        key = message.payload.get("data", {}).get("key")
        if file_id:
            await delete_objects(self.storage, file_id, str(key) if key else None)


async def _unbound_page(
    session: AsyncSession, *, cutoff: datetime, after: str, batch: int
) -> tuple[list[tuple[str, str]], str | None]:
    """One page of attached rows: release those whose record, collection or field is gone."""
    rows = await service.attached_before(session, before=cutoff, after_id=after, limit=batch)
    if not rows:
        return [], None
    names = {c.name: c for c in await registry.list_collections(session)}
    by_collection: dict[str, list[FileRow]] = {}
    for row in rows:
        by_collection.setdefault(row.collection or "", []).append(row)
    gone: list[FileRow] = []
    for name, group in by_collection.items():
        collection = names.get(name)
        alive = (
            set()
            if collection is None
            else await owned.existing_ids(
                session, collection=collection, ids=[str(r.record_id) for r in group]
            )
        )
        fields = (
            set()
            if collection is None
            else {f.name for f in collection.spec.fields if f.type == "file"}
        )
        gone += [r for r in group if r.record_id not in alive or r.field not in fields]
    released = [(r.id, r.storage_key) for r in gone]
    await service.release(session, rows=gone, actor=Actor.system())
    return released, rows[-1].id


async def _unbound(db: Database, storage: Storage, *, cutoff: datetime, batch: int) -> int:
    """Release files whose record or collection went without the records service (a
    dropped collection, retention, an erasure's bulk delete); how many."""
    removed, after = 0, ""
    while True:
        page = functools.partial(_unbound_page, cutoff=cutoff, after=after, batch=batch)
        released, last = await transact(db, page)
        for file_id, key in released:
            await delete_objects(storage, file_id, key)
        removed += len(released)
        if last is None:
            return removed
        after = last


def _file_id(key: str) -> str:
    return key.split("/")[1] if key.count("/") >= 1 else ""


async def sweep(db: Database, storage: Storage, settings: Settings) -> int:
    """Remove expired unattached uploads and orphaned objects; how many files went."""
    cutoff = datetime.now(UTC) - timedelta(seconds=settings.files.orphan_grace_seconds)
    batch = settings.files.sweep_batch_size
    removed = 0

    async def expire(session: AsyncSession) -> list[tuple[str, str]]:
        rows = await service.expired_pending(session, before=cutoff, limit=batch)
        gone = [(row.id, row.storage_key) for row in rows]
        await service.release(session, rows=rows, actor=Actor.system())
        return gone

    for file_id, key in await transact(db, expire):
        await delete_objects(storage, file_id, key)
        removed += 1
    removed += await _unbound(db, storage, cutoff=cutoff, batch=batch)
    candidates: dict[str, list[str]] = {}
    for prefix in ("files", "thumbs"):
        async for key, modified in storage.list(prefix):
            if modified < cutoff and (file_id := _file_id(key)):
                candidates.setdefault(file_id, []).append(key)
    ids = list(candidates)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        async with db.transaction() as session:
            known = await service.known_ids(session, chunk)
        for file_id in chunk:
            if file_id not in known:
                for key in candidates[file_id]:
                    await storage.delete(key)
                removed += 1
    if removed:
        log.info("files.swept", removed=removed)
    return removed


async def repair_replica(settings: Settings) -> dict[str, int] | None:
    """The replication repair job: fill the replica's gaps (None: no replica configured)."""
    from garrison.files.replication import open_replica, repair
    from garrison.files.storage import open_primary

    replica = open_replica(settings)
    if replica is None:
        return None
    primary = open_primary(settings)
    try:
        return await repair(primary, replica)
    finally:
        await primary.close()
        await replica.close()
