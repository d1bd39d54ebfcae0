"""Refresh tokens: opaque, 256 random bits, stored as SHA-256, single use, rotated.

Every login starts a family; every refresh marks the presented token used and issues its
successor in the same family. Marking is one conditional UPDATE (``WHERE used_at IS NULL
AND revoked_at IS NULL AND expires_at > now``) whose row count decides the winner, so N
concurrent refreshes with one token give at most one success on every backend. A token that
was already used coming back means it leaked: the whole family is revoked, successor
included (RFC 9700 §4.14.2). Idle expiry: ``refresh_idle_ttl`` since the token was issued;
absolute expiry: ``refresh_absolute_ttl`` since the family began.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth.clock import aware, utcnow
from garrison.auth.models import RefreshToken
from garrison.auth.opaque import REFRESH_PREFIX, digest, new_secret
from garrison.settings import AuthSettings


@dataclass(frozen=True)
class NewRefresh:
    token: str
    family_id: str


@dataclass(frozen=True)
class Rotated:
    user_id: str
    family_id: str
    successor: NewRefresh
    client_id: str | None = None  # an OAuth client's family (authorization-code grant)
    scope: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Rejected:
    reason: Literal["unknown", "expired", "revoked", "reused"]
    user_id: str | None = None
    family_id: str | None = None


async def start_family(
    session: AsyncSession,
    *,
    user_id: str,
    settings: AuthSettings,
    now: datetime | None = None,
    client_id: str | None = None,
    scope: list[str] | None = None,
) -> NewRefresh:
    """A new family; ``client_id`` and ``scope`` for an OAuth client's (kept by every
    successor, so a refresh never widens what the user granted the client)."""
    now = now or utcnow()
    family_id = str(uuid.uuid4())
    family_expires = now + timedelta(seconds=settings.refresh_absolute_ttl)
    return await _add(
        session, user_id, family_id, family_expires, settings, now, client_id=client_id, scope=scope
    )


async def _add(
    session: AsyncSession,
    user_id: str,
    family_id: str,
    family_expires: datetime,
    settings: AuthSettings,
    now: datetime,
    *,
    client_id: str | None = None,
    scope: list[str] | None = None,
) -> NewRefresh:
    token = new_secret(REFRESH_PREFIX)
    session.add(
        RefreshToken(
            id=str(uuid.uuid4()),
            family_id=family_id,
            user_id=user_id,
            token_hash=digest(token),
            created_at=now,
            expires_at=min(family_expires, now + timedelta(seconds=settings.refresh_idle_ttl)),
            family_expires_at=family_expires,
            client_id=client_id,
            scope=scope,
        )
    )
    await session.flush()
    return NewRefresh(token=token, family_id=family_id)


async def rotate(
    session: AsyncSession, *, token: str, settings: AuthSettings
) -> Rotated | Rejected:
    now = utcnow()
    hashed = digest(token)
    result = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == hashed,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
            RefreshToken.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    row = (
        await session.execute(
            select(
                RefreshToken.user_id,
                RefreshToken.family_id,
                RefreshToken.family_expires_at,
                RefreshToken.used_at,
                RefreshToken.revoked_at,
                RefreshToken.client_id,
                RefreshToken.scope,
            ).where(RefreshToken.token_hash == hashed)
        )
    ).one_or_none()
    if row is None:
        return Rejected("unknown")
    user_id, family_id, family_expires, used_at, revoked_at, client_id, scope = row
    if result.rowcount != 1:
        if revoked_at is not None:
            return Rejected("revoked", user_id, family_id)
        if used_at is not None:
            return Rejected("reused", user_id, family_id)
        return Rejected("expired", user_id, family_id)
    successor = await _add(
        session,
        user_id,
        family_id,
        aware(family_expires),
        settings,
        now,
        client_id=client_id,
        scope=scope,
    )
    return Rotated(
        user_id=user_id,
        family_id=family_id,
        successor=successor,
        client_id=client_id,
        scope=tuple(scope) if scope is not None else None,
    )


async def revoke_family(session: AsyncSession, *, family_id: str) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def revoke_user(session: AsyncSession, *, user_id: str) -> int:
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def family_of(session: AsyncSession, *, token: str) -> tuple[str, str] | None:
    """(user id, family id) of a refresh token, whatever its state."""
    row = (
        await session.execute(
            select(RefreshToken.user_id, RefreshToken.family_id).where(
                RefreshToken.token_hash == digest(token)
            )
        )
    ).one_or_none()
    return (row[0], row[1]) if row else None


@dataclass(frozen=True)
class TokenState:
    user_id: str
    family_id: str
    client_id: str | None
    scope: tuple[str, ...]
    active: bool
    expires_at: datetime
    created_at: datetime


async def state_of(session: AsyncSession, *, token: str) -> TokenState | None:
    """What a refresh token is and whether it can still be used (for RFC 7662/7009)."""
    row = await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == digest(token)))
    if row is None:
        return None
    expires = aware(row.expires_at)
    return TokenState(
        user_id=row.user_id,
        family_id=row.family_id,
        client_id=row.client_id,
        scope=tuple(row.scope or ()),
        active=row.used_at is None and row.revoked_at is None and expires > utcnow(),
        expires_at=expires,
        created_at=aware(row.created_at),
    )
