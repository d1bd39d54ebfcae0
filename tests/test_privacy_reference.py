"""The development reference database: made from an instance (SQLite and MariaDB) with every
personal field faked and relations intact, loaded into a development instance, refused by a
production one."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from garrison import models  # noqa: F401 - every domain's tables on the metadata
from garrison.db.engine import Database
from garrison.privacy import reference
from tests import services
from tests.authkit import auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import garrison

RULES = {"create": "@auth.id != null", "list": "owner = @auth.id", "view": "owner = @auth.id"}
PEOPLE: dict[str, Any] = {
    "name": "people",
    "fields": [
        {"name": "full_name", "type": "text"},
        {"name": "mail", "type": "email"},
        {"name": "age", "type": "integer"},
    ],
    "rules": RULES,
}
ORDERS: dict[str, Any] = {
    "name": "orders",
    "fields": [
        {"name": "person", "type": "relation", "collection": "people"},
        {"name": "item", "type": "text"},
    ],
    "rules": RULES,
}


@pytest.mark.slow
async def test_reference_create_and_load(tmp_path: Path, fresh_database_url: str) -> None:
    settings = make_settings(tmp_path / "live", database_url=fresh_database_url)
    tag = uuid.uuid4().hex[:8]
    email, name = f"carol.{tag}@example.com", f"Carol Danvers {tag}"
    async with auth_app(settings) as kit:
        admin = bearer(await kit.token(role="admin"))
        for spec in (PEOPLE, ORDERS):
            assert (
                await kit.client.post("/api/v1/collections", json=spec, headers=admin)
            ).status_code == 201
        policy = {"erasure": {"action": "anonymize", "fields": {"full_name": None}}}
        assert (
            await kit.client.put("/api/v1/privacy/policies/people", json=policy, headers=admin)
        ).is_success
        await kit.user(email=email)
        carol = bearer((await kit.login(email))["access_token"])
        person = await kit.client.post(
            "/api/v1/collections/people/records",
            json={"full_name": name, "mail": email, "age": 40},
            headers=carol,
        )
        assert person.status_code == 201, person.text
        order = await kit.client.post(
            "/api/v1/collections/orders/records",
            json={"person": person.json()["id"], "item": "cape"},
            headers=carol,
        )
        assert order.status_code == 201, order.text
        carol_id = person.json()["owner"]

    out = tmp_path / "reference.db"
    counts = await reference.create(settings, out=reference.check_out(out))
    assert counts["auth_users"] == 2
    assert (counts["c_people"], counts["c_orders"]) == (1, 1)
    with sqlite3.connect(out) as conn:
        dumped = "\n".join(conn.iterdump())
        person_row = conn.execute("SELECT owner, full_name, mail, age FROM c_people").fetchone()
        order_row = conn.execute("SELECT person, item FROM c_orders").fetchone()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert email not in dumped
    assert name not in dumped
    assert person_row[0] == carol_id  # ids kept: owners and relations still line up
    assert person_row[1].startswith("full_name-")
    assert person_row[2].endswith("@example.invalid")
    assert person_row[3] == 40
    assert order_row == (
        person.json()["id"],
        "item-" + reference._digest("c_orders", "item", "cape")[:10],
    )
    assert "audit_entries" in tables  # the schema is whole; the audit log itself is not copied
    with sqlite3.connect(out) as conn:
        assert conn.execute("SELECT COUNT(*) FROM audit_entries").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM auth_api_keys").fetchone()[0] == 0

    dev = make_settings(tmp_path / "dev")
    loaded = await reference.load(dev, path=reference.check_in(out))
    assert loaded["c_orders"] == 1
    db = Database(dev.db_url, dev.db)
    try:
        async with db.read_session() as session:
            users = (await session.execute(text("SELECT email FROM auth_users"))).scalars().all()
            people = (await session.execute(text("SELECT owner FROM c_people"))).scalars().all()
    finally:
        await db.dispose()
    assert len(users) == 2
    assert all(u.endswith("@example.invalid") for u in users)
    assert people == [carol_id]
    async with auth_app(dev) as kit:  # the documented password signs in on the copy
        fake_email = f"user-{reference._digest('user', carol_id)[:12]}@example.invalid"
        await kit.login(fake_email, reference.REFERENCE_PASSWORD)


def test_production_refuses_to_load(tmp_path: Path) -> None:
    made = tmp_path / "ref.db"
    made.write_bytes(b"")
    env = services.production_env(
        "mysql+asyncmy://root@127.0.0.1:3306/none",
        "redis://127.0.0.1:6379/0",
        str(tmp_path),
        "Zq8mW3nR6tY1uI4oP7aS0dF2gH5jK9lX",
    )
    refused = garrison("reference", "load", str(made), env=env)
    assert refused.returncode == 2
    assert "production" in refused.stderr
    assert "Traceback" not in refused.stderr
    dev = {"GARRISON_DATA_DIR": str(tmp_path / "var")}
    not_reference = garrison("reference", "load", str(made), env=dev)
    assert not_reference.returncode == 2
    assert "not a reference database" in not_reference.stderr
