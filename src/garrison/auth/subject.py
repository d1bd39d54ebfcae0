"""The auth domain's data about one person, for the privacy domain: what an access export
contains (never a secret or a hash), and removing the person (erasure)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac
from garrison.auth.models import ApiKey, OneTimeToken, RefreshToken, User
from garrison.auth.state import user_changed
from garrison.auth.users import get_user


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def profile_of(session: AsyncSession, *, user_id: str) -> dict[str, Any]:
    user = await get_user(session, user_id=user_id)
    roles, permissions = await rbac.permissions_of(session, user_id=user_id)
    return {
        "id": user.id,
        "email": user.email,
        "status": user.status,
        "email_verified_at": _time(user.email_verified_at),
        "created_at": _time(user.created_at),
        "updated_at": _time(user.updated_at),
        "roles": roles,
        "permissions": sorted(permissions),
    }


async def sessions_of(session: AsyncSession, *, user_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(RefreshToken)
        .where(RefreshToken.user_id == user_id)
        .order_by(RefreshToken.created_at)
    )
    return [
        {
            "id": row.id,
            "family_id": row.family_id,
            "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at),
            "used_at": _time(row.used_at),
            "revoked_at": _time(row.revoked_at),
        }
        for row in rows
    ]


async def api_keys_of(session: AsyncSession, *, user_id: str) -> list[dict[str, Any]]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)
    )
    return [
        {
            "id": row.id,
            "name": row.name,
            "prefix": row.prefix,
            "scopes": list(row.scopes),
            "created_at": _time(row.created_at),
            "expires_at": _time(row.expires_at),
            "last_used_at": _time(row.last_used_at),
            "revoked_at": _time(row.revoked_at),
        }
        for row in rows
    ]


def _count(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


async def remove_user(session: AsyncSession, *, user_id: str) -> dict[str, int]:
    """Delete the user and everything that can sign in as them: refresh tokens (sessions),
    API keys, one-time tokens (also invitations to their address) and role grants. Access
    tokens already issued stop working at once: their user no longer exists."""
    user = await get_user(session, user_id=user_id)
    counts = {
        "sessions": _count(
            await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user_id))
        ),
        "api_keys": _count(await session.execute(delete(ApiKey).where(ApiKey.user_id == user_id))),
        "one_time_tokens": _count(
            await session.execute(
                delete(OneTimeToken).where(
                    (OneTimeToken.user_id == user_id) | (OneTimeToken.email == user.email)
                )
            )
        ),
    }
    user_changed(session, user.id)
    await session.delete(user)  # role grants go with it (ON DELETE CASCADE)
    await session.flush()
    return counts


async def prune_sessions(session: AsyncSession, *, before: datetime, limit: int) -> int:
    """Delete up to ``limit`` refresh tokens that expired (or were revoked) before ``before``."""
    ids = (
        await session.scalars(
            select(RefreshToken.id)
            .where(
                (RefreshToken.family_expires_at < before)
                | (RefreshToken.expires_at < before)
                | (RefreshToken.revoked_at < before)
            )
            .limit(limit)
        )
    ).all()
    if not ids:
        return 0
    return _count(await session.execute(delete(RefreshToken).where(RefreshToken.id.in_(ids))))


async def count_prunable_sessions(session: AsyncSession, *, before: datetime) -> int:
    from sqlalchemy import func

    return int(
        await session.scalar(
            select(func.count())
            .select_from(RefreshToken)
            .where(
                (RefreshToken.family_expires_at < before)
                | (RefreshToken.expires_at < before)
                | (RefreshToken.revoked_at < before)
            )
        )
        or 0
    )


async def user_exists(session: AsyncSession, *, user_id: str) -> bool:
    return await session.get(User, user_id) is not None
