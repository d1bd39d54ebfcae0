"""Retention (SQLite and MariaDB): per-collection ``{field, days}`` and system data (expired
sessions, export archives past their time), reported, dry-run, applied in batches and
audited; and ``garrison privacy retention status --json``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select, text, update

from garrison.audit.models import AuditEntry
from garrison.auth.models import RefreshToken
from garrison.db.types import utcnow
from garrison.privacy import retention
from garrison.privacy.export import archive_path
from garrison.privacy.models import PrivacyJob
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings
from tests.helpers import garrison

LOGS: dict[str, Any] = {
    "name": "visits",
    "fields": [{"name": "page", "type": "text"}],
    "rules": {"create": "@auth.id != null"},
}


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[AuthApp]:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    settings.privacy.retention_batch_size = 2  # several batches for five records
    async with auth_app(settings) as app:
        yield app


def by_name(items: list[retention.Item]) -> dict[str, retention.Item]:
    return {item.name: item for item in items}


async def test_retention_reports_dry_runs_and_applies(kit: AuthApp) -> None:
    client, db, settings = kit.client, kit.runtime.db, kit.settings
    admin = bearer(await kit.token(role="admin"))
    assert (await client.post("/api/v1/collections", json=LOGS, headers=admin)).status_code == 201
    policy = {"retention": {"field": "created_at", "days": 7}}
    assert (
        await client.put("/api/v1/privacy/policies/visits", json=policy, headers=admin)
    ).is_success
    user = bearer(await kit.token())
    for n in range(7):
        made = await client.post(
            "/api/v1/collections/visits/records", json={"page": f"/p{n}"}, headers=user
        )
        assert made.status_code == 201
    old = utcnow() - timedelta(days=30)
    async with db.transaction() as session:
        ids = [
            r for (r,) in (await session.execute(text("SELECT id FROM c_visits ORDER BY id"))).all()
        ]
        for record_id in ids[:5]:
            await session.execute(
                text("UPDATE c_visits SET created_at = :old WHERE id = :id"),
                {"old": old.replace(tzinfo=None), "id": record_id},
            )
        await session.execute(update(RefreshToken).values(expires_at=old, family_expires_at=old))
    started = await client.post("/api/v1/auth/me/export", headers=user)
    job_id = started.json()["id"]
    deadline = time.monotonic() + 20
    while True:
        async with db.read_session() as session:
            job = await session.get(PrivacyJob, job_id)
            if job is not None and job.status == "done":
                break
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)  # a poll interval
    assert job.archive is not None
    archive = archive_path(settings.data_dir, job.archive)
    assert archive.exists()
    async with db.transaction() as session:
        await session.execute(
            update(PrivacyJob).where(PrivacyJob.id == job_id).values(expires_at=old)
        )

    report = by_name(await retention.status(db, settings))
    assert report["collection:visits"].due == 5
    assert report["sessions"].due >= 2  # the two logins' refresh tokens
    assert report["exports"].due == 1
    assert report["audit"].applied_by == "audit purge"

    dry = by_name(await retention.apply(db, settings, dry_run=True))
    assert dry["collection:visits"].deleted == 0
    assert by_name(await retention.status(db, settings))["collection:visits"].due == 5

    done = by_name(await retention.apply(db, settings))
    assert done["collection:visits"].deleted == 5
    assert done["sessions"].deleted == report["sessions"].due
    assert done["exports"].deleted == 1
    assert not archive.exists()
    async with db.read_session() as session:
        left = (await session.execute(text("SELECT COUNT(*) FROM c_visits"))).scalar_one()
        job = await session.get(PrivacyJob, job_id)
        audited = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "privacy.retention.applied")
            )
        ).all()
    assert left == 2
    assert job is not None
    assert job.status == "expired"
    assert len(audited) == 1
    assert '"collection:visits":5' in (audited[0].data or "")
    after = by_name(await retention.status(db, settings))
    assert (after["collection:visits"].due, after["exports"].due, after["sessions"].due) == (
        0,
        0,
        0,
    )
    gone = await client.get(f"/api/v1/privacy/exports/{job_id}", headers=user)
    assert gone.json()["status"] == "expired"
    assert gone.json()["download_url"] is None


def test_retention_status_command(tmp_path: Path) -> None:
    env = {"GARRISON_DATA_DIR": str(tmp_path / "var")}
    assert garrison("migrate", "up", env=env).returncode == 0
    shown = garrison("privacy", "retention", "status", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    names = [item["name"] for item in orjson.loads(shown.stdout)]
    assert names == ["audit", "sessions", "exports", "privacy_jobs"]
    dry = garrison("privacy", "retention", "apply", "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "sessions" in dry.stdout
