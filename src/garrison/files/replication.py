"""Replication: every object written to a second backend or bucket as well (the
specification's copy in another region), and a repair job that fills the gaps.

``ReplicatedStorage`` is a ``Storage``: writes go to both sides in the same stream; the
primary must succeed, a replica that fails (an outage on that side) only leaves a gap that
``repair`` fills later, so uploads keep working while one region is away. Reads come from
the primary and fall back to the replica when the primary fails. Deletes go to both; a
delete the replica missed is repaired too (the replica keeps no key the primary lacks).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime

from botocore.exceptions import BotoCoreError, ClientError

from garrison.files.storage import LocalStorage, S3Storage, Storage, Writer
from garrison.log import get_logger
from garrison.settings import Settings

log = get_logger("garrison.files")
FAILURES = (OSError, BotoCoreError, ClientError)
PREFIXES = ("files", "thumbs")


class TeeWriter:
    def __init__(self, primary: Writer, replica: Writer | None, key: str) -> None:
        self.primary = primary
        self.replica = replica
        self.key = key

    async def _replica_failed(self, exc: BaseException) -> None:
        log.warning("files.replica_write_failed", key=self.key, error=type(exc).__name__)
        if self.replica is not None:
            with contextlib.suppress(*FAILURES):
                await self.replica.abort()
        self.replica = None

    async def write(self, chunk: bytes) -> None:
        await self.primary.write(chunk)
        if self.replica is not None:
            try:
                await self.replica.write(chunk)
            except FAILURES as exc:
                await self._replica_failed(exc)

    async def commit(self) -> None:
        await self.primary.commit()
        if self.replica is not None:
            try:
                await self.replica.commit()
            except FAILURES as exc:
                await self._replica_failed(exc)

    async def abort(self) -> None:
        await self.primary.abort()
        if self.replica is not None:
            with contextlib.suppress(*FAILURES):
                await self.replica.abort()


class ReplicatedStorage:
    name = "replicated"

    def __init__(self, primary: Storage, replica: Storage) -> None:
        self.primary = primary
        self.replica = replica

    async def writer(self, key: str) -> Writer:
        primary = await self.primary.writer(key)
        try:
            replica: Writer | None = await self.replica.writer(key)
        except FAILURES as exc:
            log.warning("files.replica_write_failed", key=key, error=type(exc).__name__)
            replica = None
        return TeeWriter(primary, replica, key)

    async def put(self, key: str, data: bytes) -> None:
        await self.primary.put(key, data)
        try:
            await self.replica.put(key, data)
        except FAILURES as exc:
            log.warning("files.replica_write_failed", key=key, error=type(exc).__name__)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        source = self.primary.read(key, start, end)
        try:
            first = await anext(source, None)
        except FAILURES:
            source = self.replica.read(key, start, end)
            first = await anext(source, None)
        if first is None:
            return
        yield first
        async for chunk in source:
            yield chunk

    async def read_all(self, key: str) -> bytes:
        try:
            return await self.primary.read_all(key)
        except FAILURES:
            return await self.replica.read_all(key)

    async def exists(self, key: str) -> bool:
        try:
            return await self.primary.exists(key)
        except FAILURES:
            return await self.replica.exists(key)

    async def delete(self, key: str) -> None:
        await self.primary.delete(key)
        try:
            await self.replica.delete(key)
        except FAILURES as exc:
            log.warning("files.replica_delete_failed", key=key, error=type(exc).__name__)

    def list(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        return self.primary.list(prefix)

    async def close(self) -> None:
        await self.primary.close()
        await self.replica.close()


async def _keys(storage: Storage) -> set[str]:
    found: set[str] = set()
    for prefix in PREFIXES:
        found.update([key async for key, _ in storage.list(prefix)])
    return found


async def repair(primary: Storage, replica: Storage) -> dict[str, int]:
    """Copy every object the replica lacks, remove every one the primary no longer has;
    how many of each. Objects are copied whole, one at a time."""
    wanted, held = await _keys(primary), await _keys(replica)
    copied = removed = 0
    for key in sorted(wanted - held):
        writer = await replica.writer(key)
        try:
            async for chunk in primary.read(key):
                await writer.write(chunk)
        except BaseException:
            await writer.abort()
            raise
        await writer.commit()
        copied += 1
    for key in sorted(held - wanted):
        await replica.delete(key)
        removed += 1
    if copied or removed:
        log.info("files.replica_repaired", copied=copied, removed=removed)
    return {"copied": copied, "removed": removed}


def open_replica(settings: Settings) -> Storage | None:
    files = settings.files
    if files.replica == "local":
        return LocalStorage(
            (files.replica_local_dir or settings.data_dir / "files-replica").resolve()
        )
    if files.replica == "s3":
        return S3Storage(
            files.model_copy(
                update={
                    "s3_bucket": files.replica_s3_bucket or files.s3_bucket,
                    "s3_prefix": files.replica_s3_prefix,
                    "s3_endpoint_url": files.replica_s3_endpoint_url or files.s3_endpoint_url,
                }
            )
        )
    return None
