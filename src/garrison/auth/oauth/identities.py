"""A user's identities at external providers: find, link, list, unlink. An account keeps
a way in: the last identity of a user without a usable password cannot be unlinked."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import users
from garrison.auth.clock import utcnow
from garrison.auth.errors import IdentityConflict, LastSignInMethod
from garrison.auth.oauth.models import Identity
from garrison.errors import NotFound
from garrison.events import Actor, Event, emit

# The password hash of an account made through a provider: no password verifies against it.
NO_PASSWORD = "!no-password"  # noqa: S105


def has_password(password_hash: str) -> bool:
    return password_hash.startswith("$argon2")


async def find(session: AsyncSession, *, provider: str, subject: str) -> Identity | None:
    row: Identity | None = await session.scalar(
        select(Identity).where(Identity.provider == provider, Identity.subject == subject)
    )
    return row


async def list_for_user(session: AsyncSession, *, user_id: str) -> list[Identity]:
    rows = await session.scalars(
        select(Identity).where(Identity.user_id == user_id).order_by(Identity.created_at)
    )
    return list(rows.all())


async def link(
    session: AsyncSession,
    *,
    user_id: str,
    provider: str,
    subject: str,
    email: str | None,
    actor: Actor,
    via: str,
) -> Identity:
    existing = await find(session, provider=provider, subject=subject)
    if existing is not None:
        if existing.user_id != user_id:
            raise IdentityConflict("this provider account is linked to another user")
        return existing
    now = utcnow()
    row = Identity(
        id=str(uuid.uuid4()),
        provider=provider,
        subject=subject[:255],
        user_id=user_id,
        email=email,
        created_at=now,
        last_used_at=now,
    )
    session.add(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.identity.linked",
            actor=actor,
            target_type="user",
            target_id=user_id,
            data={"provider": provider, "identity_id": row.id, "via": via},
        ),
    )
    return row


async def unlink(session: AsyncSession, *, user_id: str, identity_id: str, actor: Actor) -> None:
    row = await session.get(Identity, identity_id[:36])
    if row is None or row.user_id != user_id:
        raise NotFound("no such identity")
    user = await users.get_user(session, user_id=user_id)
    others = await session.scalar(
        select(func.count())
        .select_from(Identity)
        .where(Identity.user_id == user_id, Identity.id != row.id)
    )
    if not others and not has_password(user.password_hash):
        raise LastSignInMethod(
            "this is the account's only way to sign in; set a password or link another first"
        )
    await session.delete(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.identity.unlinked",
            actor=actor,
            target_type="user",
            target_id=user_id,
            data={"provider": row.provider, "identity_id": row.id},
        ),
    )
