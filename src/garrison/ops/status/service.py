"""Incidents, maintenance windows and subscribers. Never commits: the request boundary
does. Every change emits its event (``status.incident.*``, ``status.maintenance.*``) in the
same transaction, so webhooks and subscriber e-mail follow from the outbox; a window's start
and end (``status.maintenance.started|ended``) are announced by the worker through
``announce_due``."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.opaque import digest, new_secret
from garrison.db.types import utcnow
from garrison.errors import Conflict, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit
from garrison.ops.status.models import Incident, IncidentUpdate, Maintenance, Subscriber
from garrison.ops.status.schemas import (
    IncidentOut,
    MaintenanceOut,
    UpdateOut,
)

SUBSCRIBE_PREFIX = "gss_"
RECENT_RESOLVED = timedelta(days=7)


def check_components(values: Sequence[str], known: Collection[str], pointer: str) -> list[str]:
    for index, value in enumerate(values):
        if value not in known:
            raise ValidationFailed(
                "unknown component",
                errors=[
                    {
                        "pointer": f"{pointer}/{index}",
                        "detail": f"no component {value!r}; known: {', '.join(sorted(known))}",
                    }
                ],
            )
    return list(dict.fromkeys(values))


def check_window(starts_at: datetime, ends_at: datetime) -> None:
    if ends_at <= starts_at:
        raise ValidationFailed(
            "the window ends before it starts",
            errors=[{"pointer": "#/ends_at", "detail": "must be after starts_at"}],
        )


# -- incidents -------------------------------------------------------------------------


async def _updates(session: AsyncSession, ids: Sequence[str]) -> dict[str, list[UpdateOut]]:
    result: dict[str, list[UpdateOut]] = {i: [] for i in ids}
    if not ids:
        return result
    rows = await session.scalars(
        select(IncidentUpdate)
        .where(IncidentUpdate.incident_id.in_(list(ids)))
        .order_by(IncidentUpdate.created_at.desc(), IncidentUpdate.id.desc())
    )
    for row in rows:
        result[row.incident_id].append(
            UpdateOut.model_validate(
                {"status": row.status, "message": row.message, "created_at": row.created_at}
            )
        )
    return result


def _incident_out(row: Incident, updates: list[UpdateOut]) -> IncidentOut:
    return IncidentOut.model_validate(
        {
            "id": row.id,
            "title": row.title,
            "status": row.status,
            "impact": row.impact,
            "components": list(row.components),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "resolved_at": row.resolved_at,
            "updates": updates,
        }
    )


async def _outs(session: AsyncSession, rows: Sequence[Incident]) -> list[IncidentOut]:
    updates = await _updates(session, [r.id for r in rows])
    return [_incident_out(r, updates[r.id]) for r in rows]


async def list_incidents(
    session: AsyncSession, *, open_only: bool = False, limit: int = 50
) -> list[IncidentOut]:
    query = select(Incident)
    if open_only:
        query = query.where(Incident.resolved_at.is_(None))
    rows = (await session.scalars(query.order_by(Incident.created_at.desc()).limit(limit))).all()
    return await _outs(session, rows)


async def current_incidents(session: AsyncSession, *, now: datetime) -> list[IncidentOut]:
    """Open incidents and those resolved in the last week (newest first)."""
    rows = (
        await session.scalars(
            select(Incident)
            .where(
                or_(Incident.resolved_at.is_(None), Incident.resolved_at > now - RECENT_RESOLVED)
            )
            .order_by(Incident.created_at.desc())
            .limit(20)
        )
    ).all()
    return await _outs(session, rows)


async def _get(session: AsyncSession, incident_id: str) -> Incident:
    row = await session.get(Incident, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    return row


async def get_incident(session: AsyncSession, *, incident_id: str) -> IncidentOut:
    return (await _outs(session, [await _get(session, incident_id)]))[0]


def _payload(out: IncidentOut) -> dict[str, Any]:
    latest = out.updates[0].message if out.updates else None
    return {
        "id": out.id,
        "title": out.title,
        "status": out.status,
        "impact": out.impact,
        "components": out.components,
        "message": latest,
    }


async def create_incident(
    session: AsyncSession,
    *,
    title: str,
    message: str,
    status: str,
    impact: str,
    components: list[str],
    known: Collection[str],
    actor: Actor,
) -> IncidentOut:
    affected = check_components(components, known, "#/components")
    now = utcnow()
    row = Incident(
        id=str(uuid.uuid4()),
        title=title,
        status=status,
        impact=impact,
        components=affected,
        created_at=now,
        updated_at=now,
        resolved_at=now if status == "resolved" else None,
    )
    session.add(row)
    session.add(IncidentUpdate(incident_id=row.id, status=status, message=message, created_at=now))
    await session.flush()
    out = await get_incident(session, incident_id=row.id)
    await emit(
        session,
        Event(
            action="status.incident.created",
            actor=actor,
            target_type="incident",
            target_id=row.id,
            data=_payload(out),
        ),
    )
    return out


async def patch_incident(
    session: AsyncSession,
    *,
    incident_id: str,
    title: str | None,
    impact: str | None,
    components: list[str] | None,
    known: Collection[str],
    actor: Actor,
) -> IncidentOut:
    row = await _get(session, incident_id)
    if title is not None:
        row.title = title
    if impact is not None:
        row.impact = impact
    if components is not None:
        row.components = check_components(components, known, "#/components")
    row.updated_at = utcnow()
    await session.flush()
    out = await get_incident(session, incident_id=incident_id)
    await emit(
        session,
        Event(
            action="status.incident.updated",
            actor=actor,
            target_type="incident",
            target_id=row.id,
            data=_payload(out),
        ),
    )
    return out


async def add_update(
    session: AsyncSession, *, incident_id: str, status: str, message: str, actor: Actor
) -> IncidentOut:
    row = await _get(session, incident_id)
    if row.resolved_at is not None and status != "resolved":
        raise Conflict("the incident is resolved; open a new one")
    now = utcnow()
    session.add(IncidentUpdate(incident_id=row.id, status=status, message=message, created_at=now))
    resolving = status == "resolved" and row.resolved_at is None
    row.status = status
    row.updated_at = now
    if resolving:
        row.resolved_at = now
    await session.flush()
    out = await get_incident(session, incident_id=incident_id)
    action = "status.incident.resolved" if resolving else "status.incident.updated"
    await emit(
        session,
        Event(
            action=action, actor=actor, target_type="incident", target_id=row.id, data=_payload(out)
        ),
    )
    return out


# -- maintenance -----------------------------------------------------------------------


def maintenance_state(row: Maintenance, now: datetime) -> str:
    if row.cancelled_at is not None:
        return "cancelled"
    if now < row.starts_at:
        return "scheduled"
    return "in_progress" if now < row.ends_at else "completed"


def maintenance_out(row: Maintenance, now: datetime | None = None) -> MaintenanceOut:
    return MaintenanceOut.model_validate(
        {
            "id": row.id,
            "title": row.title,
            "description": row.description,
            "components": list(row.components),
            "starts_at": row.starts_at,
            "ends_at": row.ends_at,
            "read_only": row.read_only,
            "state": maintenance_state(row, now or utcnow()),
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


def _maintenance_payload(out: MaintenanceOut) -> dict[str, Any]:
    return out.model_dump(mode="json", exclude={"created_at", "updated_at"})


async def list_maintenances(session: AsyncSession, *, limit: int = 50) -> list[MaintenanceOut]:
    rows = await session.scalars(
        select(Maintenance).order_by(Maintenance.starts_at.desc()).limit(limit)
    )
    return [maintenance_out(r) for r in rows]


async def current_maintenances(session: AsyncSession, *, now: datetime) -> list[MaintenanceOut]:
    """Windows in progress or still to come (soonest first)."""
    rows = await session.scalars(
        select(Maintenance)
        .where(Maintenance.ends_at > now, Maintenance.cancelled_at.is_(None))
        .order_by(Maintenance.starts_at)
        .limit(20)
    )
    return [maintenance_out(r, now) for r in rows]


async def _get_maintenance(session: AsyncSession, maintenance_id: str) -> Maintenance:
    row = await session.get(Maintenance, maintenance_id)
    if row is None:
        raise NotFound(f"no maintenance window {maintenance_id!r}")
    return row


async def get_maintenance(session: AsyncSession, *, maintenance_id: str) -> MaintenanceOut:
    return maintenance_out(await _get_maintenance(session, maintenance_id))


async def schedule_maintenance(
    session: AsyncSession,
    *,
    title: str,
    description: str,
    components: list[str],
    starts_at: datetime,
    ends_at: datetime,
    read_only: bool,
    known: Collection[str],
    actor: Actor,
) -> MaintenanceOut:
    check_window(starts_at, ends_at)
    affected = check_components(components, known, "#/components")
    now = utcnow()
    row = Maintenance(
        id=str(uuid.uuid4()),
        title=title,
        description=description,
        components=affected,
        starts_at=starts_at,
        ends_at=ends_at,
        read_only=read_only,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    out = maintenance_out(row, now)
    await emit(
        session,
        Event(
            action="status.maintenance.scheduled",
            actor=actor,
            target_type="maintenance",
            target_id=row.id,
            data=_maintenance_payload(out),
        ),
    )
    return out


async def patch_maintenance(
    session: AsyncSession,
    *,
    maintenance_id: str,
    changes: dict[str, Any],
    known: Collection[str],
    actor: Actor,
) -> MaintenanceOut:
    row = await _get_maintenance(session, maintenance_id)
    if row.cancelled_at is not None:
        raise Conflict("the maintenance window is cancelled")
    if changes.get("components") is not None:
        changes["components"] = check_components(changes["components"], known, "#/components")
    for name, value in changes.items():
        if value is not None:
            setattr(row, name, value)
    check_window(row.starts_at, row.ends_at)
    row.updated_at = utcnow()
    await session.flush()
    out = maintenance_out(row)
    await emit(
        session,
        Event(
            action="status.maintenance.updated",
            actor=actor,
            target_type="maintenance",
            target_id=row.id,
            data=_maintenance_payload(out),
        ),
    )
    return out


async def cancel_maintenance(
    session: AsyncSession, *, maintenance_id: str, actor: Actor
) -> MaintenanceOut:
    row = await _get_maintenance(session, maintenance_id)
    if row.cancelled_at is None:
        row.cancelled_at = row.updated_at = utcnow()
        await session.flush()
        out = maintenance_out(row)
        await emit(
            session,
            Event(
                action="status.maintenance.cancelled",
                actor=actor,
                target_type="maintenance",
                target_id=row.id,
                data=_maintenance_payload(out),
            ),
        )
        return out
    return maintenance_out(row)


# -- start and end announcements (the worker's ``status.announce`` job) ------------------

STARTED = "status.maintenance.started"
ENDED = "status.maintenance.ended"


def _due(action: str, now: datetime) -> list[ColumnElement[bool]]:
    """The conditions under which ``action`` is due for a window at ``now``: used both to
    find candidates and, again, in the UPDATE that claims one (so a window another worker
    announced, cancelled or moved meanwhile is not announced)."""
    if action == ENDED:
        return [
            Maintenance.ended_announced_at.is_(None),
            Maintenance.cancelled_at.is_(None),
            Maintenance.ends_at <= now,
        ]
    return [
        Maintenance.started_announced_at.is_(None),
        Maintenance.ended_announced_at.is_(None),
        Maintenance.cancelled_at.is_(None),
        Maintenance.starts_at <= now,
        Maintenance.ends_at > now,
    ]


async def claim_announcement(
    session: AsyncSession, *, maintenance_id: str, action: str, now: datetime
) -> MaintenanceOut | None:
    """Claim one announcement and emit its event in the same transaction; None when it is
    not (or no longer) due: another worker claimed it first, or the window was cancelled or
    moved. The conditional UPDATE is the claim: of two workers racing, the second one's
    UPDATE waits for the first's row lock (SQLite: for the one writer), then matches no row."""
    column = "ended_announced_at" if action == ENDED else "started_announced_at"
    result = await session.execute(
        update(Maintenance)
        .where(Maintenance.id == maintenance_id, *_due(action, now))
        .values({column: now})
        .execution_options(synchronize_session=False)
    )
    if not getattr(result, "rowcount", 0):
        return None
    row = await session.scalar(
        select(Maintenance)
        .where(Maintenance.id == maintenance_id)
        .execution_options(populate_existing=True)
    )
    assert row is not None  # claimed by this transaction a moment ago
    out = maintenance_out(row, now)
    await emit(
        session,
        Event(
            action=action,
            actor=Actor.system(),
            target_type="maintenance",
            target_id=row.id,
            data=_maintenance_payload(out),
        ),
    )
    return out


