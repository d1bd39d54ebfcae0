"""Helpers for the file storage tests: an app with a collection that has file fields,
images made with Pillow, and what the storage holds."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import delete

from garrison.files.models import FileRow
from garrison.files.runtime import FileRuntime
from garrison.files.storage import Storage
from garrison.runtime import runtime_of
from garrison.settings import Settings
from garrison.worker import Worker
from tests.authkit import AuthApp, auth_app, bearer
from tests.helpers import drop_all_collections

PEOPLE: dict[str, Any] = {
    "name": "people",
    "fields": [
        {"name": "title", "type": "text", "max_length": 100},
        {
            "name": "avatar",
            "type": "file",
            "max_size": 3 * 1024 * 1024,
            "mime_types": ["image/png", "image/jpeg"],
            "thumbs": ["64x64", "10x10"],
        },
        {"name": "docs", "type": "file", "max_files": 3, "max_size": 65536},
    ],
    "rules": {
        "list": "owner = @auth.id",
        "view": "owner = @auth.id",
        "create": "@auth.id != null",
        "update": "owner = @auth.id",
        "delete": "owner = @auth.id",
    },
}
RECORDS = "/api/v1/collections/people/records"


def png(width: int = 200, height: int = 100, colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that claims ``width`` x ``height`` (a decompression bomb's header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


@dataclass
class FilesApp:
    api: AuthApp

    @property
    def client(self) -> httpx.AsyncClient:
        return self.api.client

    @property
    def runtime(self) -> FileRuntime:
        return runtime_of(self.api.running.app).get(FileRuntime)

    @property
    def storage(self) -> Storage:
        return self.runtime.storage

    async def user(self) -> dict[str, str]:
        return bearer(await self.api.token())

    async def objects(self) -> list[str]:
        found = []
        for prefix in ("files", "thumbs"):
            found += [key async for key, _ in self.storage.list(prefix)]
        return sorted(found)

    async def rows(self) -> list[FileRow]:
        db = runtime_of(self.api.running.app).db
        async with db.read_session() as session:
            from sqlalchemy import select

            return list(await session.scalars(select(FileRow)))

    async def drain(self, done: Any, passes: int = 50) -> bool:
        """Run worker passes until ``done()`` holds (the outbox delivered), at most ``passes``."""
        worker = runtime_of(self.api.running.app).get(Worker)
        for _ in range(passes):
            if await done():
                return True
            await worker.run_once()
        return bool(await done())

    async def create(
        self, headers: dict[str, str], *, data: dict[str, Any] | None = None, **files: Any
    ) -> httpx.Response:
        return await self.client.post(
            RECORDS,
            data={"data": json.dumps(data or {})},
            files=list(files.items()),
            headers=headers,
        )


@asynccontextmanager
async def files_app(settings: Settings, spec: dict[str, Any] = PEOPLE) -> AsyncIterator[FilesApp]:
    async with auth_app(settings) as api:
        admin = bearer(await api.token(role="admin"))
        made = await api.client.post("/api/v1/collections", json=spec, headers=admin)
        assert made.status_code == 201, made.text
        try:
            yield FilesApp(api)
        finally:
            db = runtime_of(api.running.app).db
            await drop_all_collections(db)
            async with db.transaction() as session:
                await session.execute(delete(FileRow))
