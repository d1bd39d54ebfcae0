"""Clients of Garrison's authorization server: registered by an administrator, public
(a single-page or native app: no secret, PKCE only) or confidential (a secret shown once,
stored as SHA-256), with redirect URIs matched exactly and the scopes they may ask for."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac
from garrison.auth.clock import utcnow
from garrison.auth.oauth.models import OAuthClient
from garrison.auth.opaque import CLIENT_SECRET_PREFIX, digest, new_secret, same
from garrison.errors import NotFound, ValidationFailed
from garrison.events import Actor, Event, emit

CLIENT_PREFIX = "goc_"
# Scopes a client may ask for besides permissions (OpenID Connect's).
OIDC_SCOPES = frozenset({"openid", "email", "profile", "offline_access"})


def _invalid(pointer: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"pointer": pointer, "detail": detail}])


def check_redirect_uri(value: str, pointer: str) -> str:
    """An absolute URI without a fragment: https anywhere, http only on loopback (RFC 8252
    §7.3), or a private-use scheme of a native app (``com.example.app:/cb``)."""
    if len(value) > 2048 or any(ord(ch) < 33 or ord(ch) > 126 for ch in value):
        raise _invalid(pointer, "a redirect URI is printable ASCII, at most 2048 characters")
    parts = urlsplit(value)
    if not parts.scheme or parts.fragment or "#" in value:
        raise _invalid(pointer, "a redirect URI is absolute and has no fragment")
    if parts.scheme in ("http", "https"):
        if not parts.hostname:
            raise _invalid(pointer, "a redirect URI names its host")
        loopback = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme == "http" and not loopback and parts.hostname != "testserver":
            raise _invalid(pointer, "http redirect URIs are for loopback addresses only")
    elif parts.scheme in ("javascript", "data", "file", "vbscript"):
        raise _invalid(pointer, f"the scheme {parts.scheme!r} is not allowed")
    return value


def check_scopes(values: list[str], pointer: str) -> list[str]:
    permissions = [value for value in values if value not in OIDC_SCOPES]
    rbac.check_permissions(permissions, pointer)
    return sorted(set(values))


async def create_client(
    session: AsyncSession,
    *,
    name: str,
    client_type: str,
    redirect_uris: list[str],
    scopes: list[str],
    first_party: bool,
    actor: Actor,
) -> tuple[OAuthClient, str | None]:
    uris = [check_redirect_uri(uri, f"#/redirect_uris/{i}") for i, uri in enumerate(redirect_uris)]
    if not uris:
        raise _invalid("#/redirect_uris", "at least one redirect URI is required")
    granted = check_scopes(scopes, "#/scopes")
    secret = new_secret(CLIENT_SECRET_PREFIX) if client_type == "confidential" else None
    row = OAuthClient(
        client_id=CLIENT_PREFIX + secrets.token_hex(12),
        name=name,
        client_type=client_type,
        secret_hash=digest(secret) if secret else None,
        redirect_uris=list(dict.fromkeys(uris)),
        scopes=granted,
        first_party=first_party,
        status="active",
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    await emit(
        session,
        Event(
            action="auth.oauth_client.created",
            actor=actor,
            target_type="oauth_client",
            target_id=row.client_id,
            data={"type": client_type, "scopes": granted, "redirect_uris": row.redirect_uris},
        ),
    )
    return row, secret


async def list_clients(session: AsyncSession) -> list[OAuthClient]:
    rows = await session.scalars(select(OAuthClient).order_by(OAuthClient.created_at))
    return list(rows.all())


async def get_client(session: AsyncSession, *, client_id: str) -> OAuthClient | None:
    if not client_id.startswith(CLIENT_PREFIX) or len(client_id) > 64:
        return None
    row: OAuthClient | None = await session.get(OAuthClient, client_id)
    return row


async def active_client(session: AsyncSession, *, client_id: str) -> OAuthClient | None:
    row = await get_client(session, client_id=client_id)
    return row if row is not None and row.status == "active" else None


async def set_status(session: AsyncSession, *, client_id: str, status: str, actor: Actor) -> None:
    row = await get_client(session, client_id=client_id)
    if row is None:
        raise NotFound("no such OAuth client")
    row.status = status
    await session.flush()
    await emit(
        session,
        Event(
            action=f"auth.oauth_client.{status}",
            actor=actor,
            target_type="oauth_client",
            target_id=client_id,
        ),
    )


def secret_matches(row: OAuthClient, secret: str | None) -> bool:
    """A confidential client's secret check (constant time); public clients have none."""
    expected = row.secret_hash or digest("no-secret")
    ok = same(expected, digest(secret or ""))
    return ok and row.secret_hash is not None and secret is not None
