"""Service clients for the OAuth ``client_credentials`` grant: an id, a secret shown once
and stored as SHA-256 (it carries 256 random bits), and the scopes it may ask for."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac
from garrison.auth.clock import utcnow
from garrison.auth.models import ServiceClient
from garrison.auth.opaque import CLIENT_SECRET_PREFIX, digest, new_secret, same
from garrison.errors import NotFound
from garrison.events import Actor, Event, emit


async def create_client(
    session: AsyncSession, *, name: str, scopes: list[str], actor: Actor
) -> tuple[ServiceClient, str]:
    granted = rbac.check_permissions(scopes, "#/scopes")
    secret = new_secret(CLIENT_SECRET_PREFIX)
    row = ServiceClient(
        client_id="svc_" + secrets.token_hex(8),
        name=name,
        secret_hash=digest(secret),
        scopes=granted,
        status="active",
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.client.created",
            actor=actor,
            target_type="service_client",
            target_id=row.client_id,
            data={"scopes": granted},
        ),
    )
    return row, secret


async def list_clients(session: AsyncSession) -> list[ServiceClient]:
    return list(
        (await session.scalars(select(ServiceClient).order_by(ServiceClient.created_at))).all()
    )


async def get_client(session: AsyncSession, *, client_id: str) -> ServiceClient | None:
    row: ServiceClient | None = await session.get(ServiceClient, client_id)
    return row


async def set_status(session: AsyncSession, *, client_id: str, status: str, actor: Actor) -> None:
    row = await get_client(session, client_id=client_id)
    if row is None:
        raise NotFound("no such client")
    row.status = status
    await session.flush()
    await emit(
        session,
        Event(
            action=f"auth.client.{status}",
            actor=actor,
            target_type="service_client",
            target_id=client_id,
        ),
    )


async def check_secret(
    session: AsyncSession, *, client_id: str, secret: str
) -> ServiceClient | None:
    row = await get_client(session, client_id=client_id)
    expected = row.secret_hash if row is not None else digest("no-such-client")
    ok = same(expected, digest(secret))
    if row is None or not ok or row.status != "active":
        return None
    return row
