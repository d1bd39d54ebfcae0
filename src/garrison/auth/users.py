"""Users: creation, lookup, status, password changes and session revocation.

Every function takes the caller's session and never commits. Passwords arrive already
hashed (the caller hashes in a thread before opening its transaction, so a write lock is
never held while argon2 runs).
"""

from __future__ import annotations

import uuid

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac, refresh
from garrison.auth.clock import utcnow
from garrison.auth.models import Role, User, UserRole
from garrison.auth.state import user_changed
from garrison.errors import Conflict, NotFound, ValidationFailed
from garrison.events import Actor, Event, emit

MAX_EMAIL = 320


def normalise_email(value: str, *, pointer: str = "#/email") -> str:
    """Syntax-checked, Unicode-normalised, lower-cased; the unique key of a user."""
    if not isinstance(value, str) or len(value) > MAX_EMAIL:
        raise ValidationFailed(
            "invalid e-mail address", errors=[{"pointer": pointer, "detail": "too long"}]
        )
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValidationFailed(
            "invalid e-mail address", errors=[{"pointer": pointer, "detail": str(exc)}]
        ) from None
    return result.normalized.lower()


async def get_user(session: AsyncSession, *, user_id: str) -> User:
    user = await session.get(User, user_id)
    if user is None:
        raise NotFound("no such user")
    return user


async def find_by_email(session: AsyncSession, *, email: str) -> User | None:
    user: User | None = await session.scalar(select(User).where(User.email == email))
    return user


async def create_user(
    session: AsyncSession,
    *,
    email: str,
    password_hash: str,
    roles: list[str],
    actor: Actor,
    verified: bool = False,
) -> User:
    now = utcnow()
    if await find_by_email(session, email=email) is not None:
        raise Conflict("a user with this e-mail address exists", pointer="#/email")
    user = User(
        id=str(uuid.uuid4()),
        email=email,
        password_hash=password_hash,
        status="active",
        email_verified_at=now if verified else None,
        token_generation=0,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise Conflict("a user with this e-mail address exists", pointer="#/email") from None
    for name in sorted(set(roles)):
        if await session.get(Role, name) is None:
            raise ValidationFailed(
                "unknown role", errors=[{"pointer": "#/roles", "detail": f"no role {name!r}"}]
            )
        session.add(UserRole(user_id=user.id, role_name=name))
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.user.created",
            actor=actor,
            target_type="user",
            target_id=user.id,
            data={"roles": sorted(set(roles))},
        ),
    )
    return user


async def list_users(
    session: AsyncSession, *, limit: int, offset: int, status: str | None = None
) -> tuple[list[User], int]:
    query = select(User)
    count = select(func.count()).select_from(User)
    if status is not None:
        query = query.where(User.status == status)
        count = count.where(User.status == status)
    rows = await session.scalars(
        query.order_by(User.created_at, User.id).limit(limit).offset(offset)
    )
    total = await session.scalar(count)
    return list(rows.all()), int(total or 0)


async def revoke_sessions(
    session: AsyncSession, *, user_id: str, actor: Actor, reason: str = "revoked"
) -> int:
    """Revoke every refresh family and invalidate every access token already issued."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(token_generation=User.token_generation + 1, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    user_changed(session, user_id)
    revoked = await refresh.revoke_user(session, user_id=user_id)
    await emit(
        session,
        Event(
            action="auth.sessions.revoked",
            actor=actor,
            target_type="user",
            target_id=user_id,
            data={"reason": reason, "refresh_tokens": revoked},
        ),
    )
    return revoked


async def set_status(session: AsyncSession, *, user_id: str, status: str, actor: Actor) -> User:
    user = await get_user(session, user_id=user_id)
    before = user.status
    if before != status:
        user.status = status
        user.updated_at = utcnow()
        user_changed(session, user_id)
        await session.flush()
        if status != "active":
            await rbac.ensure_an_admin_remains(session)
        await emit(
            session,
            Event(
                action=f"auth.user.{'disabled' if status == 'disabled' else 'enabled'}",
                actor=actor,
                target_type="user",
                target_id=user_id,
                changes={"status": (before, status)},
            ),
        )
        if status == "disabled":
            await revoke_sessions(session, user_id=user_id, actor=actor, reason="disabled")
    await session.refresh(user)
    return user


async def set_password(
    session: AsyncSession, *, user_id: str, password_hash: str, actor: Actor, reason: str
) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=password_hash, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    await emit(
        session,
        Event(
            action="auth.password.changed",
            actor=actor,
            target_type="user",
            target_id=user_id,
            data={"via": reason},
        ),
    )
    await revoke_sessions(session, user_id=user_id, actor=actor, reason="password changed")


async def rehash(session: AsyncSession, *, user_id: str, password_hash: str) -> None:
    """Replace a hash made with older parameters (no session revocation)."""
    await session.execute(
        update(User)
        .where(User.id == user_id)
        .values(password_hash=password_hash)
        .execution_options(synchronize_session=False)
    )


async def mark_verified(session: AsyncSession, *, user_id: str) -> None:
    await session.execute(
        update(User)
        .where(User.id == user_id, User.email_verified_at.is_(None))
        .values(email_verified_at=utcnow(), updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )


async def emails_with_role(session: AsyncSession, *, role: str) -> list[str]:
    """The addresses of the active users holding ``role`` (for operator alerts)."""
    rows = await session.scalars(
        select(User.email)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role_name == role, User.status == "active")
        .order_by(User.email)
    )
    return list(rows.all())
