"""The storage protocol on both backends — a local directory and a real SeaweedFS S3
gateway — and the issue's walk-through with objects in SeaweedFS, on both databases."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from garrison.files import jobs
from garrison.files.models import FileRow
from garrison.files.storage import LocalStorage, S3Storage, Storage
from garrison.ops.backup.errors import BackupError, ToolMissing
from garrison.ops.backup.servers import SeaweedS3
from garrison.runtime import runtime_of
from garrison.settings import FileSettings, Settings
from tests.conftest import make_settings
from tests.fileskit import RECORDS, files_app, png
from tests.services import unavailable

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    gateway = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    try:
        gateway.start()
    except (ToolMissing, BackupError) as exc:
        gateway.stop()
        unavailable("SeaweedFS", str(exc))
    try:
        yield gateway
    finally:
        gateway.stop()


def s3_settings(s3: SeaweedS3, bucket: str, prefix: str) -> dict[str, Any]:
    return {
        "backend": "s3",
        "s3_bucket": bucket,
        "s3_prefix": prefix,
        "s3_endpoint_url": s3.endpoint,
        "s3_access_key_id": s3.access_key,
        "s3_secret_access_key": s3.secret_key,
        "chunk_bytes": 5 * MIB,
    }


@pytest.fixture(scope="module")
def bucket(s3: SeaweedS3) -> str:
    """One bucket for the module (each SeaweedFS bucket takes volumes of its own; the
    test server has few): every test writes under a prefix of its own. SeaweedFS may
    refuse the first tries while it starts."""
    bucket = f"files-{uuid.uuid4().hex[:10]}"
    client = S3Storage(FileSettings(**s3_settings(s3, bucket, ""))).client
    deadline = time.monotonic() + 60
    while True:
        try:
            client.create_bucket(Bucket=bucket)
            return bucket
        except Exception:
            assert time.monotonic() < deadline, "SeaweedFS did not create the bucket"
            time.sleep(0.05)  # a bounded poll of a condition, not a guess at timing


@pytest.fixture(params=["local", "s3"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    if request.param == "local":
        store: Storage = LocalStorage(tmp_path / "files")
    else:
        gateway: SeaweedS3 = request.getfixturevalue("s3")
        name: str = request.getfixturevalue("bucket")
        prefix = f"t-{uuid.uuid4().hex[:8]}"
        store = S3Storage(FileSettings(**s3_settings(gateway, name, prefix)))
    yield store
    await store.close()


async def keys(storage: Storage, prefix: str = "files") -> list[str]:
    return sorted([key async for key, _ in storage.list(prefix)])


async def read(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in storage.read(key, start, end)])


async def test_the_storage_protocol(storage: Storage) -> None:
    data = os.urandom(11 * MIB + 123)  # three S3 parts of 5 MiB
    writer = await storage.writer("files/big")
    for start in range(0, len(data), MIB):
        await writer.write(data[start : start + MIB])
    assert await keys(storage) == []  # nothing is visible before commit
    await writer.commit()
    assert await storage.exists("files/big")
    assert await read(storage, "files/big") == data
    assert await read(storage, "files/big", 5, 10) == data[5:10]
    assert await read(storage, "files/big", len(data) - 3) == data[-3:]

    await storage.put("thumbs/big/10x10", b"small")
    assert await storage.read_all("thumbs/big/10x10") == b"small"
    assert await keys(storage, "thumbs") == ["thumbs/big/10x10"]

    aborted = await storage.writer("files/aborted")
    await aborted.write(os.urandom(6 * MIB))
    await aborted.abort()
    assert await keys(storage) == ["files/big"]

    await storage.delete("files/big")
    await storage.delete("files/big")  # a second delete is no error
    assert not await storage.exists("files/big")
    assert await keys(storage) == []
    with pytest.raises(ValueError, match="storage key"):
        await storage.put("../escape", b"x")


async def test_walk_through_on_seaweedfs(
    s3: SeaweedS3, bucket: str, database_url: str, tmp_path: Path
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    files = s3_settings(s3, bucket, prefix)
    settings = make_settings(tmp_path, database_url=database_url, files=files)
    async with files_app(settings) as fa:
        alice, bob = await fa.user(), await fa.user()
        image = png()
        record = (await fa.create(alice, avatar=("me.png", image, "image/png"))).json()
        url = f"{RECORDS}/{record['id']}/files/avatar/{record['avatar']}"
        assert (await fa.client.get(url, headers=alice)).content == image
        part = await fa.client.get(url, headers=alice | {"Range": "bytes=0-7"})
        assert part.content == image[:8]
        thumb = await fa.client.get(url, params={"thumb": "64x64"}, headers=alice)
        assert thumb.status_code == 200
        assert (await fa.client.get(url, headers=bob)).status_code == 404
        signed = (await fa.client.post(url + "/signed-url", headers=alice)).json()
        assert (await fa.client.get(signed["url"])).content == image

        client = S3Storage(settings.files).client

        def in_bucket() -> list[str]:
            listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/")
            return sorted(item["Key"] for item in listed.get("Contents", []))

        assert in_bucket() == [
            f"{prefix}/files/{record['avatar']}",
            f"{prefix}/thumbs/{record['avatar']}/64x64",
        ]
        assert (
            await fa.client.delete(f"{RECORDS}/{record['id']}", headers=alice)
        ).status_code == 204

        async def gone() -> bool:
            return in_bucket() == []

        assert await fa.drain(gone), in_bucket()


async def test_the_sweeper_removes_orphans_and_stale_uploads(settings: Settings) -> None:
    async with files_app(settings) as fa:
        alice = await fa.user()
        kept = (await fa.create(alice, avatar=("a.png", png(), "image/png"))).json()["avatar"]
        stale = (
            await fa.client.post(
                "/api/v1/files", files={"file": ("s.png", png(), "image/png")}, headers=alice
            )
        ).json()["id"]
        fresh = (
            await fa.client.post(
                "/api/v1/files", files={"file": ("f.png", png(), "image/png")}, headers=alice
            )
        ).json()["id"]
        orphan, young_orphan = str(uuid.uuid4()), str(uuid.uuid4())
        await fa.storage.put(f"files/{orphan}", b"left behind")
        await fa.storage.put(f"thumbs/{orphan}/10x10", b"left behind")
        await fa.storage.put(f"files/{young_orphan}", b"an upload still committing")
        hour_ago = datetime.now(UTC) - timedelta(hours=2)
        root = fa.storage.root  # type: ignore[attr-defined]
        for key in (f"files/{orphan}", f"thumbs/{orphan}/10x10", f"files/{stale}", f"files/{kept}"):
            os.utime(root / key, (hour_ago.timestamp(), hour_ago.timestamp()))
        db = runtime_of(fa.api.running.app).db
        async with db.transaction() as session:
            row = await session.get(FileRow, stale)
            assert row is not None
            row.created_at = hour_ago
        settings.files.orphan_grace_seconds = 3600
        removed = await jobs.sweep(db, fa.storage, settings)
        assert removed == 2
        assert await fa.objects() == sorted(
            [f"files/{kept}", f"files/{fresh}", f"files/{young_orphan}"]
        )
        assert sorted(r.id for r in await fa.rows()) == sorted([kept, fresh])


async def test_a_storage_outage_is_a_503_and_stores_nothing(
    database_url: str, tmp_path: Path
) -> None:
    from tests.helpers import free_port

    files = {
        "backend": "s3",
        "s3_bucket": "nowhere",
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing listens there
        "s3_access_key_id": "k",
        "s3_secret_access_key": "s",
    }
    settings = make_settings(tmp_path, database_url=database_url, files=files)
    async with files_app(settings) as fa:
        alice = await fa.user()
        response = await fa.create(alice, avatar=("a.png", png(), "image/png"))
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert response.json()["type"].endswith("storage-unavailable")
        assert "k" not in response.json()["detail"].split()  # no credentials in the answer
        assert await fa.rows() == []


async def test_replication_writes_both_sides_and_reads_fall_back(
    database_url: str, tmp_path: Path
) -> None:
    files = {"replica": "local", "replica_local_dir": str(tmp_path / "replica")}
    settings = make_settings(tmp_path, database_url=database_url, files=files)
    async with files_app(settings) as fa:
        alice = await fa.user()
        image = png()
        record = (await fa.create(alice, avatar=("a.png", image, "image/png"))).json()
        key = f"files/{record['avatar']}"
        replica = LocalStorage(tmp_path / "replica")
        assert await keys(replica) == [key]
        primary_root = fa.storage.primary.root  # type: ignore[attr-defined]
        (primary_root / key).unlink()  # the primary loses the object
        url = f"{RECORDS}/{record['id']}/files/avatar/{record['avatar']}"
        assert (await fa.client.get(url, headers=alice)).content == image
        assert (
            await fa.client.delete(f"{RECORDS}/{record['id']}", headers=alice)
        ).status_code == 204

        async def gone() -> bool:
            return await keys(replica) == []

        assert await fa.drain(gone), await keys(replica)


async def test_uploads_survive_a_replica_outage_and_repair_fills_the_gap(
    s3: SeaweedS3, bucket: str, tmp_path: Path
) -> None:
    from garrison.files.replication import ReplicatedStorage, repair
    from tests.helpers import free_port

    primary = LocalStorage(tmp_path / "primary")
    dead = S3Storage(
        FileSettings(
            **s3_settings(s3, bucket, "x") | {"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"}
        )
    )
    during_outage = ReplicatedStorage(primary, dead)
    writer = await during_outage.writer("files/one")
    await writer.write(b"written while the replica was away")
    await writer.commit()
    await during_outage.put("thumbs/one/10x10", b"thumb")
    assert await keys(primary) == ["files/one"]

    replica = S3Storage(FileSettings(**s3_settings(s3, bucket, f"r-{uuid.uuid4().hex[:8]}")))
    await replica.put("files/stale", b"deleted on the primary while the replica was away")
    assert await repair(primary, replica) == {"copied": 2, "removed": 1}
    assert await keys(replica) == ["files/one"]
    assert await replica.read_all("files/one") == b"written while the replica was away"
    assert await repair(primary, replica) == {"copied": 0, "removed": 0}
    await replica.close()


async def test_presigned_redirects_send_bytes_straight_from_s3(
    s3: SeaweedS3, bucket: str, database_url: str, tmp_path: Path
) -> None:
    import httpx

    files = s3_settings(s3, bucket, f"t-{uuid.uuid4().hex[:8]}") | {"s3_presigned_redirects": True}
    settings = make_settings(tmp_path, database_url=database_url, files=files)
    async with files_app(settings) as fa:
        alice, bob = await fa.user(), await fa.user()
        image = png()
        record = (await fa.create(alice, avatar=("me.png", image, "image/png"))).json()
        url = f"{RECORDS}/{record['id']}/files/avatar/{record['avatar']}"
        assert (await fa.client.get(url, headers=bob)).status_code == 404  # checked first
        sent = await fa.client.get(url, headers=alice)
        assert sent.status_code == 302
        location = sent.headers["location"]
        assert location.startswith(s3.endpoint)
        async with httpx.AsyncClient() as outside:
            fetched = await outside.get(location)
        assert fetched.status_code == 200
        assert fetched.content == image
        thumb = await fa.client.get(url, params={"thumb": "64x64"}, headers=alice)
        assert thumb.status_code == 200  # thumbnails are served by the app


async def test_the_sweeper_releases_files_whose_record_went_elsewhere(settings: Settings) -> None:
    from sqlalchemy import text, update

    from garrison.events import Actor
    from garrison.records import registry
    from garrison.records.ddl import SchemaChange
    from garrison.records.spec import FieldSpec

    async with files_app(settings) as fa:
        alice = await fa.user()
        kept = (await fa.create(alice, avatar=("k.png", png(), "image/png"))).json()
        bulk = (await fa.create(alice, avatar=("b.png", png(), "image/png"))).json()
        db = runtime_of(fa.api.running.app).db
        admin = {"Authorization": f"Bearer {await fa.api.token(role='admin')}"}
        other = {
            "name": "others",
            "fields": [{"name": "doc", "type": "file"}],
            "rules": {"create": "", "view": "", "list": "", "update": "", "delete": ""},
        }
        assert (
            await fa.client.post("/api/v1/collections", json=other, headers=admin)
        ).status_code == 201
        dropped = await fa.client.post(
            "/api/v1/collections/others/records",
            files={"doc": ("d.txt", b"doc", "text/plain")},
            headers=alice,
        )
        assert dropped.status_code == 201, dropped.text
        with_docs = (await fa.create(alice, docs=("x.txt", b"x", "text/plain"))).json()
        async with db.transaction() as session:  # as retention does: no records service
            await session.execute(text("DELETE FROM c_people WHERE id = :id"), {"id": bulk["id"]})
            await registry.change_schema(
                session,
                name="people",
                change=SchemaChange("drop_field", field=FieldSpec(name="docs", type="file")),
                confirm=True,
                actor=Actor.system(),
            )
            await registry.delete_collection(
                session, name="others", confirm=True, actor=Actor.system()
            )
            await session.execute(
                update(FileRow).values(attached_at=datetime.now(UTC) - timedelta(hours=2))
            )
        settings.files.orphan_grace_seconds = 3600
        assert await jobs.sweep(db, fa.storage, settings) == 3
        assert with_docs["docs"]
        assert [row.id for row in await fa.rows()] == [kept["avatar"]]
        assert await fa.objects() == [f"files/{kept['avatar']}"]


def test_objects_on_s3_travel_in_backups(s3: SeaweedS3, bucket: str, tmp_path: Path) -> None:
    """With the files on S3, a full backup fetches every object into its sealed files
    archive (counted, unreadable in the backup store, checked by verify); a restore writes
    them into a directory with the local backend's layout."""
    from tests.backupkit import KNOWN_VALUE, SECRET, backed_up_with_files, cli_json

    prefix = f"backed-{uuid.uuid4().hex[:8]}/"

    async def upload() -> None:
        store = S3Storage(FileSettings(**s3_settings(s3, bucket, prefix)))
        await store.put("files/ab/one", f"{KNOWN_VALUE} on s3".encode())
        await store.put("files/two", bytes(range(256)) * 4000)  # 1 MB: more than one read
        await store.close()

    asyncio.run(upload())  # the backup commands run their own event loop
    db = tmp_path / "live.db"
    sqlite3.connect(db).close()
    env = {
        "GARRISON_DATA_DIR": str(tmp_path / "var"),
        "GARRISON_DATABASE_URL": f"sqlite+aiosqlite:///{db}",
        "GARRISON_SECRET_KEY": SECRET,
        **{
            f"GARRISON_FILES__{name.upper()}": str(value)
            for name, value in s3_settings(s3, bucket, prefix).items()
        },
    }
    made = backed_up_with_files(env, tmp_path / "var" / "backups", 2)

    restored = tmp_path / "restored-files"
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    done = cli_json(
        env, "backup", "restore", made["id"], "--target", target, "--files-to", str(restored)
    )
    assert done["files"] == 2
    assert (restored / "files" / "ab" / "one").read_bytes() == f"{KNOWN_VALUE} on s3".encode()
    assert (restored / "files" / "two").read_bytes() == bytes(range(256)) * 4000
