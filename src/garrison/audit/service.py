"""Appending to the audit log, sealing entries into the hash chain, and searching. Never
commits: the caller's transaction (the request boundary, the CLI, ``events`` or the
worker) does."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import ColumnElement, Row, Table, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.audit import chain, personal
from garrison.audit.models import AuditChain, AuditEntry
from garrison.db.fastread import execute_in
from garrison.db.types import utcnow
from garrison.outbox import service as outbox_service
from garrison.outbox.registry import Registry
from garrison.outbox.registry import registry as default_registry
from garrison.store import wake
from garrison.types import canonical_time

if TYPE_CHECKING:
    from garrison.events import Event

HEAD_ID = 1
_entries: Table = AuditEntry.__table__  # type: ignore[assignment]
_chain: Table = AuditChain.__table__  # type: ignore[assignment]
# Built once: constructing an INSERT per call costs more CPU than the statement's round trip.
_INSERT_ENTRY = insert(_entries)


def _clip(value: str | None, length: int) -> str | None:
    return value[:length] if value is not None else None


async def record(session: AsyncSession, event: Event) -> None:
    """The event seam's recorder (``garrison.events.install_recorder``)."""
    await append(session, event=event)


async def append(session: AsyncSession, *, event: Event) -> None:
    """Insert the entry for ``event`` in the caller's transaction (one statement, no lock
    shared with other writers). After commit the worker seals it into the hash chain and
    writes its outbox message."""
    context = event.context
    values: dict[str, Any] = {
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
        "subject_id": None,
        "sealed": None,
    }
    await personal.seal_entry(session, event, values)
    await execute_in(session, _INSERT_ENTRY, values)
    wake.on_commit(session)  # the worker is woken once the transaction commits


async def has_unsealed(session: AsyncSession) -> bool:
    query = select(_entries.c.id).where(_entries.c.seq.is_(None)).limit(1)
    return (await session.execute(query)).first() is not None


async def unsealed_backlog(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many committed entries wait for the sealer, and when the oldest occurred."""
    query = select(func.count(), func.min(_entries.c.occurred_at)).where(_entries.c.seq.is_(None))
    count, oldest = (await session.execute(query)).one()
    return int(count), oldest


async def seal(session: AsyncSession, *, limit: int, registry: Registry | None = None) -> int:
    """Chain up to ``limit`` committed, unsealed entries (oldest first) and write their
    outbox messages (for the events ``registry``'s handlers want); returns how many.

    The head row is locked (``SELECT … FOR UPDATE`` on MySQL/MariaDB; ``BEGIN IMMEDIATE``
    on SQLite), so two sealers queue and the chain never forks. An entry whose transaction
    commits late is simply sealed in a later batch, after entries inserted before it.
    """
    head = (
        await session.execute(
            select(_chain.c.seq, _chain.c.last_hash).where(_chain.c.id == HEAD_ID).with_for_update()
        )
    ).one()
    rows = (
        await session.execute(
            select(_entries).where(_entries.c.seq.is_(None)).order_by(_entries.c.id).limit(limit)
        )
    ).all()
    if not rows:
        return 0
    seq, prev = int(head.seq), str(head.last_hash)
    sealed: list[dict[str, Any]] = []
    for row in rows:
        seq += 1
        fields = {**row._asdict(), "seq": seq}
        digest = chain.entry_hash(prev, fields)
        sealed.append({"b_id": row.id, "b_seq": seq, "b_prev": prev, "b_hash": digest})
        prev = digest
    # One UPDATE for the whole batch (CASE on the id): a statement per entry would cost a
    # round trip each, which is most of what sealing costs.
    ids = [entry["b_id"] for entry in sealed]

    def by_id(key: str) -> Any:
        return case({entry["b_id"]: entry[key] for entry in sealed}, value=_entries.c.id)

    await session.execute(
        update(_entries)
        .where(_entries.c.id.in_(ids))
        .values(seq=by_id("b_seq"), prev_hash=by_id("b_prev"), hash=by_id("b_hash"))
    )
    await session.execute(
        update(_chain).where(_chain.c.id == HEAD_ID).values(seq=seq, last_hash=prev)
    )
    opened = await personal.open_rows(session, rows)
    await outbox_service.publish(
        session, messages=[_message(row) for row in opened], registry=registry or default_registry
    )
    return len(rows)


def _message(row: dict[str, Any]) -> outbox_service.NewMessage:
    """The outbox message for an entry: the event as consumers receive it."""
    payload = {
        "id": row["event_id"],
        "action": row["action"],
        "occurred_at": canonical_time(row["occurred_at"]),
        "actor": {"kind": row["actor_kind"], "id": row["actor_id"]},
        "target": {"type": row["target_type"], "id": row["target_id"]},
        "outcome": row["outcome"],
        "request_id": row["request_id"],
        "changes": orjson.loads(row["changes"]) if row["changes"] else {},
        "data": orjson.loads(row["data"]) if row["data"] else {},
    }
    return outbox_service.NewMessage(
        event_id=row["event_id"],
        topic=row["action"],
        target_type=row["target_type"],
        target_id=row["target_id"],
        payload=payload,
    )


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


def encode_cursor(entry_id: int) -> str:
    return base64.urlsafe_b64encode(f"s{entry_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int | None:
    """The position a cursor stands for, or ``None`` when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    digits = raw[1:]
    if not raw.startswith("s") or not (digits.isascii() and digits.isdigit()) or len(raw) > 20:
        return None
    position = int(digits)
    return position if position <= 2**63 - 1 else None  # the sequence column is 64-bit


async def search(
    session: AsyncSession, *, query: AuditQuery, limit: int, after: int | None = None
) -> tuple[Sequence[Row[Any]], int | None]:
    """Newest first. ``after`` is the ``id`` the previous page ended at; returns the page
    and the ``id`` to continue from (``None`` on the last page)."""
    where = _conditions(query)
    if after is not None:
        where.append(_entries.c.id < after)
    rows = (
        await session.execute(
            select(_entries).where(*where).order_by(_entries.c.id.desc()).limit(limit + 1)
        )
    ).all()
    if len(rows) > limit:
        return rows[:limit], int(rows[limit - 1].id)
    return rows, None


async def export_batch(
    session: AsyncSession, *, query: AuditQuery, limit: int, after: int
) -> Sequence[Row[Any]]:
    """Oldest first, the ``limit`` entries after ``id`` ``after`` (for the NDJSON export)."""
    where = [*_conditions(query), _entries.c.id > after]
    return (
        await session.execute(select(_entries).where(*where).order_by(_entries.c.id).limit(limit))
    ).all()


async def about_subject(
    session: AsyncSession, *, subject_id: str, limit: int, after: int
) -> Sequence[Row[Any]]:
    """Oldest first, entries about a person (sealed under them, or naming them as the user
    who acted or was acted on) after ``id`` ``after``."""
    where = or_(
        _entries.c.subject_id == subject_id,
        (_entries.c.actor_kind == "user") & (_entries.c.actor_id == subject_id),
        (_entries.c.target_type == "user") & (_entries.c.target_id == subject_id),
    )
    query = select(_entries).where(where, _entries.c.id > after).order_by(_entries.c.id)
    return (await session.execute(query.limit(limit))).all()


async def subject_event_ids(session: AsyncSession, *, subject_id: str) -> list[str]:
    """The event ids of the entries sealed under a person."""
    query = select(_entries.c.event_id).where(_entries.c.subject_id == subject_id)
    return [str(value) for value in (await session.scalars(query)).all()]
