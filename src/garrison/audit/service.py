"""Appending to the audit chain and searching it. Never commits: the caller's transaction
(the request boundary, the CLI or ``events.emit_standalone``) does."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Row, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import chain
from garrison.audit.models import AuditChain, AuditEntry
from garrison.db.types import utcnow

if TYPE_CHECKING:
    from garrison.events import Event

HEAD_ID = 1


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


async def append(session: AsyncSession, *, event: Event) -> int:
    """Append ``event`` to the chain in the caller's transaction; returns its ``seq``.

    The chain head is locked (``SELECT … FOR UPDATE`` on MySQL/MariaDB; SQLite writers are
    already serialized by ``BEGIN IMMEDIATE``) until the caller commits, so concurrent
    writers queue instead of forking the chain. Call it last in the unit of work.
    """
    head = (
        await session.execute(
            select(AuditChain.seq, AuditChain.last_hash)
            .where(AuditChain.id == HEAD_ID)
            .with_for_update()
        )
    ).one()
    context = event.context
    fields: dict[str, Any] = {
        "seq": head.seq + 1,
        "event_id": event.id,
        "occurred_at": utcnow(),
        "actor_kind": event.actor.kind,
        "actor_id": _clip(event.actor.id, 191),
        "ip": _clip(context.ip, 45),
        "user_agent": _clip(context.user_agent, 512),
        "request_id": _clip(context.request_id, 128),
        "action": event.action[:128],
        "target_type": _clip(event.target_type, 64),
        "target_id": _clip(event.target_id, 191),
        "outcome": event.outcome,
        "changes": chain.encode_changes(event.changes),
        "data": chain.encode_data(event.data),
        "prev_hash": head.last_hash,
    }
    fields["hash"] = chain.entry_hash(head.last_hash, fields)
    await session.execute(insert(AuditEntry).values(**fields))
    await session.execute(
        update(AuditChain)
        .where(AuditChain.id == HEAD_ID)
        .values(seq=fields["seq"], last_hash=fields["hash"])
    )
    return int(fields["seq"])


@dataclass(frozen=True)
class AuditQuery:
    """Search filters; every one is optional. ``action`` is a dotted prefix: ``auth`` matches
    ``auth`` and ``auth.login.failed`` but not ``authz.x``."""

    actor_kind: str | None = None
    actor_id: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _conditions(query: AuditQuery) -> list[ColumnElement[bool]]:
    e = AuditEntry
    where: list[ColumnElement[bool]] = []
    if query.actor_kind:
        where.append(e.actor_kind == query.actor_kind)
    if query.actor_id:
        where.append(e.actor_id == query.actor_id)
    if query.action:
        prefix = query.action.rstrip(".")
        where.append(
            or_(e.action == prefix, e.action.like(_escape_like(prefix) + ".%", escape="\\"))
        )
    if query.target_type:
        where.append(e.target_type == query.target_type)
    if query.target_id:
        where.append(e.target_id == query.target_id)
    if query.outcome:
        where.append(e.outcome == query.outcome)
    if query.since:
        where.append(e.occurred_at >= query.since)
    if query.until:
        where.append(e.occurred_at < query.until)
    return where


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The position a cursor stands for, or ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not raw.startswith("s") or not raw[1:].isdigit() or len(raw) > 21:
        return None
    return int(raw[1:])


async def search(
    session: AsyncSession, *, query: AuditQuery, limit: int, after: int | None = None
) -> tuple[Sequence[Row[Any]], int | None]:
    """Newest first. ``after`` is the ``seq`` the previous page ended at; returns the page
    and the ``seq`` to continue from (``None`` on the last page)."""
    where = _conditions(query)
    if after is not None:
        where.append(AuditEntry.seq < after)
    rows = (
        await session.execute(
            select(AuditEntry.__table__)
            .where(*where)
            .order_by(AuditEntry.seq.desc())
            .limit(limit + 1)
        )
    ).all()
    if len(rows) > limit:
        return rows[:limit], int(rows[limit - 1].seq)
    return rows, None


async def export_batch(
    session: AsyncSession, *, query: AuditQuery, limit: int, after: int
) -> Sequence[Row[Any]]:
    """Oldest first, the ``limit`` entries after ``seq`` ``after`` (for the NDJSON export)."""
    where = [*_conditions(query), AuditEntry.seq > after]
    return (
        await session.execute(
            select(AuditEntry.__table__).where(*where).order_by(AuditEntry.seq).limit(limit)
        )
    ).all()
