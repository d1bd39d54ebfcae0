"""Roles and permissions.

A permission is a string ``resource:action`` (``users:write``). A held permission may be a
wildcard: ``*`` (everything) or ``resource:*``. Roles are rows with a list of permissions;
``admin``, ``user`` and ``service`` are built in (seeded by the migration, not deletable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.clock import utcnow
from garrison.auth.models import Role, User, UserRole
from garrison.auth.state import roles_changed, user_changed
from garrison.errors import Conflict, Forbidden, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit

PERMISSION = re.compile(r"^(\*|[a-z][a-z0-9_.-]{0,62}:(\*|[a-z][a-z0-9_.-]{0,62}))$")
ROLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,63}$")
BUILTIN = frozenset({"admin", "user", "service"})


def grants(held: Iterable[str], wanted: str) -> bool:
    resource = wanted.split(":", 1)[0]
    return any(permission in ("*", wanted, f"{resource}:*") for permission in held)


def subset(held: Iterable[str], wanted: Iterable[str]) -> bool:
    held = list(held)
    return all(grants(held, item) for item in wanted)


def narrow(held: Iterable[str], wanted: Iterable[str]) -> frozenset[str]:
    """The wanted permissions that ``held`` grants."""
    held = list(held)
    return frozenset(item for item in wanted if grants(held, item))


def check_permissions(values: Iterable[str], pointer: str) -> list[str]:
    result = sorted(set(values))
    bad = [value for value in result if not PERMISSION.match(value)]
    if bad:
        raise ValidationFailed(
            "permissions look like resource:action",
            errors=[{"pointer": pointer, "detail": f"not a permission: {bad[0]!r}"}],
        )
    return result


async def permissions_of(session: AsyncSession, *, user_id: str) -> tuple[list[str], set[str]]:
    """(role names, permissions) of a user."""
    rows = (
        await session.execute(
            select(Role.name, Role.permissions)
            .join(UserRole, UserRole.role_name == Role.name)
            .where(UserRole.user_id == user_id)
        )
    ).all()
    permissions: set[str] = set()
    for _name, perms in rows:
        permissions.update(perms)
    return sorted(name for name, _ in rows), permissions


async def list_roles(session: AsyncSession) -> list[Role]:
    return list((await session.scalars(select(Role).order_by(Role.name))).all())


async def get_role(session: AsyncSession, *, name: str) -> Role:
    role = await session.get(Role, name)
    if role is None:
        raise NotFound(f"no role named {name!r}")
    return role


async def create_role(
    session: AsyncSession, *, name: str, description: str, permissions: list[str], actor: Actor
) -> Role:
    if not ROLE_NAME.match(name):
        raise ValidationFailed(
            "invalid role name",
            errors=[{"pointer": "#/name", "detail": "2-64 of a-z 0-9 _ -, starting with a letter"}],
        )
    perms = check_permissions(permissions, "#/permissions")
    if await session.get(Role, name) is not None:
        raise Conflict(f"the role {name!r} exists")
    role = Role(
        name=name, description=description, permissions=perms, builtin=False, created_at=utcnow()
    )
    session.add(role)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict(f"the role {name!r} exists") from None
    await emit(
        session,
        Event(
            action="auth.role.created",
            actor=actor,
            target_type="role",
            target_id=name,
            data={"permissions": perms},
        ),
    )
    return role


async def update_role(
    session: AsyncSession,
    *,
    name: str,
    description: str | None,
    permissions: list[str] | None,
    actor: Actor,
) -> Role:
    role = await get_role(session, name=name)
    if role.builtin:
        raise Forbidden("built-in roles are read-only; create a role of your own instead")
    before = list(role.permissions)
    if permissions is not None:
        role.permissions = check_permissions(permissions, "#/permissions")
        roles_changed(session)
    if description is not None:
        role.description = description
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.role.updated",
            actor=actor,
            target_type="role",
            target_id=name,
            changes={"permissions": (before, list(role.permissions))},
        ),
    )
    return role


async def delete_role(session: AsyncSession, *, name: str, actor: Actor) -> None:
    role = await get_role(session, name=name)
    if role.builtin:
        raise Forbidden("built-in roles cannot be deleted")
    await session.execute(delete(UserRole).where(UserRole.role_name == name))
    roles_changed(session)
    await session.delete(role)
    await emit(
        session, Event(action="auth.role.deleted", actor=actor, target_type="role", target_id=name)
    )


async def ensure_an_admin_remains(session: AsyncSession) -> None:
    """Conflict unless an active user still holds every permission (``*``): the change
    being made (a role taken away, a user disabled) would lock everyone out of the admin
    API. Run after the change, inside its transaction, so the refusal rolls it back."""
    query = (
        select(Role.permissions)
        .select_from(UserRole)
        .join(Role, Role.name == UserRole.role_name)
        .join(User, User.id == UserRole.user_id)
        .where(User.status == "active")
    )
    held = (await session.execute(query)).scalars()
    if not any("*" in (permissions or ()) for permissions in held):
        raise LastAdmin("this change would leave no active administrator")


class LastAdmin(Conflict):
    """The change would leave no active administrator."""

    slug, title = "last-admin", "Last Administrator"


async def set_user_roles(
    session: AsyncSession, *, user_id: str, roles: list[str], actor: Actor
) -> list[str]:
    wanted = sorted(set(roles))
    for name in wanted:
        if await session.get(Role, name) is None:
            raise ValidationFailed(
                "unknown role", errors=[{"pointer": "#/roles", "detail": f"no role {name!r}"}]
            )
    before, _ = await permissions_of(session, user_id=user_id)
    await session.execute(delete(UserRole).where(UserRole.user_id == user_id))
    user_changed(session, user_id)
    for name in wanted:
        session.add(UserRole(user_id=user_id, role_name=name))
    await session.flush()
    await ensure_an_admin_remains(session)
    await emit(
        session,
        Event(
            action="auth.user.roles_changed",
            actor=actor,
            target_type="user",
            target_id=user_id,
            changes={"roles": (before, wanted)},
        ),
    )
    return wanted
