"""Subject access exports: a job that writes one ZIP archive (JSON files and a manifest) of
what Garrison holds about a person, downloadable through a signed, expiring link, and
deleted ``privacy.export_keep_seconds`` after it was made.

Contents: ``profile.json`` (account, roles, permissions), ``sessions.json`` and
``api_keys.json`` (metadata only, never a secret or a hash), ``records/<collection>.json``
(every record they own), ``audit.json`` (the entries about them, opened), ``files.json``
(every file they uploaded) with the files under ``files/<id>/<name>`` (up to
``files.export_max_bytes``) and
``manifest.json`` (what each file holds, with its SHA-256).
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
import zipfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
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


async def _progress(db: Database, job_id: str, **values: Any) -> None:
    async def work(session: AsyncSession) -> None:
        job = await session.get(PrivacyJob, job_id)
        if job is not None:
            for name, value in values.items():
                setattr(job, name, value)

    await transact(db, work)


def _json(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


async def _collect(
    db: Database, settings: Settings, job_id: str, user_id: str, batch: int
) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    async with db.read_session() as session:
        files["profile.json"] = _json(await auth_subject.profile_of(session, user_id=user_id))
        files["sessions.json"] = _json(await auth_subject.sessions_of(session, user_id=user_id))
        files["api_keys.json"] = _json(await auth_subject.api_keys_of(session, user_id=user_id))
        collections = await owned.collections(session)
    await _progress(db, job_id, progress=20)
    for n, collection in enumerate(collections):
        async with db.read_session() as session:
            records = await owned.owned(session, collection=collection, owner=user_id)
        if records:
            files[f"records/{collection.name}.json"] = _json(records)
        await _progress(db, job_id, progress=20 + int(50 * (n + 1) / max(1, len(collections))))
    entries: list[dict[str, Any]] = []
    after = 0
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


async def run_export(db: Database, settings: Settings, *, job_id: str) -> None:
    """Build the archive for a pending export job (the request schedules this after its
    transaction commits); failures are recorded on the job, never raised."""
    async with db.read_session() as session:
        job = await session.get(PrivacyJob, job_id)
        if job is None or job.status != "pending":
            return
        user_id = job.subject_id
    await _progress(db, job_id, status="running", progress=5)
    try:
        files = await _collect(db, settings, job_id, user_id, settings.audit.export_batch_size)
        manifest = {
            "subject_id": user_id,
            "generated_at": utcnow().isoformat(),
            "format": "garrison-subject-export/1",
            "files": {
                name: {"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}
                for name, body in sorted(files.items())
            },
        }
        name = f"{job_id}.zip"
        path = archive_path(settings.data_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("manifest.json", _json(manifest))
            for file_name, body in sorted(files.items()):
                archive.writestr(file_name, body)
        now = utcnow()
        await _progress(
            db,
            job_id,
            status="done",
            progress=100,
            archive=name,
            archive_bytes=path.stat().st_size,
            report={"files": len(files) + 1},
            finished_at=now,
            expires_at=now + timedelta(seconds=settings.privacy.export_keep_seconds),
        )
    except Exception as exc:
        log.error("privacy.export.failed", job_id=job_id, error=type(exc).__name__)
        await _progress(db, job_id, status="failed", error=type(exc).__name__, finished_at=utcnow())