async def announce_due(session: AsyncSession, *, now: datetime) -> list[tuple[str, str]]:
    """Announce every window that started or ended by ``now`` and was not announced yet;
    returns (action, window id) of each announcement made, ends first.

    Each window announces ``status.maintenance.started`` once when ``starts_at`` has passed
    and ``status.maintenance.ended`` once when ``ends_at`` has passed:

    - a window cancelled before it started announces nothing (``cancelled`` said it all);
      one cancelled while in progress announces no ``ended`` either: ``cancelled`` is its end;
    - a window whose times are edited after it started keeps its one ``started`` and ends
      once, at its new ``ends_at`` (moving ``starts_at`` later does not start it again);
    - when no worker ran between ``starts_at`` and ``ends_at`` (the worker was down for the
      whole window), the window announces only ``ended``: a ``started`` sent after the end
      would be stale news, and the ``ended`` notice carries both times. Its
      ``started_announced_at`` stays NULL: the start was never announced;
    - once ``ended`` is announced nothing more is, even if the window is edited later.
    """
    made: list[tuple[str, str]] = []
    for action, maintenance_id in await due_announcements(session, now=now):
        claimed = await claim_announcement(
            session, maintenance_id=maintenance_id, action=action, now=now
        )
        if claimed is not None:
            made.append((action, maintenance_id))
    return made


