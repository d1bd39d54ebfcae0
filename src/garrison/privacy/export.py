"""Subject access exports: a job that writes one ZIP archive (JSON files and a manifest) of
what Garrison holds about a person, downloadable through a signed, expiring link, and
deleted ``privacy.export_keep_seconds`` after it was made.

Contents: ``profile.json`` (account, roles, permissions), ``sessions.json`` and
``api_keys.json`` (metadata only, never a secret or a hash), ``records/<collection>.json``
(every record they own), ``related/<collection>.json`` (records of others that name them in
a relation field to ``users``), ``audit.json`` (the entries about them, opened), ``files.json``
(every file they uploaded) with the files under ``files/<id>/<name>`` (up to
``files.export_max_bytes``) and
``manifest.json`` (what each file holds, with its SHA-256).

A job is run by whoever claims it (``claim``: a conditional UPDATE): first the request that
made it, right after its response; should that process die, the worker's ``recover`` claims
it again once its lease (``privacy.export_lease_seconds``, renewed at every step) has passed,
up to ``privacy.export_max_attempts`` times. Each write names its attempt, so a runner that
lost its claim changes nothing; the archive is written aside and renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import personal
from garrison.audit import service as audit_service
from garrison.audit.schemas import entry_dict
from garrison.auth import subject as auth_subject
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.errors import NotFound
from garrison.events import Actor, Event, emit
from garrison.files import service as files_service
from garrison.files.storage import open_storage
from garrison.log import get_logger
from garrison.privacy.models import PrivacyJob
from garrison.records import owned
from garrison.settings import Settings

log = get_logger("garrison.privacy")
_LINK_LABEL = b"garrison/privacy/export-link/v1"


def archive_path(data_dir: Path, name: str) -> Path:
    return data_dir / "privacy" / "exports" / name


def _link_key(settings: Settings) -> bytes:
    assert settings.secret_key is not None
    return hmac.new(settings.secret_key.get_secret_value().encode(), _LINK_LABEL, "sha256").digest()


def sign(settings: Settings, job_id: str, expires: int) -> str:
    return hmac.new(_link_key(settings), f"{job_id}.{expires}".encode(), "sha256").hexdigest()


def download_query(settings: Settings, job_id: str) -> str:
    expires = int(time.time()) + settings.privacy.export_link_seconds
    return f"expires={expires}&signature={sign(settings, job_id, expires)}"


def link_ok(settings: Settings, job_id: str, expires: int, signature: str) -> bool:
    return expires >= time.time() and hmac.compare_digest(
        sign(settings, job_id, expires), signature
    )


async def request_export(session: AsyncSession, *, user_id: str, actor: Actor) -> PrivacyJob:
    if not await auth_subject.user_exists(session, user_id=user_id):
        raise NotFound(f"no user {user_id!r}")
    job = PrivacyJob(
        id=str(uuid.uuid4()),
        kind="export",
        subject_id=user_id,
        requested_by=f"{actor.kind}:{actor.id}" if actor.id else actor.kind,
        status="pending",
        progress=0,
        created_at=utcnow(),
    )
    session.add(job)
    await session.flush()
    await emit(
        session,
        Event(
            action="privacy.export.requested",
            actor=actor,
            target_type="privacy_job",
            target_id=job.id,
        ),
    )
    return job


async def get_job(session: AsyncSession, *, job_id: str, kind: str) -> PrivacyJob:
    job = await session.get(PrivacyJob, job_id)
    if job is None or job.kind != kind:
        raise NotFound(f"no {kind} {job_id!r}")
    return job


class Superseded(Exception):
    """This runner's claim on the job has passed to another one (its lease ran out)."""


