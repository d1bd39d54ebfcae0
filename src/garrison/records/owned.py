"""The records service's view by owner, for the privacy domain: a person's records across
collections (export), anonymizing or deleting them (erasure), the records of others that
name them in a relation field to ``users`` (export, and what erasure does to those links),
and deleting records past a retention age. These bypass the collections' access rules on
purpose: they run for the platform (an admin's erasure, the worker), and are audited by the
privacy domain as one event each, without re-recording the data they remove."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.errors import ValidationFailed
from garrison.records.registry import Collection, list_collections
from garrison.records.spec import FieldSpec
from garrison.records.validation import output

TIME_FIELDS = ("created_at", "updated_at")


async def collections(session: AsyncSession) -> list[Collection]:
    return await list_collections(session)


async def owned(
    session: AsyncSession, *, collection: Collection, owner: str
) -> list[dict[str, Any]]:
    table = collection.table
    rows = await session.execute(select(table).where(table.c.owner == owner).order_by(table.c.id))
    return [output(dict(row._mapping)) for row in rows]


async def count_owned(session: AsyncSession, *, collection: Collection, owner: str) -> int:
    table = collection.table
    query = select(func.count()).select_from(table).where(table.c.owner == owner)
    return int(await session.scalar(query) or 0)


def user_relations(collection: Collection) -> list[FieldSpec]:
    """The collection's relation fields whose target is a user."""
    return [f for f in collection.spec.fields if f.type == "relation" and f.collection == "users"]


async def related(
    session: AsyncSession, *, collection: Collection, user: str
) -> list[dict[str, Any]]:
    """Records that name ``user`` in a relation field and are not theirs."""
    table, fields = collection.table, user_relations(collection)
    if not fields:
        return []
    named = or_(*(table.c[f.name] == user for f in fields))
    not_theirs = or_(table.c.owner.is_(None), table.c.owner != user)
    rows = await session.execute(select(table).where(named, not_theirs).order_by(table.c.id))
    return [output(dict(row._mapping)) for row in rows]


async def count_related(
    session: AsyncSession, *, collection: Collection, field: str, user: str, skip_owned: bool
) -> int:
    """How many records name ``user`` in ``field``; with ``skip_owned``, not counting the
    user's own records (which the erasure deletes first)."""
    table = collection.table
    query = select(func.count()).select_from(table).where(table.c[field] == user)
    if skip_owned:
        query = query.where(or_(table.c.owner.is_(None), table.c.owner != user))
    return int(await session.scalar(query) or 0)


async def unlink_related(
    session: AsyncSession, *, collection: Collection, field: FieldSpec, user: str
) -> int:
    """Apply ``field``'s ``on_delete`` to the records that name ``user`` in it, as deleting
    the user would: ``set_null`` clears the link, ``cascade`` deletes the records. (Done
    here rather than left to the foreign key, so the erasure can count what it changed.)"""
    table = collection.table
    column = table.c[field.name]
    if field.on_delete == "set_null":
        values = {field.name: None, "version": table.c.version + 1}
        return _count(await session.execute(update(table).where(column == user).values(values)))
    if field.on_delete == "cascade":
        return _count(await session.execute(delete(table).where(column == user)))
    return 0


def check_fields(collection: Collection, fields: Mapping[str, Any], pointer: str) -> None:
    """``fields`` must name fields of the collection (values are not checked here)."""
    names = {f.name for f in collection.spec.fields}
    unknown = sorted(set(fields) - names)
    if unknown:
        raise ValidationFailed(
            "anonymize names fields the collection does not have",
            errors=[{"pointer": f"{pointer}/{unknown[0]}", "detail": "no such field"}],
        )


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def anonymize_owned(
    session: AsyncSession, *, collection: Collection, owner: str, fields: Mapping[str, Any]
) -> int:
    """Replace ``fields`` (None nulls a field) in every record of ``owner``, and detach the
    records from them (``owner`` becomes null)."""
    table = collection.table
    values = {**dict(fields), "owner": None, "version": table.c.version + 1}
    return _count(await session.execute(update(table).where(table.c.owner == owner).values(values)))


async def delete_owned(session: AsyncSession, *, collection: Collection, owner: str) -> int:
    table = collection.table
    return _count(await session.execute(delete(table).where(table.c.owner == owner)))


def time_column(collection: Collection, field: str) -> Any:
    names = {f.name for f in collection.spec.fields if f.type in ("date", "datetime")}
    if field not in TIME_FIELDS and field not in names:
        raise ValidationFailed(
            "retention needs a date or time field",
            errors=[{"pointer": "#/retention/field", "detail": f"{field!r} is not one"}],
        )
    return collection.table.c[field]


async def count_older(
    session: AsyncSession, *, collection: Collection, field: str, before: datetime
) -> int:
    column = time_column(collection, field)
    query = select(func.count()).select_from(collection.table).where(column < before)
    return int(await session.scalar(query) or 0)


async def delete_older(
    session: AsyncSession, *, collection: Collection, field: str, before: datetime, limit: int
) -> int:
    """Delete up to ``limit`` records whose ``field`` is before ``before``."""
    table = collection.table
    column = time_column(collection, field)
    ids = (await session.scalars(select(table.c.id).where(column < before).limit(limit))).all()
    if not ids:
        return 0
    return _count(await session.execute(delete(table).where(table.c.id.in_(ids))))


async def existing_ids(
    session: AsyncSession, *, collection: Collection, ids: list[str]
) -> set[str]:
    """Which of ``ids`` are records of ``collection`` (the files sweeper's check for files
    whose record went without the records service: retention, erasure)."""
    if not ids:
        return set()
    table = collection.table
    found = await session.scalars(select(table.c.id).where(table.c.id.in_(ids)))
    return set(found)
