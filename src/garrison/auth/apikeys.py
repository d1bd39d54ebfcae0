"""API keys for service-to-service calls.

A key is ``gar_`` + 256 random bits (the prefix lets secret scanners find leaked ones); it
is shown once and stored as SHA-256. Its scopes must be a subset of the owner's permissions
when created, and are narrowed again by the owner's current permissions on every use, so
removing a role from the owner also takes it from the owner's keys.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac
from garrison.auth.clock import aware, utcnow
from garrison.auth.models import ApiKey
from garrison.auth.opaque import API_KEY_PREFIX, digest, new_secret
from garrison.errors import NotFound, ValidationFailed
from garrison.events import Actor, Event, emit

LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class CreatedKey:
    row: ApiKey
    secret: str


async def create_key(
    session: AsyncSession,
    *,
    user_id: str,
    name: str,
    scopes: list[str],
    held: set[str],
    expires_at: datetime | None,
    actor: Actor,
) -> CreatedKey:
    wanted = rbac.check_permissions(scopes, "#/scopes")
    if not wanted:
        raise ValidationFailed(
            "a key needs scopes", errors=[{"pointer": "#/scopes", "detail": "list at least one"}]
        )
    missing = [scope for scope in wanted if not rbac.grants(held, scope)]
    if missing:
        raise ValidationFailed(
            "a key's scopes must be permissions you hold",
            errors=[{"pointer": "#/scopes", "detail": f"you do not hold {missing[0]!r}"}],
        )
    now = utcnow()
    if expires_at is not None and aware(expires_at) <= now:
        raise ValidationFailed(
            "expiry in the past", errors=[{"pointer": "#/expires_at", "detail": "must be later"}]
        )
    secret = new_secret(API_KEY_PREFIX)
    row = ApiKey(
        id=str(uuid.uuid4()),
        user_id=user_id,
        name=name,
        prefix=secret[:10],
        key_hash=digest(secret),
        scopes=wanted,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.api_key.created",
            actor=actor,
            target_type="api_key",
            target_id=row.id,
            data={"scopes": wanted},
        ),
    )
    return CreatedKey(row=row, secret=secret)


async def list_keys(session: AsyncSession, *, user_id: str) -> list[ApiKey]:
    rows = await session.scalars(
        select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.created_at)
    )
    return list(rows.all())


async def revoke_key(
    session: AsyncSession, *, key_id: str, user_id: str | None, actor: Actor
) -> None:
    """Revoke a key; ``user_id`` limits it to the owner's keys (None: any, for admins)."""
    query = select(ApiKey).where(ApiKey.id == key_id)
    if user_id is not None:
        query = query.where(ApiKey.user_id == user_id)
    row = await session.scalar(query)
    if row is None:
        raise NotFound("no such API key")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await session.flush()
        await emit(
            session,
            Event(
                action="auth.api_key.revoked", actor=actor, target_type="api_key", target_id=row.id
            ),
        )


async def find_active(session: AsyncSession, *, secret: str) -> ApiKey | None:
    row: ApiKey | None = await session.scalar(
        select(ApiKey).where(ApiKey.key_hash == digest(secret))
    )
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and aware(row.expires_at) <= utcnow():
        return None
    return row


async def touch(session: AsyncSession, *, key_id: str) -> None:
    now = utcnow()
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
