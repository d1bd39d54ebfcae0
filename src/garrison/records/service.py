"""Writing records: validated against the schema, checked against the access rules, with
optimistic concurrency (``version``) and every change reported through the event seam."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import False_, True_

from garrison import events
from garrison.errors import Conflict, ValidationFailed
from garrison.events import Event
from garrison.records import attachments
from garrison.records.errors import RecordNotFound, RuleDenied, StaleRecord
from garrison.records.ids import uuid7
from garrison.records.kinds import EXTERNAL_TARGETS
from garrison.records.query import Caller, get_record, rule_clause
from garrison.records.registry import Collection, get_collection
from garrison.records.validation import Mode, output, validate


def _now() -> datetime:
    return datetime.now(UTC)


def _integrity_problem(collection: Collection, exc: IntegrityError) -> Exception:
    message = str(exc.orig)
    table = collection.table.name
    for field in collection.spec.fields:
        # SQLite: "UNIQUE constraint failed: c_x.field"; MySQL: "... for key 'uq_c_x_field'"
        if field.unique and (
            f"uq_{table}_{field.name}" in message or f"{table}.{field.name}" in message
        ):
            return Conflict(
                f"another record has this {field.name}",
                errors=[{"pointer": f"#/{field.name}", "detail": "must be unique"}],
            )
    if "foreign key" in message.lower() or "FOREIGN KEY" in message:
        relations = [f.name for f in collection.spec.fields if f.type == "relation"]
        return ValidationFailed(
            "a relation points at a record that does not exist, or a record is still referenced",
            errors=[
                {"pointer": f"#/{name}", "detail": "must reference an existing record"}
                for name in relations
            ],
        )
    return Conflict("the change conflicts with existing data")


def _invalid(errors: list[dict[str, str]]) -> ValidationFailed:
    return ValidationFailed("the record has invalid fields", errors=errors)


async def _passes(
    session: AsyncSession, collection: Collection, action: Any, caller: Caller, record_id: str
) -> bool:
    clause = rule_clause(collection, action, caller)
    if clause is None or isinstance(clause, True_):
        return True  # no rule, or one that holds whatever the record (``@auth.id != null``)
    if isinstance(clause, False_):
        return False
    table = collection.table
    found = await session.scalar(select(table.c.id).where(table.c.id == record_id, clause))
    return found is not None


async def _check_targets(
    session: AsyncSession, collection: Collection, values: dict[str, Any], caller: Caller
) -> None:
    """A relation may only point at a record the caller can view (the target's view rule):
    a hidden record and a missing one get the same 422, so ids cannot be probed, and
    nobody can tie a record to one they cannot see (and so block or cascade its delete)."""
    if caller.admin:
        return
    errors: list[dict[str, str]] = []
    for field in collection.spec.fields:
        target_id = values.get(field.name)
        if field.type != "relation" or target_id is None or field.collection in EXTERNAL_TARGETS:
            continue
        assert field.collection is not None
        target = (
            collection
            if field.collection == collection.name
            else await get_collection(session, name=field.collection)
        )
        try:
            row = await get_record(session, collection=target, record_id=target_id, caller=caller)
        except RuleDenied:
            row = None
        if row is None:
            errors.append(
                {"pointer": f"#/{field.name}", "detail": "must reference a record you can view"}
            )
    if errors:
        raise _invalid(errors)


async def create_record(
    session: AsyncSession, *, collection: Collection, data: Any, caller: Caller
) -> dict[str, Any]:
    rule_clause(collection, "create", caller)  # a closed action fails before any work
    values, errors = validate(collection.spec, data, "create")
    if errors:
        raise _invalid(errors)
    await _check_targets(session, collection, values, caller)
    now = _now()
    row: dict[str, Any] = {
        "id": uuid7(),
        "created_at": now,
        "updated_at": now,
        "owner": caller.id,
        "version": 1,
    }
    row |= values
    try:
        # The values as parameters of the table's one cached INSERT (not baked into a new
        # statement per row).
        await session.execute(insert(collection.table), row)
    except IntegrityError as exc:
        raise _integrity_problem(collection, exc) from None
    if not await _passes(session, collection, "create", caller, row["id"]):
        raise RuleDenied("the collection's create rule does not allow this record")
    await attachments.attach(
        session,
        collection=collection,
        record_id=row["id"],
        before=None,
        after=values,
        caller=caller,
    )
    record = output(row)
    await events.emit(
        session,
        Event(
            action="record.created",
            actor=caller.actor,
            target_type=collection.name,
            target_id=row["id"],
            data={"collection": collection.name, "record": record},
        ),
    )
    return record


async def _visible(
    session: AsyncSession, collection: Collection, record_id: str, caller: Caller
) -> dict[str, Any]:
    row = await get_record(session, collection=collection, record_id=record_id, caller=caller)
    if row is None:
        raise RecordNotFound(f"no record {record_id!r} in {collection.name!r}")
    return row


async def update_record(
    session: AsyncSession,
    *,
    collection: Collection,
    record_id: str,
    data: Any,
    mode: Mode,
    caller: Caller,
    if_match: int | None = None,
) -> dict[str, Any]:
    current = await _visible(session, collection, record_id, caller)
    if not await _passes(session, collection, "update", caller, record_id):
        raise RuleDenied("the collection's update rule does not allow changing this record")
    if if_match is not None and current["version"] != if_match:
        raise StaleRecord("the record changed since you read it; fetch it again")
    values, errors = validate(collection.spec, data, mode)
    if errors:
        raise _invalid(errors)
    await _check_targets(session, collection, values, caller)
    changes = {k: (current.get(k), v) for k, v in values.items() if current.get(k) != v}
    table = collection.table
    new = current | values | {"updated_at": _now(), "version": current["version"] + 1}
    statement = (
        update(table)
        .where(table.c.id == record_id, table.c.version == current["version"])
        .values({k: new[k] for k in (*values, "updated_at", "version")})
    )
    try:
        result = await session.execute(statement)
    except IntegrityError as exc:
        raise _integrity_problem(collection, exc) from None
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleRecord("the record changed while this update ran; fetch it again")
    await attachments.attach(
        session,
        collection=collection,
        record_id=record_id,
        before=current,
        after=values,
        caller=caller,
    )
    record = output(new)
    await events.emit(
        session,
        Event(
            action="record.updated",
            actor=caller.actor,
            target_type=collection.name,
            target_id=record_id,
            changes={k: (output({k: a})[k], output({k: b})[k]) for k, (a, b) in changes.items()},
            data={"collection": collection.name, "record": record},
        ),
    )
    return record


async def delete_record(
    session: AsyncSession,
    *,
    collection: Collection,
    record_id: str,
    caller: Caller,
    if_match: int | None = None,
) -> None:
    current = await _visible(session, collection, record_id, caller)
    if not await _passes(session, collection, "delete", caller, record_id):
        raise RuleDenied("the collection's delete rule does not allow deleting this record")
    if if_match is not None and current["version"] != if_match:
        raise StaleRecord("the record changed since you read it; fetch it again")
    table = collection.table
    await attachments.detach(session, collection=collection, record_id=record_id, caller=caller)
    try:
        result = await session.execute(
            delete(table).where(table.c.id == record_id, table.c.version == current["version"])
        )
    except IntegrityError:
        raise Conflict("other records still reference this record") from None
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StaleRecord("the record changed while this delete ran; fetch it again")
    await events.emit(
        session,
        Event(
            action="record.deleted",
            actor=caller.actor,
            target_type=collection.name,
            target_id=record_id,
            data={"collection": collection.name, "id": record_id},
        ),
    )
