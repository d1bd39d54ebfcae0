"""Privacy end to end (SQLite and MariaDB, each test on a database of its own): a user with
records and audit history exports a complete archive through a signed link, is erased per
the collections' policies, loses every credential at once, and afterwards a dump of the
whole database holds neither their e-mail nor their name while the audit chain verifies."""

from __future__ import annotations

import asyncio
import io
import sqlite3
import subprocess
import time
import uuid
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy.engine import make_url

from garrison.audit import retention
from garrison.audit.sealer import seal_pending
from garrison.audit.verify import verify_chain
from garrison.events import Actor
from garrison.privacy import erasure
from garrison.records import owned
from garrison.settings import Settings
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings

COLLECTIONS: list[dict[str, Any]] = [
    {
        "name": "profiles",
        "fields": [
            {"name": "full_name", "type": "text"},
            {"name": "contact", "type": "email"},
            {"name": "city", "type": "text"},
        ],
        "rules": {
            "create": "@auth.id != null",
            "update": "owner = @auth.id",
            "view": "owner = @auth.id",
            "list": "owner = @auth.id",
        },
    },
    {
        "name": "notes",
        "fields": [{"name": "body", "type": "text"}],
        "rules": {
            "create": "@auth.id != null",
            "update": "owner = @auth.id",
            "view": "owner = @auth.id",
            "list": "owner = @auth.id",
        },
    },
    {
        "name": "invoices",
        "fields": [{"name": "amount", "type": "number"}],
        "rules": {
            "create": "@auth.id != null",
            "view": "owner = @auth.id",
            "list": "owner = @auth.id",
        },
    },
]


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[AuthApp]:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    async with auth_app(settings) as app:
        yield app


async def wait_for(check: Any, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.02)  # a poll interval, not a wait for an expected duration
    return result


async def dump(settings: Settings) -> str:
    """The whole database as SQL text, the way a backup taken now would hold it. Off the
    event loop: the app under test shares it, and a transaction of its that is open when
    the dump starts must be able to finish."""
    return await asyncio.to_thread(_dump, settings)


def _dump(settings: Settings) -> str:
    url = make_url(settings.db_url)
    if url.get_backend_name() == "sqlite":
        with sqlite3.connect(str(url.database)) as conn:
            return "\n".join(conn.iterdump())
    args = ["mariadb-dump", "-h", url.host or "127.0.0.1", "-P", str(url.port or 3306)]
    args += [
        "-u",
        url.username or "root",
        "--single-transaction",
        "--skip-extended-insert",
        "--hex-blob",
        str(url.database),
    ]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout


class World:
    def __init__(
        self,
        kit: AuthApp,
        admin: dict[str, str],
        alice: dict[str, str],
        alice_id: str,
        email: str,
        name: str,
        key: str,
    ) -> None:
        self.kit, self.admin, self.alice, self.alice_id = kit, admin, alice, alice_id
        self.email, self.name, self.key = email, name, key


@pytest.fixture
async def world(kit: AuthApp) -> World:
    admin = bearer(await kit.token(role="admin"))
    for spec in COLLECTIONS:
        assert (
            await kit.client.post("/api/v1/collections", json=spec, headers=admin)
        ).status_code == 201
    policies = {
        "profiles": {
            "erasure": {"action": "anonymize", "fields": {"full_name": None, "contact": None}}
        },
        "invoices": {"erasure": {"action": "retain", "legal_basis": "tax law: 10 years"}},
    }
    for name, body in policies.items():
        response = await kit.client.put(
            f"/api/v1/privacy/policies/{name}", json=body, headers=admin
        )
        assert response.status_code == 200, response.text
    tag = uuid.uuid4().hex[:8]
    email, name = f"alice.{tag}@example.com", f"Alice Liddell {tag}"
    await kit.user(email=email)
    login = await kit.login(email)
    alice = bearer(login["access_token"])
    alice_id = (await kit.client.get("/api/v1/auth/me", headers=alice)).json()["id"]
    made = await kit.client.post(
        "/api/v1/collections/profiles/records",
        json={"full_name": name, "contact": email, "city": "Oxford"},
        headers=alice,
    )
    assert made.status_code == 201, made.text
    changed = await kit.client.patch(
        f"/api/v1/collections/profiles/records/{made.json()['id']}",
        json={"full_name": name + " II"},
        headers=alice,
    )
    assert changed.status_code == 200, changed.text
    for body in ("first note", "second note"):
        assert (
            await kit.client.post(
                "/api/v1/collections/notes/records", json={"body": body}, headers=alice
            )
        ).status_code == 201
    assert (
        await kit.client.post(
            "/api/v1/collections/invoices/records", json={"amount": 12.5}, headers=alice
        )
    ).status_code == 201
    key = await kit.client.post(
        "/api/v1/api-keys", json={"name": "laptop", "scopes": ["records:read"]}, headers=alice
    )
    assert key.status_code == 201
    return World(kit, admin, alice, alice_id, email, name, key.json()["key"])


