"""Erasure (the right to be forgotten). One transaction, owned by the caller:

1. each collection's records owned by the user: deleted, anonymized (listed fields replaced,
   the owner detached) or retained with the policy's legal basis; the files the user
   uploaded to collections that are not retained (and unattached uploads) released, their
   objects deleted by the worker once this commits;
1b. the records that still name the user in a relation field to ``users``: the field's
   ``on_delete`` applies, as for deleting any target (``set_null`` clears the link,
   ``cascade`` deletes the record); a ``restrict`` field that still names them refuses the
   erasure (409, nothing changed; the dry run lists it under ``blocked``), since the schema
   says such records must not lose their user: change the field or those records first;
2. the user, their sessions (refresh tokens), API keys, one-time tokens and role grants
   deleted, so every credential stops at once (an access token's user no longer exists);
3. their export archives deleted, and their events not yet delivered from the outbox;
4. their audit key destroyed: the personal data sealed in audit entries about them becomes
   unrecoverable, while the hash chain (over the sealed text) still verifies.

A dry run reports the same counts and changes nothing. The erasure is audited as
``privacy.erasure.completed`` with counts only. A second erasure of the same user while one
is running is refused (409): the job row's ``active`` column is unique.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import service as audit_service
from garrison.audit import subject_keys as keys
from garrison.auth import subject as auth_subject
from garrison.db.types import utcnow
from garrison.errors import Conflict, NotFound
from garrison.events import Actor, Event, emit
from garrison.files import service as files_service
from garrison.outbox import service as outbox_service
from garrison.privacy import policies
from garrison.privacy.models import PrivacyJob
from garrison.records import owned


async def plan(session: AsyncSession, *, user_id: str) -> dict[str, Any]:
    """What erasing ``user_id`` would do, per collection: to the records they own, and to
    the records that name them in a relation field (``related``; ``blocked`` lists the
    ``restrict`` fields that would refuse the erasure)."""
    if not await auth_subject.user_exists(session, user_id=user_id):
        raise NotFound(f"no user {user_id!r}")
    rules = await policies.policies(session)
    collections: dict[str, Any] = {}
    related: dict[str, Any] = {}
    blocked: list[str] = []
    for collection in await owned.collections(session):
        count = await owned.count_owned(session, collection=collection, owner=user_id)
        policy = rules.get(collection.name, policies.DEFAULT).erasure
        entry: dict[str, Any] = {"records": count, "action": policy.action}
        if policy.action == "anonymize":
            entry["fields"] = sorted(policy.fields)
        if policy.action == "retain":
            entry["legal_basis"] = policy.legal_basis
        collections[collection.name] = entry
        for field in owned.user_relations(collection):
            # The user's own records in a deleting collection are gone before the links.
            linked = await owned.count_related(
                session,
                collection=collection,
                field=field.name,
                user=user_id,
                skip_owned=policy.action == "delete",
            )
            if linked:
                related.setdefault(collection.name, {})[field.name] = {
                    "records": linked,
                    "on_delete": field.on_delete,
                }
                if field.on_delete == "restrict":
                    blocked.append(f"{collection.name}.{field.name}")
    report: dict[str, Any] = {"user_id": user_id, "collections": collections}
    if related:
        report["related"] = related
    if blocked:
        report["blocked"] = blocked
    return report


async def _claim(session: AsyncSession, *, user_id: str, actor: Actor) -> PrivacyJob:
    job = PrivacyJob(
        id=str(uuid.uuid4()),
        kind="erasure",
        subject_id=user_id,
        requested_by=f"{actor.kind}:{actor.id}" if actor.id else actor.kind,
        status="running",
        progress=0,
        active=f"erasure:{user_id}",
        created_at=utcnow(),
    )
    try:
        async with session.begin_nested():
            session.add(job)
            await session.flush()
    except IntegrityError:
        raise Conflict(f"an erasure of {user_id!r} is already running") from None
    return job


async def erase(
    session: AsyncSession, *, user_id: str, dry_run: bool, actor: Actor, data_dir: Path
) -> tuple[PrivacyJob | None, dict[str, Any]]:
    report = await plan(session, user_id=user_id)
    if dry_run:
        return None, {**report, "dry_run": True}
    if report.get("blocked"):
        raise Conflict(
            "records still name this user in a relation field with on_delete 'restrict': "
            + ", ".join(report["blocked"])
            + " (change the field's on_delete, or those records, then erase)"
        )
    job = await _claim(session, user_id=user_id, actor=actor)
    by_name = {c.name: c for c in await owned.collections(session)}
    rules = await policies.policies(session)
    for name, entry in report["collections"].items():
        policy = rules.get(name, policies.DEFAULT).erasure
        collection = by_name[name]
        if policy.action == "delete":
            entry["done"] = await owned.delete_owned(session, collection=collection, owner=user_id)
        elif policy.action == "anonymize":
            entry["done"] = await owned.anonymize_owned(
                session, collection=collection, owner=user_id, fields=policy.fields
            )
        else:
            entry["done"] = 0
    for name, fields in report.get("related", {}).items():
        collection = by_name[name]
        for field in owned.user_relations(collection):
            if field.name in fields:
                fields[field.name]["done"] = await owned.unlink_related(
                    session, collection=collection, field=field, user=user_id
                )
    report["files"] = await files_service.release_of_owner(
        session,
        owner=user_id,
        collections=[n for n, e in report["collections"].items() if e["action"] != "retain"],
        actor=actor,
    )
    report["credentials"] = await auth_subject.remove_user(session, user_id=user_id)
    report["exports"] = await _drop_exports(session, user_id=user_id, data_dir=data_dir)
    event_ids = await audit_service.subject_event_ids(session, subject_id=user_id)
    report["undelivered_events_dropped"] = await outbox_service.discard(
        session, event_ids=event_ids
    )
    report["audit_keys_destroyed"] = await keys.destroy(session, subject_id=user_id)
    report["dry_run"] = False
    job.status, job.progress, job.active = "done", 100, None
    job.report, job.finished_at = report, utcnow()
    await session.flush()
    await emit(
        session,
        Event(
            action="privacy.erasure.completed",
            actor=actor,
            target_type="privacy_job",
            target_id=job.id,
            data={
                "subject_id": user_id,
                "collections": {n: e["done"] for n, e in report["collections"].items()},
                "related": {
                    n: {f: e["done"] for f, e in fields.items()}
                    for n, fields in report.get("related", {}).items()
                },
            },
        ),
    )
    return job, report


async def _drop_exports(session: AsyncSession, *, user_id: str, data_dir: Path) -> int:
    from garrison.privacy.export import archive_path

    jobs = (
        await session.scalars(
            select(PrivacyJob).where(PrivacyJob.subject_id == user_id, PrivacyJob.kind == "export")
        )
    ).all()
    for job in jobs:
        if job.archive:
            archive_path(data_dir, job.archive).unlink(missing_ok=True)
    await session.execute(
        delete(PrivacyJob).where(PrivacyJob.subject_id == user_id, PrivacyJob.kind == "export")
    )
    return len(jobs)
