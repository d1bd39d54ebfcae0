"""The collection registry: defining collections and changing their schema.

DDL and transactions: MySQL/MariaDB commit implicitly around DDL, so a schema change cannot
share a transaction with its registry row. The DDL runs first; if recording it then fails,
the inverse change is applied, so the table and the registry never disagree for long.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Table, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from garrison import events
from garrison.db.fastread import FastReader, rows_of
from garrison.errors import ValidationFailed
from garrison.events import Actor, Event
from garrison.records import ddl
from garrison.records.errors import (
    CollectionExists,
    CollectionNotFound,
    CollectionReferenced,
    ConfirmationRequired,
)
from garrison.records.ids import uuid7
from garrison.records.models import CollectionRow, SchemaChangeRow
from garrison.records.spec import CollectionSpec, is_valid_name

# Reads run on a session or connection or, on the hot path, on the FastReader.
Executor = AsyncSession | AsyncConnection | FastReader


@dataclass(frozen=True)
class Collection:
    """A collection as the records service uses it: definition, version and table.
    ``stamp`` tells one definition from any other: the registry row's id (a collection
    dropped and created again under the same name starts at version 1 again) and version."""

    spec: CollectionSpec
    version: int
    table: Table
    stamp: tuple[str, int]

    @property
    def name(self) -> str:
        return self.spec.name


def _now() -> datetime:
    return datetime.now(UTC)


def _collection(row: CollectionRow) -> Collection:
    spec = CollectionSpec.model_validate(row.spec)
    return Collection(
        spec=spec, version=row.version, table=ddl.build_table(spec), stamp=(row.id, row.version)
    )


def _problems(exc: ValidationError) -> ValidationFailed:
    errors = [
        {"pointer": "#/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"]}
        for e in exc.errors()
    ]
    return ValidationFailed("the collection definition is invalid", errors=errors)


def _known_name(name: str) -> None:
    """A name no collection can have is not looked up (it may not even be valid UTF-8)."""
    if not is_valid_name(name):
        raise CollectionNotFound(f"there is no collection {name!r}")


async def _row(session: AsyncSession, name: str, *, lock: bool = False) -> CollectionRow:
    _known_name(name)
    query = select(CollectionRow).where(CollectionRow.name == name)
    if lock:
        query = query.with_for_update()
    row = (await session.execute(query)).scalar_one_or_none()
    if row is None:
        raise CollectionNotFound(f"there is no collection {name!r}")
    return row


async def get_collection(session: Executor, *, name: str) -> Collection:
    """The collection's definition (columns, not the ORM row: this also runs on the
    FastReader, which is what the read path uses)."""
    _known_name(name)
    query = select(CollectionRow.id, CollectionRow.spec, CollectionRow.version).where(
        CollectionRow.name == name
    )
    rows = await rows_of(session, query)
    if not rows:
        raise CollectionNotFound(f"there is no collection {name!r}")
    row = rows[0]
    spec = CollectionSpec.model_validate(row["spec"])
    return Collection(
        spec=spec,
        version=row["version"],
        table=ddl.build_table(spec),
        stamp=(row["id"], row["version"]),
    )


async def stamp_of(session: Executor, *, name: str) -> tuple[str, int] | None:
    """The collection's current ``Collection.stamp`` (None: there is no such collection)."""
    if not is_valid_name(name):
        return None
    query = select(CollectionRow.id, CollectionRow.version).where(CollectionRow.name == name)
    rows = await rows_of(session, query)
    return (rows[0]["id"], rows[0]["version"]) if rows else None


async def list_collections(session: AsyncSession) -> list[Collection]:
    rows = (await session.execute(select(CollectionRow).order_by(CollectionRow.name))).scalars()
    return [_collection(row) for row in rows]


async def _check_relations(session: AsyncSession, spec: CollectionSpec) -> None:
    for field in spec.fields:
        target = field.collection
        if field.type != "relation" or target is None or target in ddl.EXTERNAL_TARGETS:
            continue
        if target == spec.name:
            continue
        exists = await session.scalar(select(CollectionRow.id).where(CollectionRow.name == target))
        if exists is None:
            raise ValidationFailed(
                "a relation points at an unknown collection",
                errors=[
                    {"pointer": f"#/fields/{field.name}/collection", "detail": "no such collection"}
                ],
            )