async def test_self_export_is_a_complete_archive_behind_a_signed_link(world: World) -> None:
    client = world.kit.client
    started = await client.post("/api/v1/auth/me/export", headers=world.alice)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]

    async def done() -> dict[str, Any] | None:
        body: dict[str, Any] = (
            await client.get(f"/api/v1/privacy/exports/{job_id}", headers=world.alice)
        ).json()
        return body if body["status"] == "done" else None

    status = await wait_for(done)
    assert status["progress"] == 100
    url = status["download_url"]
    archive = await client.get(url)  # the signed link needs no credential
    assert archive.status_code == 200
    assert archive.headers["content-type"] == "application/zip"
    files = zipfile.ZipFile(io.BytesIO(archive.content))
    names = set(files.namelist())
    assert {
        "manifest.json",
        "profile.json",
        "sessions.json",
        "api_keys.json",
        "audit.json",
    } <= names
    assert {"records/profiles.json", "records/notes.json", "records/invoices.json"} <= names
    manifest = orjson.loads(files.read("manifest.json"))
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert orjson.loads(files.read("profile.json"))["email"] == world.email
    assert [n["body"] for n in orjson.loads(files.read("records/notes.json"))] == [
        "first note",
        "second note",
    ]
    assert orjson.loads(files.read("api_keys.json"))[0]["name"] == "laptop"
    audit = orjson.loads(files.read("audit.json"))
    actions = [e["action"] for e in audit]
    assert "auth.login.succeeded" in actions
    assert "record.updated" in actions
    updated = next(e for e in audit if e["action"] == "record.updated")
    assert updated["changes"]["full_name"]["after"] == world.name + " II"  # opened for them
    everything = b"".join(files.read(n) for n in names)
    assert world.key.encode() not in everything  # metadata only, never a secret
    assert b"argon2" not in everything

    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")
    assert (await client.get(tampered)).status_code == 403
    bob = bearer(await world.kit.token())
    assert (await client.get(f"/api/v1/privacy/exports/{job_id}", headers=bob)).status_code == 404
    other = await client.post(
        "/api/v1/privacy/exports", json={"user_id": world.alice_id}, headers=bob
    )
    assert other.status_code == 403
    assert (
        await client.get(f"/api/v1/privacy/exports/{job_id}", headers=world.admin)
    ).status_code == 200


