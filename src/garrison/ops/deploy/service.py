"""The deploy ledger: history of deploys and rollbacks, and promotion approvals. Every
change writes its audit event in the same transaction; nothing here commits."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac, users
from garrison.db.types import utcnow
from garrison.errors import Conflict
from garrison.events import Actor, Event, emit
from garrison.ops.deploy.models import DeployApproval, DeployRecord


class ApprovalRefused(Conflict):
    """An approval or promotion that the rules refuse (one line; 409 over the API)."""

    slug, title = "approval-refused", "Approval Refused"


async def start(
    session: AsyncSession,
    *,
    environment: str,
    action: str,
    release_id: str,
    version: str,
    colour: str,
    actor: str,
) -> int:
    record = DeployRecord(
        environment=environment,
        action=action,
        release_id=release_id,
        version=version,
        colour=colour,
        actor=actor[:191],
        outcome="running",
        checks_passed=False,
        started_at=utcnow(),
    )
    session.add(record)
    await session.flush()
    await emit(
        session,
        Event(
            action=f"deploy.{action}.started",
            actor=Actor("service", actor[:191]),
            target_type="release",
            target_id=release_id,
            data={"environment": environment, "version": version, "colour": colour},
        ),
    )
    return record.id


async def finish(
    session: AsyncSession,
    *,
    record_id: int,
    outcome: str,
    reason: str | None,
    checks_passed: bool,
) -> None:
    record = await session.get(DeployRecord, record_id)
    assert record is not None
    await session.execute(
        update(DeployRecord)
        .where(DeployRecord.id == record_id)
        .values(
            outcome=outcome,
            reason=reason,
            checks_passed=checks_passed,
            finished_at=utcnow(),
        )
    )
    await emit(
        session,
        Event(
            action=f"deploy.{record.action}.{outcome}",
            actor=Actor("service", record.actor),
            target_type="release",
            target_id=record.release_id,
            outcome="success" if outcome == "success" else "failed",
            data={"environment": record.environment, "reason": reason},
        ),
    )


async def history(
    session: AsyncSession, *, environment: str | None, limit: int = 20
) -> Sequence[DeployRecord]:
    query = select(DeployRecord).order_by(DeployRecord.id.desc()).limit(limit)
    if environment is not None:
        query = query.where(DeployRecord.environment == environment)
    return (await session.scalars(query)).all()


async def passed(
    session: AsyncSession, *, environment: str, release_id: str
) -> DeployRecord | None:
    """The successful deploy of ``release_id`` to ``environment`` (post-deploy checks
    passed), if there is one."""
    query = (
        select(DeployRecord)
        .where(
            DeployRecord.environment == environment,
            DeployRecord.release_id == release_id,
            DeployRecord.outcome == "success",
            DeployRecord.checks_passed.is_(True),
        )
        .order_by(DeployRecord.id.desc())
        .limit(1)
    )
    record: DeployRecord | None = await session.scalar(query)
    return record


async def require_passed(
    session: AsyncSession, *, environment: str, release_id: str
) -> DeployRecord:
    """``passed``, or ``ApprovalRefused`` naming what is missing (approve and promote)."""
    staged = await passed(session, environment=environment, release_id=release_id)
    if staged is None:
        raise ApprovalRefused(f"{release_id} has not passed {environment}'s checks")
    return staged


async def approve(
    session: AsyncSession,
    *,
    release_id: str,
    environment: str,
    approver_email: str,
    staged_by: str | None,
) -> DeployApproval:
    """Record an admin's approval. Refused when the approver is not an active admin, or is
    the admin who deployed the release to staging (``staged_by``)."""
    user = await users.find_by_email(session, email=users.normalise_email(approver_email))
    if user is None or user.status != "active":
        raise ApprovalRefused(f"{approver_email} is not an active user")
    roles, _ = await rbac.permissions_of(session, user_id=user.id)
    if "admin" not in roles:
        raise ApprovalRefused(f"{approver_email} is not an admin")
    if staged_by is not None and staged_by.lower() in (user.email.lower(), user.id):
        raise ApprovalRefused(
            f"{approver_email} deployed {release_id} to staging; a second admin must approve"
        )
    existing = await session.scalar(
        select(DeployApproval).where(
            DeployApproval.release_id == release_id,
            DeployApproval.environment == environment,
            DeployApproval.approver_id == user.id,
        )
    )
    if existing is not None:
        return existing
    approval = DeployApproval(
        release_id=release_id,
        environment=environment,
        approver_id=user.id,
        approver_email=user.email,
        created_at=utcnow(),
    )
    session.add(approval)
    await session.flush()
    await emit(
        session,
        Event(
            action="deploy.approved",
            actor=Actor("user", user.id),
            target_type="release",
            target_id=release_id,
            data={"environment": environment},
        ),
    )
    return approval


async def approvals(
    session: AsyncSession, *, release_id: str, environment: str
) -> Sequence[DeployApproval]:
    query = select(DeployApproval).where(
        DeployApproval.release_id == release_id, DeployApproval.environment == environment
    )
    return (await session.scalars(query)).all()
