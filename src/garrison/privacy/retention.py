"""Retention: records older than their collection's ``retention: {field, days}``, and system
data past its age (expired sessions, export archives past their time, finished privacy
jobs), deleted in batches of short transactions. The worker applies it on the audit purge's
schedule; ``garrison privacy retention status|apply [--dry-run]`` shows and applies it. What
an application deleted is audited as ``privacy.retention.applied`` (counts only). The audit
log's own retention (``audit.retention_days``) is the audit purge; it is listed here too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison import events
from garrison.audit.models import AuditEntry
from garrison.auth import subject as auth_subject
from garrison.db.engine import Database
from garrison.db.retry import transact
from garrison.db.types import utcnow
from garrison.events import Actor, Event
from garrison.log import get_logger
from garrison.privacy import policies
from garrison.privacy.export import archive_path
from garrison.privacy.models import PrivacyJob
from garrison.records import owned
from garrison.settings import Settings

log = get_logger("garrison.privacy")


@dataclass
class Item:
    """One retention rule: what it covers, its age limit, how much is due and was deleted."""

    name: str
    days: float
    due: int
    deleted: int = 0
    applied_by: str = "privacy"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def _due_exports(session: AsyncSession, now: datetime) -> list[PrivacyJob]:
    query = select(PrivacyJob).where(
        PrivacyJob.kind == "export", PrivacyJob.status == "done", PrivacyJob.expires_at < now
    )
    return list((await session.scalars(query)).all())


def _finished_jobs(cutoff: datetime) -> Any:
    return (PrivacyJob.finished_at < cutoff) & PrivacyJob.status.in_(["done", "failed", "expired"])


async def status(db: Database, settings: Settings) -> list[Item]:
    now = utcnow()
    config = settings.privacy
    items: list[Item] = []
    async with db.read_session() as session:
        rules = await policies.policies(session)
        by_name = {c.name: c for c in await owned.collections(session)}
        for name, policy in sorted(rules.items()):
            if policy.retention is None or name not in by_name:
                continue
            before = now - timedelta(days=policy.retention.days)
            due = await owned.count_older(
                session, collection=by_name[name], field=policy.retention.field, before=before
            )
            items.append(Item(f"collection:{name}", policy.retention.days, due))
        audit_cutoff = now - timedelta(days=settings.audit.retention_days)
        audit_due = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.occurred_at < audit_cutoff)
        )
        items.append(
            Item(
                "audit",
                settings.audit.retention_days,
                int(audit_due or 0),
                applied_by="audit purge",
            )
        )
        sessions_before = now - timedelta(days=config.session_retention_days)
        items.append(
            Item(
                "sessions",
                config.session_retention_days,
                await auth_subject.count_prunable_sessions(session, before=sessions_before),
            )
        )
        items.append(
            Item(
                "exports",
                config.export_keep_seconds / 86_400,
                len(await _due_exports(session, now)),
            )
        )
        jobs_due = await session.scalar(
            select(func.count())
            .select_from(PrivacyJob)
            .where(_finished_jobs(now - timedelta(days=config.job_retention_days)))
        )
        items.append(Item("privacy_jobs", config.job_retention_days, int(jobs_due or 0)))
    return items


async def _batches(db: Database, work: Any) -> int:
    total = 0
    while True:
        count = int(await transact(db, work))
        total += count
        if count == 0:
            return total


async def apply(db: Database, settings: Settings, *, dry_run: bool = False) -> list[Item]:
    """Delete what is due, in batches; with ``dry_run`` only report it."""
    items = await status(db, settings)
    if dry_run:
        return items
    now, config = utcnow(), settings.privacy
    batch = config.retention_batch_size
    for item in items:
        if item.due == 0 or item.applied_by != "privacy":
            continue
        if item.name.startswith("collection:"):
            name = item.name.split(":", 1)[1]

            async def records(session: AsyncSession, name: str = name) -> int:
                policy = (await policies.policies(session))[name]
                assert policy.retention is not None
                collection = {c.name: c for c in await owned.collections(session)}[name]
                before = now - timedelta(days=policy.retention.days)
                return await owned.delete_older(
                    session,
                    collection=collection,
                    field=policy.retention.field,
                    before=before,
                    limit=batch,
                )

            item.deleted = await _batches(db, records)
        elif item.name == "sessions":
            before = now - timedelta(days=config.session_retention_days)

            async def sessions(session: AsyncSession, before: datetime = before) -> int:
                return await auth_subject.prune_sessions(session, before=before, limit=batch)

            item.deleted = await _batches(db, sessions)
        elif item.name == "exports":
            item.deleted = await transact(db, lambda s: _expire_exports(s, now, settings.data_dir))
        elif item.name == "privacy_jobs":
            cutoff = now - timedelta(days=config.job_retention_days)

            async def jobs(session: AsyncSession, cutoff: datetime = cutoff) -> int:
                ids = (
                    await session.scalars(
                        select(PrivacyJob.id).where(_finished_jobs(cutoff)).limit(batch)
                    )
                ).all()
                if ids:
                    await session.execute(delete(PrivacyJob).where(PrivacyJob.id.in_(ids)))
                return len(ids)

            item.deleted = await _batches(db, jobs)
    deleted = {item.name: item.deleted for item in items if item.deleted}
    if deleted:
        await events.emit_standalone(
            db,
            Event(
                action="privacy.retention.applied",
                actor=Actor.system(),
                target_type="retention",
                data={"deleted": deleted},
            ),
        )
        log.info(
            "privacy.retention.applied", **{k.replace(":", "_"): v for k, v in deleted.items()}
        )
    return items


async def _expire_exports(session: AsyncSession, now: datetime, data_dir: Path) -> int:
    jobs = await _due_exports(session, now)
    for job in jobs:
        if job.archive:
            archive_path(data_dir, job.archive).unlink(missing_ok=True)
        job.status, job.archive = "expired", None
    await session.flush()
    return len(jobs)