async def test_erasure_dry_run_then_erase_leaves_no_trace(world: World, tmp_path: Path) -> None:
    kit, client = world.kit, world.kit.client
    settings = kit.settings
    db = kit.runtime.db
    await seal_pending(db, batch_size=500)
    before = await dump(settings)
    assert world.email in before  # the check below could fail: the data was there
    assert world.name in before

    unknown = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": str(uuid.uuid4())}, headers=world.admin
    )
    assert unknown.status_code == 404
    forbidden = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": world.alice_id}, headers=world.alice
    )
    assert forbidden.status_code == 403

    preview = await client.post(
        "/api/v1/privacy/erasures",
        json={"user_id": world.alice_id, "dry_run": True},
        headers=world.admin,
    )
    assert preview.status_code == 200, preview.text
    plan = preview.json()["collections"]
    assert plan["profiles"] == {
        "records": 1,
        "action": "anonymize",
        "fields": ["contact", "full_name"],
    }
    assert plan["notes"] == {"records": 2, "action": "delete"}
    assert plan["invoices"] == {
        "records": 1,
        "action": "retain",
        "legal_basis": "tax law: 10 years",
    }
    assert (
        await client.get("/api/v1/auth/me", headers=world.alice)
    ).status_code == 200  # nothing changed

    async with db.transaction() as session:  # an erasure of alice already under way
        await erasure._claim(session, user_id=world.alice_id, actor=Actor.system())
    busy = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": world.alice_id}, headers=world.admin
    )
    assert busy.status_code == 409
    assert (await client.get("/api/v1/auth/me", headers=world.alice)).status_code == 200
    async with db.transaction() as session:
        from sqlalchemy import update

        from garrison.privacy.models import PrivacyJob

        await session.execute(update(PrivacyJob).values(active=None, status="failed"))

    erased = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": world.alice_id}, headers=world.admin
    )
    assert erased.status_code == 201, erased.text
    report = erased.json()
    assert report["collections"]["notes"]["done"] == 2
    assert report["credentials"]["api_keys"] == 1
    assert report["audit_keys_destroyed"] == 1
    assert (await client.get("/api/v1/auth/me", headers=world.alice)).status_code == 401
    assert (
        await client.get("/api/v1/collections/notes/records", headers={"X-API-Key": world.key})
    ).status_code == 401
    again = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": world.alice_id}, headers=world.admin
    )
    assert again.status_code == 404

    await seal_pending(db, batch_size=500)
    async with db.read_session() as session:
        report_ok = await verify_chain(session, checkpoint_key=retention.signing_key(settings))
    assert report_ok.ok, report_ok.broken
    assert report_ok.checked > 10
    after = await dump(settings)
    assert world.email not in after
    assert world.name not in after
    assert world.email.split("@")[0] not in after
    async with db.read_session() as session:  # retained under its legal basis; the rest went
        by_name = {c.name: c for c in await owned.collections(session)}
        kept = {
            n: await owned.count_owned(session, collection=c, owner=world.alice_id)
            for n, c in by_name.items()
        }
    assert kept == {"invoices": 1, "notes": 0, "profiles": 0}

    entries = (
        await client.get(
            "/api/v1/audit", params={"actor": f"user:{world.alice_id}"}, headers=world.admin
        )
    ).json()["items"]
    assert entries
    assert all(e["erased"] and e["ip"] is None and e["changes"] is None for e in entries)
    erasures = (
        await client.get("/api/v1/audit", params={"action": "privacy.erasure"}, headers=world.admin)
    ).json()["items"]
    assert [e["data"]["collections"]["notes"] for e in erasures] == [2]


async def test_policy_input_is_checked(world: World) -> None:
    client, admin = world.kit.client, world.admin
    cases = [
        (
            "profiles",
            {"erasure": {"action": "anonymize", "fields": {"ghost": None}}},
            "#/erasure/fields/ghost",
        ),
        ("profiles", {"erasure": {"action": "retain"}}, "#/erasure"),
        ("profiles", {"retention": {"field": "city", "days": 3}}, "#/retention/field"),
        ("profiles", {"erasure": {"action": "shred"}}, "#/erasure/action"),
    ]
    for name, body, pointer in cases:
        response = await client.put(f"/api/v1/privacy/policies/{name}", json=body, headers=admin)
        assert response.status_code == 422, (body, response.text)
        assert any(e.get("pointer", "").startswith(pointer) for e in response.json()["errors"]), (
            response.text
        )
    assert (
        await client.put("/api/v1/privacy/policies/nope", json={}, headers=admin)
    ).status_code == 404


