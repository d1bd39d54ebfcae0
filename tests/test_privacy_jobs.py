"""Export jobs survive the death of their runner (SQLite and MariaDB): a job left pending by
a process that died after its request committed, or left running under a lease that ran
out, is claimed again by the worker's ``privacy.exports`` job and finished; a runner that
lost its claim changes nothing; a job that used up its attempts is marked failed."""

from __future__ import annotations

import asyncio
import io
import zipfile
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import update

from garrison.db.types import utcnow
from garrison.events import Actor
from garrison.privacy import export
from garrison.privacy.models import PrivacyJob
from garrison.worker import standard_jobs
from tests.authkit import AuthApp, auth_app, bearer
from tests.conftest import make_settings


@pytest.fixture
async def kit(tmp_path: Path, fresh_database_url: str) -> AsyncIterator[AuthApp]:
    settings = make_settings(tmp_path, database_url=fresh_database_url)
    async with auth_app(settings) as app:
        yield app


async def _user(kit: AuthApp, email: str) -> str:
    """A new user's id."""
    login = await kit.login(await kit.user(email=email))
    me = await kit.client.get("/api/v1/auth/me", headers=bearer(login["access_token"]))
    user_id: str = me.json()["id"]
    return user_id


async def _job(kit: AuthApp, user_id: str) -> str:
    """An export job as a request leaves it when its process dies right after the commit:
    pending, with no runner."""
    async with kit.runtime.db.transaction() as session:
        job = await export.request_export(session, user_id=user_id, actor=Actor.system())
        return job.id


async def _set(kit: AuthApp, job_id: str, **values: Any) -> None:
    async with kit.runtime.db.transaction() as session:
        await session.execute(update(PrivacyJob).where(PrivacyJob.id == job_id).values(**values))


async def _get(kit: AuthApp, job_id: str) -> PrivacyJob:
    async with kit.runtime.db.read_session() as session:
        job = await session.get(PrivacyJob, job_id)
        assert job is not None
        return job


async def test_the_worker_finishes_exports_whose_runner_died(kit: AuthApp) -> None:
    assert "privacy.exports" in {job.name for job in standard_jobs(kit.runtime.db, kit.settings)}
    email = "dora@example.com"
    user_id = await _user(kit, email)
    settings = kit.settings

    pending = await _job(kit, user_id)
    # Just made: still the request's to run, not the worker's.
    assert await export.recover(kit.runtime.db, settings) == {"ran": 0, "failed": 0}
    assert (await _get(kit, pending)).status == "pending"
    await _set(kit, pending, created_at=utcnow() - timedelta(minutes=5))

    stale = await _job(kit, user_id)  # a runner claimed it, then its process died
    await _set(
        kit, stale, status="running", attempts=1, lease_until=utcnow() - timedelta(seconds=1)
    )
    held = await _job(kit, user_id)  # a runner holds it now: left alone
    await _set(kit, held, status="running", attempts=1, lease_until=utcnow() + timedelta(hours=1))
    spent = await _job(kit, user_id)  # died on every attempt
    await _set(
        kit,
        spent,
        status="running",
        attempts=settings.privacy.export_max_attempts,
        lease_until=utcnow() - timedelta(seconds=1),
    )

    assert await export.recover(kit.runtime.db, settings) == {"ran": 2, "failed": 1}
    for job_id, attempts in ((pending, 1), (stale, 2)):
        job = await _get(kit, job_id)
        assert (job.status, job.progress, job.attempts) == ("done", 100, attempts)
        assert job.lease_until is None
        path = export.archive_path(settings.data_dir, f"{job_id}.zip")
        profile = orjson.loads(zipfile.ZipFile(path).read("profile.json"))
        assert profile["email"] == email
        assert not list(path.parent.glob("*.partial"))
    assert (await _get(kit, held)).status == "running"
    failed = await _get(kit, spent)
    assert failed.status == "failed"
    assert failed.error == f"gave up after {settings.privacy.export_max_attempts} attempts"

    # The archive the worker made downloads like any other.
    admin = bearer(await kit.token(role="admin"))
    status = (await kit.client.get(f"/api/v1/privacy/exports/{stale}", headers=admin)).json()
    archive = await kit.client.get(status["download_url"])
    assert archive.status_code == 200
    assert "manifest.json" in zipfile.ZipFile(io.BytesIO(archive.content)).namelist()


async def test_one_claim_wins_and_a_superseded_runner_changes_nothing(kit: AuthApp) -> None:
    user_id = await _user(kit, "eve@example.com")
    db, settings = kit.runtime.db, kit.settings
    job_id = await _job(kit, user_id)
    claims = await asyncio.gather(*(export.claim(db, settings, job_id=job_id) for _ in range(4)))
    assert sorted(claims, key=lambda c: c or 0) == [None, None, None, 1]
    assert (await _get(kit, job_id)).lease_until is not None

    await _set(kit, job_id, lease_until=utcnow() - timedelta(seconds=1))  # runner 1 stalled
    assert await export.claim(db, settings, job_id=job_id) == 2
    with pytest.raises(export.Superseded):
        await export.advance(db, settings, job_id, 1, progress=50)
    assert (await _get(kit, job_id)).progress == 5  # runner 2's first step stands

    await _set(kit, job_id, lease_until=utcnow() - timedelta(seconds=1))
    assert await export.run_export(db, settings, job_id=job_id)  # a third runner finishes
    done = await _get(kit, job_id)
    assert (done.status, done.attempts) == ("done", 3)
    assert not await export.run_export(db, settings, job_id=job_id)  # done: nobody claims it