async def create_collection(
    session: AsyncSession, *, data: dict[str, Any], actor: Actor
) -> Collection:
    try:
        spec = CollectionSpec.model_validate(data)
    except ValidationError as exc:
        raise _problems(exc) from None
    taken = await session.scalar(select(CollectionRow.id).where(CollectionRow.name == spec.name))
    if taken is not None:
        raise CollectionExists(f"a collection named {spec.name!r} exists")
    await _check_relations(session, spec)
    conn = await session.connection()
    await conn.run_sync(ddl.create_table, spec)
    now = _now()
    row = CollectionRow(
        id=uuid7(),
        name=spec.name,
        spec=spec.model_dump(mode="json"),
        version=1,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await events.emit(
        session,
        Event(
            action="collection.created",
            actor=actor,
            target_type="collection",
            target_id=spec.name,
            data={"name": spec.name},
        ),
    )
    return _collection(row)


async def change_schema(
    session: AsyncSession,
    *,
    name: str,
    change: ddl.SchemaChange,
    confirm: bool,
    actor: Actor,
) -> Collection:
    if change.destructive and not confirm:
        raise ConfirmationRequired(
            f"{change.kind} destroys data; repeat the request with confirm=true"
        )
    row = await _row(session, name, lock=True)
    before = CollectionSpec.model_validate(row.spec)
    try:
        after = change.apply_to_spec(before)
    except ValidationError as exc:
        raise _problems(exc) from None
    added = change.field if change.kind == "add_field" else None
    needs_default = added is not None and added.required and added.default is None
    if needs_default and await _has_rows(session, before):
        raise ValidationFailed(
            "a required field added to a collection that has records needs a default",
            errors=[{"pointer": "#/field/default", "detail": "is required here"}],
        )
    await _check_relations(session, after)
    conn = await session.connection()
    await conn.run_sync(ddl.apply_change, before, change)
    row.spec = after.model_dump(mode="json")
    row.version += 1
    row.updated_at = _now()
    session.add(
        SchemaChangeRow(
            id=uuid7(),
            collection=name,
            version=row.version,
            change=change.to_json(),
            inverse=change.inverse().to_json(),
            actor=actor.id,
            applied_at=row.updated_at,
        )
    )
    await session.flush()
    await events.emit(
        session,
        Event(
            action="collection.schema_changed",
            actor=actor,
            target_type="collection",
            target_id=name,
            data={"change": change.to_json(), "version": row.version},
        ),
    )
    return _collection(row)


async def delete_collection(
    session: AsyncSession, *, name: str, confirm: bool, actor: Actor
) -> None:
    if not confirm:
        raise ConfirmationRequired("deleting a collection destroys its records; confirm=true")
    row = await _row(session, name, lock=True)
    spec = CollectionSpec.model_validate(row.spec)
    referencing = await _referencing(session, name)
    if referencing:
        raise CollectionReferenced(
            f"collection {name!r} is the target of relations in: {', '.join(referencing)}; "
            "drop those fields (or collections) first",
            referencing=referencing,
        )
    conn = await session.connection()
    await conn.run_sync(ddl.drop_table, spec)
    await session.execute(delete(CollectionRow).where(CollectionRow.id == row.id))
    await events.emit(
        session,
        Event(action="collection.deleted", actor=actor, target_type="collection", target_id=name),
    )


async def _referencing(session: AsyncSession, name: str) -> list[str]:
    """The other collections with a relation field pointing at ``name``."""
    found: list[str] = []
    for other, spec in (
        await session.execute(select(CollectionRow.name, CollectionRow.spec))
    ).all():
        fields = spec.get("fields", []) if isinstance(spec, dict) else []
        if other != name and any(
            f.get("type") == "relation" and f.get("collection") == name for f in fields
        ):
            found.append(other)
    return sorted(found)


async def _has_rows(session: AsyncSession, spec: CollectionSpec) -> bool:
    table = ddl.build_table(spec)
    return await session.scalar(select(table.c.id).limit(1)) is not None


async def history(session: AsyncSession, *, name: str) -> list[SchemaChangeRow]:
    await _row(session, name)
    query = (
        select(SchemaChangeRow)
        .where(SchemaChangeRow.collection == name)
        .order_by(SchemaChangeRow.version)
    )
    return list((await session.execute(query)).scalars())