async def test_records_naming_a_user_are_exported_and_unlinked_by_erasure(kit: AuthApp) -> None:
    """Records of others that name the user in a relation field to ``users`` are in their
    export (``related/``); erasing them applies each field's on_delete, and a ``restrict``
    field that still names them refuses the erasure until it no longer does."""
    client = kit.client
    admin = bearer(await kit.token(role="admin"))
    anyone = {"create": "@auth.id != null", "view": "@auth.id != null", "list": "@auth.id != null"}
    for name, field, on_delete in (
        ("tasks", "assignee", "set_null"),
        ("reviews", "reviewer", "cascade"),
        ("contracts", "signer", "restrict"),
    ):
        spec = {
            "name": name,
            "fields": [
                {"name": "title", "type": "text"},
                {"name": field, "type": "relation", "collection": "users", "on_delete": on_delete},
            ],
            "rules": anyone | {"delete": "@auth.id != null"},
        }
        made = await client.post("/api/v1/collections", json=spec, headers=admin)
        assert made.status_code == 201, made.text
    email = f"carol.{uuid.uuid4().hex[:8]}@example.com"
    carol = bearer((await kit.login(await kit.user(email=email)))["access_token"])
    carol_id = (await client.get("/api/v1/auth/me", headers=carol)).json()["id"]
    ids: dict[str, str] = {}
    for name, field in (("tasks", "assignee"), ("reviews", "reviewer"), ("contracts", "signer")):
        made = await client.post(
            f"/api/v1/collections/{name}/records",
            json={"title": f"{name} for carol", field: carol_id},
            headers=admin,  # someone else's record that names carol
        )
        assert made.status_code == 201, made.text
        ids[name] = made.json()["id"]

    started = await client.post("/api/v1/auth/me/export", headers=carol)
    assert started.status_code == 202, started.text

    async def done() -> dict[str, Any] | None:
        url = f"/api/v1/privacy/exports/{started.json()['id']}"
        body: dict[str, Any] = (await client.get(url, headers=carol)).json()
        return body if body["status"] == "done" else None

    archive = zipfile.ZipFile(
        io.BytesIO((await client.get((await wait_for(done))["download_url"])).content)
    )
    for name in ("tasks", "reviews", "contracts"):
        related = orjson.loads(archive.read(f"related/{name}.json"))
        assert [r["id"] for r in related] == [ids[name]]
    assert not any(n.startswith("records/") for n in archive.namelist())  # she owns none

    preview = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": carol_id, "dry_run": True}, headers=admin
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["related"] == {
        "tasks": {"assignee": {"records": 1, "on_delete": "set_null"}},
        "reviews": {"reviewer": {"records": 1, "on_delete": "cascade"}},
        "contracts": {"signer": {"records": 1, "on_delete": "restrict"}},
    }
    assert preview.json()["blocked"] == ["contracts.signer"]
    refused = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": carol_id}, headers=admin
    )
    assert refused.status_code == 409
    assert "contracts.signer" in refused.json()["detail"]
    assert (await client.get("/api/v1/auth/me", headers=carol)).status_code == 200  # unchanged
    for name in ("tasks", "reviews"):
        kept = await client.get(f"/api/v1/collections/{name}/records/{ids[name]}", headers=admin)
        assert kept.status_code == 200

    gone = await client.delete(
        f"/api/v1/collections/contracts/records/{ids['contracts']}", headers=admin
    )
    assert gone.status_code == 204, gone.text
    erased = await client.post(
        "/api/v1/privacy/erasures", json={"user_id": carol_id}, headers=admin
    )
    assert erased.status_code == 201, erased.text
    assert erased.json()["related"]["tasks"]["assignee"]["done"] == 1
    task = await client.get(f"/api/v1/collections/tasks/records/{ids['tasks']}", headers=admin)
    assert task.status_code == 200
    assert task.json()["assignee"] is None
    review = await client.get(
        f"/api/v1/collections/reviews/records/{ids['reviews']}", headers=admin
    )
    assert review.status_code == 404
    assert (await client.get("/api/v1/auth/me", headers=carol)).status_code == 401
