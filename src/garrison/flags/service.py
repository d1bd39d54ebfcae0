"""Flag definitions: create, replace, patch, delete, list. Never commits: the request
boundary or the CLI owns the transaction. Every change is audited as ``flag.updated``
(``data.operation`` says created, updated or deleted), which webhooks can subscribe to;
the caller tells the running instances once the transaction has committed
(``FlagRuntime.notify``)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.db.types import utcnow
from garrison.errors import Conflict, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit
from garrison.flags.models import Flag
from garrison.flags.schemas import FlagIn, FlagPatch, validate_definition

EVENT = "flag.updated"
_FIELDS = ("description", "type", "variants", "default_variant", "environments")


def definition(flag: Flag) -> dict[str, Any]:
    """The stored definition as the evaluator and the API read it."""
    return {
        "key": flag.key,
        "description": flag.description,
        "type": flag.type,
        "variants": dict(flag.variants),
        "default_variant": flag.default_variant,
        "environments": dict(flag.environments),
        "version": flag.version,
        "created_at": flag.created_at,
        "updated_at": flag.updated_at,
    }


def _body(body: FlagIn) -> dict[str, Any]:
    values = body.model_dump(mode="json", exclude={"key"})
    validate_definition(values)
    return values


async def list_flags(session: AsyncSession) -> list[Flag]:
    return list((await session.scalars(select(Flag).order_by(Flag.key))).all())


async def get_flag(session: AsyncSession, *, key: str) -> Flag:
    flag = await session.get(Flag, key)
    if flag is None:
        raise NotFound(f"no flag with key {key!r}")
    return flag


async def _emit(
    session: AsyncSession,
    *,
    flag: Flag,
    operation: str,
    before: dict[str, Any] | None,
    actor: Actor,
) -> None:
    after = definition(flag) if operation != "deleted" else None
    changes = {
        name: (before.get(name) if before else None, after.get(name) if after else None)
        for name in _FIELDS
        if (before or {}).get(name) != (after or {}).get(name)
    }
    await emit(
        session,
        Event(
            action=EVENT,
            actor=actor,
            target_type="flag",
            target_id=flag.key,
            changes=changes,
            data={"key": flag.key, "operation": operation, "version": flag.version},
        ),
    )


async def create_flag(session: AsyncSession, *, key: str, body: FlagIn, actor: Actor) -> Flag:
    values = _body(body)
    if await session.get(Flag, key) is not None:
        raise Conflict(f"a flag with key {key!r} exists")
    now = utcnow()
    flag = Flag(key=key, version=1, created_at=now, updated_at=now, **values)
    session.add(flag)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"a flag with key {key!r} exists") from None
    await _emit(session, flag=flag, operation="created", before=None, actor=actor)
    return flag


async def put_flag(
    session: AsyncSession, *, key: str, body: FlagIn, actor: Actor
) -> tuple[Flag, bool]:
    """Create or replace the whole definition; returns (flag, created)."""
    flag = await session.get(Flag, key)
    if flag is None:
        return await create_flag(session, key=key, body=body, actor=actor), True
    values = _body(body)
    before = definition(flag)
    if all(before[name] == values[name] for name in _FIELDS):
        return flag, False  # applying the same definition again changes nothing
    for name, value in values.items():
        setattr(flag, name, value)
    flag.version += 1
    flag.updated_at = utcnow()
    await session.flush()
    await _emit(session, flag=flag, operation="updated", before=before, actor=actor)
    return flag, False


async def patch_flag(session: AsyncSession, *, key: str, patch: FlagPatch, actor: Actor) -> Flag:
    flag = await get_flag(session, key=key)
    before = definition(flag)
    given = patch.model_dump(mode="json", exclude_unset=True)
    environments = {name: dict(env) for name, env in before["environments"].items()}
    for name, fields in (given.pop("environments", None) or {}).items():
        fields = {k: v for k, v in fields.items() if v is not None or k.endswith("variant")}
        environments[name] = {**environments.get(name, {}), **fields}
    try:
        merged = FlagIn.model_validate(
            {
                "description": given.get("description", before["description"]),
                "type": before["type"],
                "variants": given.get("variants", before["variants"]),
                "default_variant": given.get("default_variant", before["default_variant"]),
                "environments": environments,
            }
        )
    except PydanticValidationError as exc:
        errors = [
            {"pointer": "#/" + "/".join(str(p) for p in e["loc"]), "detail": e["msg"]}
            for e in exc.errors()
        ]
        raise ValidationFailed("the patched flag is not valid", errors=errors) from None
    replaced, _ = await put_flag(session, key=key, body=merged, actor=actor)
    return replaced


async def delete_flag(session: AsyncSession, *, key: str, actor: Actor) -> None:
    flag = await get_flag(session, key=key)
    before = definition(flag)
    await session.delete(flag)
    await session.flush()
    await _emit(session, flag=flag, operation="deleted", before=before, actor=actor)


async def all_definitions(session: AsyncSession) -> list[dict[str, Any]]:
    return [definition(flag) for flag in await list_flags(session)]
