"""Where file bytes live, behind one small protocol: a local directory or an S3 bucket.

Writes stream: ``writer(key)`` takes chunks and makes the object appear only on
``commit`` (a local temporary file renamed into place; an S3 multipart upload completed),
so a reader never sees half an object and an aborted upload leaves none. Memory per upload
is one chunk (S3 buffers one part of ``chunk_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from garrison.settings import FileSettings, Settings

READ_CHUNK = 1024 * 1024  # fewer thread hops and middleware passes per download
WRITE_CHUNK = 1024 * 1024
_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")
TMP_DIR = ".tmp"


def check_key(key: str) -> str:
    if not _KEY.match(key) or ".." in key:
        raise ValueError(f"not a storage key: {key!r}")
    return key


class Writer(Protocol):
    async def write(self, chunk: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def abort(self) -> None: ...


class Storage(Protocol):
    """The operations the files domain needs; keys are ``files/<id>``, ``thumbs/<id>/<WxH>``."""

    name: str

    async def writer(self, key: str) -> Writer: ...
    async def put(self, key: str, data: bytes) -> None: ...
    def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes ``start`` to ``end`` (exclusive; ``None``: to the end)."""
        ...

    async def read_all(self, key: str) -> bytes: ...
    async def exists(self, key: str) -> bool: ...
    async def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is no error (deletes are retried)."""
        ...

    def list(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        """Every key under ``prefix`` with its modification time."""
        ...

    async def close(self) -> None: ...


class LocalWriter:
    """Network chunks are gathered to ``WRITE_CHUNK`` before each write (one thread hop
    per MiB, not per 64 KiB)."""

    def __init__(self, final: Path, temp: Path) -> None:
        self.final = final
        self.temp = temp
        self.handle = temp.open("wb")
        self.buffer = bytearray()

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= WRITE_CHUNK:
            data = bytes(self.buffer)
            self.buffer.clear()
            await asyncio.to_thread(self.handle.write, data)

    async def commit(self) -> None:
        data = bytes(self.buffer)
        self.buffer.clear()

        def finish() -> None:
            self.handle.write(data)
            self.handle.close()
            self.final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.temp, self.final)

        await asyncio.to_thread(finish)

    async def abort(self) -> None:
        self.buffer.clear()

        def discard() -> None:
            self.handle.close()
            with contextlib.suppress(FileNotFoundError):
                self.temp.unlink()

        await asyncio.to_thread(discard)


class LocalStorage:
    """A directory: ``<root>/files/<id>``; uploads in progress under ``<root>/.tmp``."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / TMP_DIR).mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def writer(self, key: str) -> Writer:
        final = self.path(key)
        temp = self.root / TMP_DIR / f"{uuid.uuid4().hex}.part"
        return await asyncio.to_thread(LocalWriter, final, temp)

    async def put(self, key: str, data: bytes) -> None:
        writer = await self.writer(key)
        try:
            await writer.write(data)
        except BaseException:
            await writer.abort()
            raise
        await writer.commit()

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(self.path(key).open, "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = None if end is None else end - start
            while left is None or left > 0:
                size = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await asyncio.to_thread(handle.read, size)
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            handle.close()

    async def read_all(self, key: str) -> bytes:
        return await asyncio.to_thread(self.path(key).read_bytes)

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path(key).is_file)

    async def delete(self, key: str) -> None:
        def remove() -> None:
            path = self.path(key)
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(OSError):  # an emptied thumbs/<id> directory
                path.parent.rmdir()

        await asyncio.to_thread(remove)

    async def list(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        def walk() -> list[tuple[str, datetime]]:
            # Objects may be deleted while this walks (the worker's cleanup): what vanishes
            # mid-walk is simply not listed.
            found = []
            for folder, _, names in os.walk(self.root / check_key(prefix)):
                for name in names:
                    path = Path(folder) / name
                    try:
                        modified = path.stat().st_mtime
                    except FileNotFoundError:
                        continue
                    moment = datetime.fromtimestamp(modified, UTC)
                    found.append((path.relative_to(self.root).as_posix(), moment))
            return found

        for entry in await asyncio.to_thread(walk):
            yield entry

    async def close(self) -> None:
        return None


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


class S3Writer:
    """Small objects are one PUT; from ``chunk_bytes`` on, a multipart upload."""

    def __init__(self, storage: S3Storage, key: str) -> None:
        self.storage = storage
        self.key = key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    async def _flush(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            started = await asyncio.to_thread(
                client.create_multipart_upload, Bucket=bucket, Key=self.key
            )
            self.upload_id = str(started["UploadId"])
        number = len(self.parts) + 1
        body = bytes(self.buffer)
        self.buffer.clear()
        done = await asyncio.to_thread(
            client.upload_part,
            Bucket=bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
        )
        self.parts.append({"PartNumber": number, "ETag": done["ETag"]})

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= self.storage.chunk_bytes:
            await self._flush()

    async def commit(self) -> None:
        client, bucket = self.storage.client, self.storage.bucket
        if self.upload_id is None:
            body = bytes(self.buffer)
            self.buffer.clear()
            await asyncio.to_thread(client.put_object, Bucket=bucket, Key=self.key, Body=body)
            return
        if self.buffer:
            await self._flush()
        await asyncio.to_thread(
            client.complete_multipart_upload,
            Bucket=bucket,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": self.parts},
        )

    async def abort(self) -> None:
        self.buffer.clear()
        if self.upload_id is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(
                    self.storage.client.abort_multipart_upload,
                    Bucket=self.storage.bucket,
                    Key=self.key,
                    UploadId=self.upload_id,
                )


class S3Storage:
    name = "s3"

    def __init__(self, settings: FileSettings) -> None:
        import boto3
        from botocore.config import Config

        if not settings.s3_bucket:
            raise ValueError("files.s3_bucket is required for the s3 backend")
        self.bucket = settings.s3_bucket
        self.prefix = settings.s3_prefix.strip("/")
        self.chunk_bytes = settings.chunk_bytes
        secret = settings.s3_secret_access_key
        self.client: Any = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"},
                max_pool_connections=64,
                signature_version="s3v4",
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    async def writer(self, key: str) -> Writer:
        return S3Writer(self, self._key(key))

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(
            self.client.put_object, Bucket=self.bucket, Key=self._key(key), Body=data
        )

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        extra: dict[str, str] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        got = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self._key(key), **extra
        )
        body = got["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK):
                yield chunk
        finally:
            body.close()

    async def read_all(self, key: str) -> bytes:
        got = await asyncio.to_thread(
            self.client.get_object, Bucket=self.bucket, Key=self._key(key)
        )
        data: bytes = await asyncio.to_thread(got["Body"].read)
        return data

    async def exists(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self._key(key))

    async def list(self, prefix: str) -> AsyncIterator[tuple[str, datetime]]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix) + "/")
        iterator = iter(pages)
        while True:
            page = await asyncio.to_thread(next, iterator, None)
            if page is None:
                return
            for item in page.get("Contents", []):
                key = str(item["Key"])
                if self.prefix:
                    key = key.removeprefix(self.prefix + "/")
                yield key, item["LastModified"]

    def presigned_url(
        self, key: str, *, content_type: str, disposition: str, expires_in: int
    ) -> str:
        """A GET link straight to the object (computed locally: no request is made)."""
        url: str = self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=expires_in,
        )
        return url

    async def close(self) -> None:
        await asyncio.to_thread(self.client.close)


def local_root(settings: Settings) -> Path | None:
    """The directory the local backend keeps the objects in; None when they are on S3."""
    files = settings.files
    if files.backend == "s3":
        return None
    return (files.local_dir or settings.data_dir / "files").resolve()


def open_primary(settings: Settings) -> Storage:
    root = local_root(settings)
    return S3Storage(settings.files) if root is None else LocalStorage(root)


def open_storage(settings: Settings) -> Storage:
    """The configured backend, replicated to the second one when ``files.replica`` is set."""
    from garrison.files.replication import ReplicatedStorage, open_replica

    primary = open_primary(settings)
    replica = open_replica(settings)
    return primary if replica is None else ReplicatedStorage(primary, replica)