async def due_announcements(
    session: AsyncSession, *, now: datetime, limit: int = 100
) -> list[tuple[str, str]]:
    """(action, window id) of the announcements due at ``now``, ends first; reads only (a
    read session may be a moment behind: every claim checks again)."""
    due: list[tuple[str, str]] = []
    for action in (ENDED, STARTED):
        ids = await session.scalars(
            select(Maintenance.id)
            .where(*_due(action, now))
            .order_by(Maintenance.id)  # the same lock order in every worker
            .limit(limit)
        )
        due += [(action, maintenance_id) for maintenance_id in ids]
    return due


async def read_only_window(session: AsyncSession, *, now: datetime) -> Maintenance | None:
    """The read-only window in progress now, if any (the one ending last)."""
    row: Maintenance | None = await session.scalar(
        select(Maintenance)
        .where(
            Maintenance.read_only.is_(True),
            Maintenance.cancelled_at.is_(None),
            Maintenance.starts_at <= now,
            Maintenance.ends_at > now,
        )
        .order_by(Maintenance.ends_at.desc())
        .limit(1)
    )
    return row


# -- subscribers -----------------------------------------------------------------------


async def subscribe(session: AsyncSession, *, email: str, ttl: int) -> str | None:
    """A confirmation token to mail, or None when the address is already confirmed (the
    caller answers the same either way)."""
    address = email.strip().lower()
    token = new_secret(SUBSCRIBE_PREFIX)
    now = utcnow()
    row: Subscriber | None = await session.scalar(
        select(Subscriber).where(Subscriber.email == address)
    )
    if row is not None and row.confirmed_at is not None:
        return None
    if row is None:
        row = Subscriber(id=str(uuid.uuid4()), email=address, created_at=now)
        session.add(row)
    row.token_hash = digest(token)
    row.expires_at = now + timedelta(seconds=ttl)
    await session.flush()
    return token


async def confirm(session: AsyncSession, *, token: str) -> bool:
    now = utcnow()
    result = await session.execute(
        update(Subscriber)
        .where(
            Subscriber.token_hash == digest(token),
            Subscriber.confirmed_at.is_(None),
            Subscriber.expires_at > now,
        )
        .values(confirmed_at=now)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def unsubscribe(session: AsyncSession, *, subscriber_id: str) -> bool:
    result = await session.execute(delete(Subscriber).where(Subscriber.id == subscriber_id))
    return bool(getattr(result, "rowcount", 0))


async def confirmed_subscribers(session: AsyncSession) -> list[tuple[str, str]]:
    """(id, e-mail) of every confirmed subscriber."""
    rows = await session.execute(
        select(Subscriber.id, Subscriber.email).where(Subscriber.confirmed_at.is_not(None))
    )
    return [(r[0], r[1]) for r in rows]