async def claim(db: Database, settings: Settings, *, job_id: str) -> int | None:
    """Take the export job ``job_id`` if it is pending, or running under a lease that has
    passed (its runner died), and fewer than ``export_max_attempts`` claims were made;
    returns this claim's attempt number (which fences every later write), else None."""
    config = settings.privacy

    async def work(session: AsyncSession) -> int | None:
        now = utcnow()
        result = await session.execute(
            update(PrivacyJob)
            .where(
                PrivacyJob.id == job_id,
                PrivacyJob.kind == "export",
                PrivacyJob.attempts < config.export_max_attempts,
                (PrivacyJob.status == "pending")
                | (
                    (PrivacyJob.status == "running")
                    & (PrivacyJob.lease_until.is_(None) | (PrivacyJob.lease_until < now))
                ),
            )
            .values(
                status="running",
                progress=5,
                attempts=PrivacyJob.attempts + 1,
                lease_until=now + timedelta(seconds=config.export_lease_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if not getattr(result, "rowcount", 0):
            return None
        attempt = await session.scalar(select(PrivacyJob.attempts).where(PrivacyJob.id == job_id))
        return None if attempt is None else int(attempt)

    return await transact(db, work)


async def advance(
    db: Database, settings: Settings, job_id: str, attempt: int, **values: Any
) -> None:
    """Record a step of attempt ``attempt`` and renew its lease; ``Superseded`` when the
    job is no longer this attempt's."""
    lease = timedelta(seconds=settings.privacy.export_lease_seconds)

    async def work(session: AsyncSession) -> int:
        result = await session.execute(
            update(PrivacyJob)
            .where(
                PrivacyJob.id == job_id,
                PrivacyJob.attempts == attempt,
                PrivacyJob.status == "running",
            )
            .values({"lease_until": utcnow() + lease, **values})
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))

    if not await transact(db, work):
        raise Superseded(job_id)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


Progress = Callable[[int], Awaitable[None]]


async def _collect(
    db: Database, settings: Settings, user_id: str, progress: Progress
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    async with db.read_session() as session:
        files["profile.json"] = _json(await auth_subject.profile_of(session, user_id=user_id))
        files["sessions.json"] = _json(await auth_subject.sessions_of(session, user_id=user_id))
        files["api_keys.json"] = _json(await auth_subject.api_keys_of(session, user_id=user_id))
        collections = await owned.collections(session)
    await progress(20)
    for n, collection in enumerate(collections):
        async with db.read_session() as session:
            records = await owned.owned(session, collection=collection, owner=user_id)
            linked = await owned.related(session, collection=collection, user=user_id)
        if records:
            files[f"records/{collection.name}.json"] = _json(records)
        if linked:
            files[f"related/{collection.name}.json"] = _json(linked)
        await progress(20 + int(50 * (n + 1) / max(1, len(collections))))
    entries: list[dict[str, Any]] = []
    after, batch = 0, settings.audit.export_batch_size
    while True:
        async with db.read_session() as session:
            found = await audit_service.about_subject(
                session, subject_id=user_id, limit=batch, after=after
            )
            opened = await personal.open_rows(session, found)
        if not found:
            break
        entries.extend(entry_dict(row) for row in opened)
        after = int(found[-1].id)
    files["audit.json"] = _json(entries)
    files |= await _uploads(db, settings, user_id)
    return files


async def _uploads(db: Database, settings: Settings, user_id: str) -> dict[str, bytes]:
    """``files.json`` (every file the user uploaded) and the files themselves under
    ``files/<id>/<name>`` while they fit in ``files.export_max_bytes``."""
    async with db.read_session() as session:
        rows = await files_service.files_of_owner(session, owner=user_id)
    if not rows:
        return {}
    found: dict[str, bytes] = {}
    listed: list[dict[str, Any]] = []
    budget = settings.files.export_max_bytes
    storage = open_storage(settings)
    try:
        for row in rows:
            entry = files_service.describe(row) | {
                "collection": row.collection,
                "record_id": row.record_id,
                "field": row.field,
                "included": row.size <= budget,
            }
            if entry["included"]:
                found[f"files/{row.id}/{row.name}"] = await storage.read_all(row.storage_key)
                budget -= row.size
            listed.append(entry)
    finally:
        await storage.close()
    found["files.json"] = _json(listed)
    return found


async def run_export(db: Database, settings: Settings, *, job_id: str) -> bool:
    """Build the archive of export job ``job_id`` if this call can claim it (the request
    schedules this after its transaction commits; the worker's ``recover`` runs it again
    for a job whose runner died). Failures are recorded on the job, never raised; returns
    whether this call ran the job."""
    attempt = await claim(db, settings, job_id=job_id)
    if attempt is None:
        return False
    async with db.read_session() as session:
        job = await session.get(PrivacyJob, job_id)
        assert job is not None  # just claimed; only retention deletes jobs, finished ones
        user_id = job.subject_id

    async def progress(percent: int) -> None:
        await advance(db, settings, job_id, attempt, progress=percent)

    name = f"{job_id}.zip"
    path = archive_path(settings.data_dir, name)
    partial = path.with_name(f"{name}.{attempt}.partial")
    try:
        files = await _collect(db, settings, user_id, progress)
        manifest = {
            "subject_id": user_id,
            "generated_at": utcnow().isoformat(),
            "format": "garrison-subject-export/1",
            "files": {
                name: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
                for name, body in sorted(files.items())
            },
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed into place: an archive that is there is whole, whatever
        # happened to the process that wrote it.
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", _json(manifest))
            for file_name, body in sorted(files.items()):
                archive.writestr(file_name, body)
        size = partial.stat().st_size
        partial.replace(path)
        now = utcnow()
        await advance(
            db,
            settings,
            job_id,
            attempt,
            status="done",
            progress=100,
            archive=name,
            archive_bytes=size,
            report={"files": len(files) + 1},
            finished_at=now,
            expires_at=now + timedelta(seconds=settings.privacy.export_keep_seconds),
            lease_until=None,
        )
    except Superseded:
        partial.unlink(missing_ok=True)
        async with db.read_session() as session:
            gone = await session.get(PrivacyJob, job_id) is None
        if gone:  # erased meanwhile: nothing may keep what was written for it
            path.unlink(missing_ok=True)
        log.warning("privacy.export.superseded", job_id=job_id, attempt=attempt)
    except Exception as exc:
        partial.unlink(missing_ok=True)
        log.error("privacy.export.failed", job_id=job_id, error=type(exc).__name__)
        with contextlib.suppress(Superseded):
            await advance(
                db,
                settings,
                job_id,
                attempt,
                status="failed",
                error=type(exc).__name__,
                finished_at=utcnow(),
                lease_until=None,
            )
    return True


# A pending job is the request's to start (right after its response); one still pending
# this long after it was made lost its runner with its process.
PENDING_GRACE = timedelta(seconds=15)


async def recover(db: Database, settings: Settings, *, limit: int = 10) -> dict[str, int]:
    """The worker's job: run export jobs whose runner died (pending past the grace time, or
    running past their lease), and mark failed the ones that used up their attempts."""
    config = settings.privacy
    now = utcnow()
    abandoned = (PrivacyJob.status == "pending") & (PrivacyJob.created_at < now - PENDING_GRACE)
    abandoned |= (PrivacyJob.status == "running") & (
        PrivacyJob.lease_until.is_(None) | (PrivacyJob.lease_until < now)
    )
    async with db.read_session() as session:
        rows = (
            await session.execute(
                select(PrivacyJob.id, PrivacyJob.attempts)
                .where(PrivacyJob.kind == "export", abandoned)
                .order_by(PrivacyJob.created_at)
                .limit(limit)
            )
        ).all()
    exhausted = [row.id for row in rows if row.attempts >= config.export_max_attempts]
    if exhausted:

        async def give_up(session: AsyncSession) -> None:
            await session.execute(
                update(PrivacyJob)
                .where(
                    PrivacyJob.id.in_(exhausted),
                    PrivacyJob.kind == "export",
                    abandoned,
                    PrivacyJob.attempts >= config.export_max_attempts,
                )
                .values(
                    status="failed",
                    error=f"gave up after {config.export_max_attempts} attempts",
                    finished_at=utcnow(),
                    lease_until=None,
                )
                .execution_options(synchronize_session=False)
            )

        await transact(db, give_up)
    ran = 0
    for row in rows:
        if row.attempts < config.export_max_attempts:
            ran += await run_export(db, settings, job_id=row.id)
    if ran or exhausted:
        log.info("privacy.export.recovered", ran=ran, failed=len(exhausted))
    return {"ran": ran, "failed": len(exhausted)}
