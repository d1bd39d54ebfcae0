"""File fields over HTTP with real users, on SQLite and MariaDB, local-disk storage: the
issue's walk-through (an avatar uploaded with its record, fetched with a thumbnail by the
owner, hidden from another user, followed through a signed link, gone with the record),
downloads (Range, ETag, headers), standalone uploads attached by id, replacement."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import text

from garrison.files import signing
from garrison.settings import Settings
from tests.conftest import make_settings
from tests.fileskit import RECORDS, FilesApp, files_app, png


@pytest.fixture
async def fa(settings: Settings) -> AsyncIterator[FilesApp]:
    async with files_app(settings) as app:
        yield app


def file_url(record: dict[str, Any], field: str = "avatar", file_id: str | None = None) -> str:
    return f"{RECORDS}/{record['id']}/files/{field}/{file_id or record[field]}"


async def test_walk_through(fa: FilesApp) -> None:
    alice, bob = await fa.user(), await fa.user()
    image = png()
    created = await fa.create(
        alice, data={"title": "me"}, avatar=("me.png", image, "application/octet-stream")
    )
    assert created.status_code == 201, created.text
    record = created.json()
    assert record["title"] == "me"
    [row] = await fa.rows()
    assert (row.id, row.record_id, row.field) == (record["avatar"], record["id"], "avatar")
    assert (row.name, row.size, row.content_type) == ("me.png", len(image), "image/png")
    assert await fa.objects() == [f"files/{row.id}"]

    got = await fa.client.get(file_url(record), headers=alice)
    assert got.status_code == 200
    assert got.content == image
    assert got.headers["content-type"] == "image/png"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in got.headers["content-security-policy"]
    assert got.headers["content-disposition"].startswith('inline; filename="me.png"')
    assert got.headers["etag"] == f'"{row.sha256}"'

    thumb = await fa.client.get(file_url(record), params={"thumb": "64x64"}, headers=alice)
    assert thumb.status_code == 200, thumb.text
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.size == (64, 32)
    assert f"thumbs/{row.id}/64x64" in await fa.objects()
    again = await fa.client.get(file_url(record), params={"thumb": "64x64"}, headers=alice)
    assert again.content == thumb.content  # served from storage the second time

    assert (await fa.client.get(file_url(record), headers=bob)).status_code == 404
    hidden = await fa.client.post(file_url(record) + "/signed-url", headers=bob)
    assert hidden.status_code == 404

    signed = await fa.client.post(file_url(record) + "/signed-url", headers=alice)
    assert signed.status_code == 200, signed.text
    followed = await fa.client.get(signed.json()["url"])  # no credentials at all
    assert followed.status_code == 200
    assert followed.content == image

    deleted = await fa.client.delete(f"{RECORDS}/{record['id']}", headers=alice)
    assert deleted.status_code == 204
    assert await fa.rows() == []

    async def gone() -> bool:
        return await fa.objects() == []

    assert await fa.drain(gone), await fa.objects()


async def test_downloads_honour_range_and_etag(fa: FilesApp) -> None:
    alice = await fa.user()
    body = b"0123456789" * 10
    record = (await fa.create(alice, docs=("notes.txt", body, "text/plain"))).json()
    [doc] = record["docs"]
    url = file_url(record, "docs", doc)
    whole = await fa.client.get(url, headers=alice)
    assert whole.content == body
    assert whole.headers["content-type"].startswith("text/plain")
    assert whole.headers["content-disposition"].startswith("attachment;")
    assert whole.headers["accept-ranges"] == "bytes"
    part = await fa.client.get(url, headers=alice | {"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == body[10:20]
    assert part.headers["content-range"] == "bytes 10-19/100"
    tail = await fa.client.get(url, headers=alice | {"Range": "bytes=-5"})
    assert tail.content == body[-5:]
    stale = await fa.client.get(url, headers=alice | {"Range": "bytes=0-1", "If-Range": '"x"'})
    assert stale.status_code == 200
    outside = await fa.client.get(url, headers=alice | {"Range": "bytes=500-"})
    assert outside.status_code == 416
    assert outside.headers["content-range"] == "bytes */100"
    assert outside.headers["content-type"] == "application/problem+json"
    cached = await fa.client.get(url, headers=alice | {"If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304


async def test_a_standalone_upload_is_attached_by_id(fa: FilesApp) -> None:
    alice, bob = await fa.user(), await fa.user()
    up = await fa.client.post(
        "/api/v1/files", files={"file": ("a.png", png(), "image/png")}, headers=alice
    )
    assert up.status_code == 201, up.text
    file_id = up.json()["id"]
    assert up.json()["content_type"] == "image/png"
    stolen = await fa.client.post(RECORDS, json={"avatar": file_id}, headers=bob)
    assert stolen.status_code == 422
    assert stolen.json()["errors"][0]["pointer"] == "#/avatar"
    made = await fa.client.post(RECORDS, json={"avatar": file_id}, headers=alice)
    assert made.status_code == 201, made.text
    got = await fa.client.get(file_url(made.json()), headers=alice)
    assert got.status_code == 200
    twice = await fa.client.post(RECORDS, json={"avatar": file_id}, headers=alice)
    assert twice.status_code == 422  # attached already


async def test_a_standalone_upload_of_the_wrong_type_cannot_be_attached(fa: FilesApp) -> None:
    alice = await fa.user()
    up = await fa.client.post(
        "/api/v1/files", files={"file": ("a.txt", b"hello", "text/plain")}, headers=alice
    )
    refused = await fa.client.post(RECORDS, json={"avatar": up.json()["id"]}, headers=alice)
    assert refused.status_code == 422
    assert "text/plain" in refused.json()["errors"][0]["detail"]


async def test_replacing_a_file_deletes_the_old_object(fa: FilesApp) -> None:
    alice = await fa.user()
    record = (await fa.create(alice, avatar=("a.png", png(), "image/png"))).json()
    old = record["avatar"]
    await fa.client.get(file_url(record), params={"thumb": "10x10"}, headers=alice)
    changed = await fa.client.patch(
        f"{RECORDS}/{record['id']}",
        files={"avatar": ("b.png", png(colour="blue"), "image/png")},
        headers=alice | {"If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    new = changed.json()["avatar"]
    assert new != old
    assert changed.headers["etag"] == '"2"'

    async def only_new() -> bool:
        return await fa.objects() == [f"files/{new}"]

    assert await fa.drain(only_new), await fa.objects()
    assert (await fa.client.get(file_url(record, file_id=old), headers=alice)).status_code == 404


async def test_multi_file_fields_append_and_release(fa: FilesApp) -> None:
    alice = await fa.user()
    record = (await fa.create(alice, docs=("1.txt", b"one", "text/plain"))).json()
    added = await fa.client.patch(
        f"{RECORDS}/{record['id']}",
        files=[("docs", ("2.txt", b"two", "text/plain")), ("docs", ("3.txt", b"3", "text/plain"))],
        headers=alice,
    )
    assert added.status_code == 200, added.text
    docs = added.json()["docs"]
    assert len(docs) == 3
    assert docs[0] == record["docs"][0]
    full = await fa.client.patch(
        f"{RECORDS}/{record['id']}", files=[("docs", ("4.txt", b"4", "text/plain"))], headers=alice
    )
    assert full.status_code == 422
    assert full.json()["errors"][0]["pointer"] == "#/docs"
    dropped = await fa.client.patch(
        f"{RECORDS}/{record['id']}", json={"docs": docs[:1]}, headers=alice
    )
    assert dropped.status_code == 200
    assert len(await fa.rows()) == 1


async def test_uploads_may_exceed_the_general_body_limit(fa: FilesApp) -> None:
    alice = await fa.user()
    big = png(1500, 1500) + b"\x00" * (2 * 1024 * 1024)  # over the 1 MiB JSON body limit
    made = await fa.create(alice, avatar=("big.png", big, "image/png"))
    assert made.status_code == 201, made.text
    assert (await fa.rows())[0].size == len(big)


async def test_signed_links_expire_and_cannot_be_altered(fa: FilesApp) -> None:
    alice = await fa.user()
    record = (await fa.create(alice, avatar=("a.png", png(), "image/png"))).json()
    url = file_url(record)
    keyring = fa.runtime.keyring
    expired = signing.sign(keyring, file_id=record["avatar"], expires=int(time.time()) - 1)
    refused = await fa.client.get(url, params={"token": expired})
    assert refused.status_code == 403
    assert "expired" in refused.json()["detail"]
    live = signing.sign(keyring, file_id=record["avatar"], expires=int(time.time()) + 60)
    altered = live[:-2] + ("AA" if not live.endswith("AA") else "BB")
    assert (await fa.client.get(url, params={"token": altered})).json()["detail"] == (
        "the signed link was altered"
    )
    extended = str(int(time.time()) + 9999) + live[live.index(".") :]
    assert (await fa.client.get(url, params={"token": extended})).status_code == 403
    other = (await fa.create(alice, avatar=("b.png", png(), "image/png"))).json()
    moved = await fa.client.get(file_url(other), params={"token": live})
    assert moved.status_code == 403


async def test_the_storage_quota_is_per_user(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url=database_url, files={"user_quota_bytes": 1000})
    async with files_app(settings) as quota:
        alice, bob = await quota.user(), await quota.user()

        async def upload(headers: dict[str, str], size: int) -> int:
            sent = await quota.client.post(
                "/api/v1/files",
                files={"file": ("f.txt", b"x" * size, "text/plain")},
                headers=headers,
            )
            return sent.status_code

        assert await upload(alice, 600) == 201
        refused = await quota.create(alice, docs=("d.txt", b"y" * 600, "text/plain"))
        assert refused.status_code == 413
        assert refused.json()["type"].endswith("storage-quota-exceeded")
        assert (refused.json()["used"], refused.json()["quota"]) == (600, 1000)
        assert await upload(alice, 400) == 201
        assert await upload(alice, 1) == 413  # full: refused before anything streams
        assert await upload(bob, 1000) == 201  # a quota of his own
        assert len(await quota.objects()) == 3


async def test_uploads_at_once_cannot_pass_the_quota_together(
    database_url: str, tmp_path: Path
) -> None:
    """Eight uploads of 600 bytes at the same moment against a quota of 1,000: one is stored.
    Each checks the quota in the transaction that writes its row, and on MariaDB two such
    transactions could both count the same 0 bytes used."""
    settings = make_settings(tmp_path, database_url=database_url, files={"user_quota_bytes": 1000})
    async with files_app(settings) as quota:
        alice = await quota.user()

        async def upload(n: int) -> int:
            sent = await quota.client.post(
                "/api/v1/files",
                files={"file": (f"f{n}.txt", b"x" * 600, "text/plain")},
                headers=alice,
            )
            return sent.status_code

        codes = await asyncio.gather(*(upload(n) for n in range(8)))
        assert sorted(codes) == [201] + [413] * 7, codes
        assert len(await quota.objects()) == 1  # the refused uploads' objects are removed


async def test_schema_apply_adds_a_file_field(fa: FilesApp) -> None:
    """``garrison schema apply``'s plan: a file field added to a collection that has records
    becomes a column; the export round-trips its options."""
    from garrison.events import Actor
    from garrison.records import plan as planner
    from garrison.records.cache import CollectionCache
    from garrison.records.spec import CollectionSpec
    from garrison.runtime import runtime_of

    alice = await fa.user()
    before = (await fa.client.post(RECORDS, json={"title": "old"}, headers=alice)).json()
    db = runtime_of(fa.api.running.app).db
    async with db.transaction() as session:
        [current] = await planner.current_specs(session)
        document = planner.export_document([current])
        document["collections"][0]["fields"].append(
            {"name": "cover", "type": "file", "mime_types": ["image/*"], "thumbs": ["10x10"]}
        )
        desired = planner.read_document(document)
        steps = planner.plan([current], desired, prune=False)
        assert [step.action for step in steps] == ["change"]
        await planner.apply(session, steps=steps, actor=Actor.system())
    runtime_of(fa.api.running.app).get(CollectionCache).clear()
    changed = await fa.client.patch(
        f"{RECORDS}/{before['id']}",
        files={"cover": ("c.png", png(), "image/png")},
        headers=alice,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["cover"]
    async with db.read_session() as session:
        [spec] = await planner.current_specs(session)
    assert CollectionSpec.model_validate(spec.model_dump()).field("cover") == desired[0].field(
        "cover"
    )


async def test_an_update_of_a_hidden_record_stores_nothing(fa: FilesApp) -> None:
    alice, bob = await fa.user(), await fa.user()
    record = (await fa.create(alice, avatar=("a.png", png(), "image/png"))).json()
    before = await fa.objects()
    refused = await fa.client.patch(
        f"{RECORDS}/{record['id']}",
        files={"avatar": ("b.png", png(colour="blue"), "image/png")},
        headers=bob,
    )
    assert refused.status_code == 404
    stale = await fa.client.patch(
        f"{RECORDS}/{record['id']}",
        files={"avatar": ("b.png", png(colour="blue"), "image/png")},
        headers=alice | {"If-Match": '"7"'},
    )
    assert stale.status_code == 412
    assert await fa.objects() == before
    assert len(await fa.rows()) == 1


async def test_a_standalone_upload_is_audited(fa: FilesApp) -> None:
    alice = await fa.user()
    up = await fa.client.post(
        "/api/v1/files", files={"file": ("a.txt", b"hello", "text/plain")}, headers=alice
    )
    admin = {"Authorization": f"Bearer {await fa.api.token(role='admin')}"}
    found = await fa.client.get("/api/v1/audit", params={"action": "file.uploaded"}, headers=admin)
    assert found.status_code == 200, found.text
    # The MariaDB database is shared by the session: other tests' uploads may be listed too.
    assert up.json()["id"] in [e["target"]["id"] for e in found.json()["items"]]


async def test_an_idempotent_upload_is_stored_once(fa: FilesApp) -> None:
    alice = await fa.user()
    key = {"Idempotency-Key": "upload-1"}
    image = png()
    first = await fa.create(alice | key, data={"title": "t"}, avatar=("a.png", image, "image/png"))
    assert first.status_code == 201, first.text
    again = await fa.create(alice | key, data={"title": "t"}, avatar=("a.png", image, "image/png"))
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await fa.create(
        alice | key, data={"title": "t"}, avatar=("a.png", png(colour="blue"), "image/png")
    )
    assert other.status_code == 422  # the same key for different bytes
    assert len(await fa.rows()) == 1
    assert await fa.objects() == [f"files/{first.json()['avatar']}"]


@pytest.mark.parametrize("fresh_database_url", ["mariadb"], indirect=True)
async def test_a_second_upload_waits_for_the_first_to_count_its_bytes(
    tmp_path: Path, fresh_database_url: str
) -> None:
    """MariaDB, two app processes (SQLite runs one writer at a time): while one upload's
    transaction holds 600 of the owner's 1,000 bytes, another upload's quota check waits for
    it, then counts those bytes and is refused. A database of its own: the rows it writes
    have no objects, and other tests list every row."""
    from garrison.db.engine import Database
    from garrison.files import service
    from garrison.files.errors import StorageQuotaExceeded
    from tests.conftest import migrated

    settings = make_settings(tmp_path, database_url=fresh_database_url)
    await migrated(settings)
    owner = f"user-{uuid.uuid4().hex[:12]}"

    def upload() -> service.Upload:
        name = uuid.uuid4().hex
        return service.Upload(name, f"files/{name}", "a.txt", 600, "text/plain", "0" * 64)

    first_db, second_db = (Database(settings.db_url, settings.db) for _ in range(2))
    second_connection: list[int] = []

    async def second() -> None:
        async with second_db.transaction() as session:
            second_connection.append(int(await session.scalar(text("SELECT CONNECTION_ID()"))))
            await service.check_quota(session, owner=owner, adding=600, quota=1000)
            await service.add_pending(session, uploads=[upload()], owner=owner)

    async def second_is_waiting() -> bool:
        """The second is inside its claim of the owner's lock (which the first holds)."""
        async with first_db.read_session() as session:
            found = await session.scalar(
                text(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                    "WHERE ID = :id AND INFO LIKE 'INSERT INTO files_owner_locks%'"
                ),
                {"id": second_connection[0] if second_connection else -1},
            )
        return bool(found)

    try:
        async with first_db.transaction() as session:
            await service.check_quota(session, owner=owner, adding=600, quota=1000)
            await service.add_pending(session, uploads=[upload()], owner=owner)
            waiting = asyncio.create_task(second())
            async with asyncio.timeout(60):
                while not waiting.done() and not await second_is_waiting():
                    await asyncio.sleep(0.01)
            assert not waiting.done(), "the second upload counted without waiting"
        with pytest.raises(StorageQuotaExceeded):
            await waiting
    finally:
        await first_db.dispose()
        await second_db.dispose()
