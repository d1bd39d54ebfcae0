"""Files in the privacy workflows, on both backends: a user's uploads are in their export
(metadata and bytes), and erasing them releases their files (rows at once, objects
through the outbox) except in collections whose policy retains records."""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from garrison.settings import Settings
from tests.fileskit import RECORDS, FilesApp, files_app, png
from tests.test_privacy import wait_for


@pytest.fixture
async def fa(settings: Settings) -> AsyncIterator[FilesApp]:
    async with files_app(settings) as app:
        yield app


async def me(fa: FilesApp, headers: dict[str, str]) -> str:
    user_id: str = (await fa.client.get("/api/v1/auth/me", headers=headers)).json()["id"]
    return user_id


async def test_export_holds_the_files_and_erasure_releases_them(fa: FilesApp) -> None:
    alice, bob = await fa.user(), await fa.user()
    image = png()
    record = (await fa.create(alice, avatar=("me.png", image, "image/png"))).json()
    pending = await fa.client.post(
        "/api/v1/files",
        files={"file": ("later.txt", b"not yet attached", "text/plain")},
        headers=alice,
    )
    bobs = (await fa.create(bob, avatar=("bob.png", png(colour="blue"), "image/png"))).json()

    started = await fa.client.post("/api/v1/auth/me/export", headers=alice)
    assert started.status_code == 202, started.text
    job = started.json()["id"]

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await fa.client.get(f"/api/v1/privacy/exports/{job}", headers=alice)
        ).json()
        return body if body["status"] in ("done", "failed") else None

    status = await wait_for(done)
    assert status["status"] == "done", status
    archive = zipfile.ZipFile(io.BytesIO((await fa.client.get(status["download_url"])).content))
    listed = orjson.loads(archive.read("files.json"))
    assert {f["id"] for f in listed} == {record["avatar"], pending.json()["id"]}
    assert archive.read(f"files/{record['avatar']}/me.png") == image
    assert f"files/{bobs['avatar']}/bob.png" not in archive.namelist()

    admin = {"Authorization": f"Bearer {await fa.api.token(role='admin')}"}
    erased = await fa.client.post(
        "/api/v1/privacy/erasures", json={"user_id": await me(fa, alice)}, headers=admin
    )
    assert erased.status_code == 201, erased.text
    assert erased.json()["files"] == 2
    assert [row.id for row in await fa.rows()] == [bobs["avatar"]]

    async def only_bobs() -> bool:
        return await fa.objects() == [f"files/{bobs['avatar']}"]

    assert await fa.drain(only_bobs), await fa.objects()
    assert (await fa.client.get(f"{RECORDS}/{bobs['id']}", headers=bob)).status_code == 200
