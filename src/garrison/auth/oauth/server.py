"""Garrison as an OAuth 2.1 authorization server: authorization codes (single use, at most
``auth.code_ttl`` seconds, bound to client, redirect URI and PKCE S256 challenge), the
``authorization_code`` grant, RFC 7009 revocation and RFC 7662 introspection.

``authorization_code_grant`` and ``revoke`` are workflows that own their transactions: a
second use of a code must revoke what the first issued although the request fails.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import rbac, refresh, service, tokens, users
from garrison.auth.authenticate import authenticate
from garrison.auth.clock import aware, utcnow
from garrison.auth.errors import InvalidToken, OAuthError
from garrison.auth.oauth import clients, openid
from garrison.auth.oauth.models import AuthorizationCode, OAuthClient
from garrison.auth.opaque import digest
from garrison.auth.runtime import AuthRuntime
from garrison.context import current_context
from garrison.db.retry import transact
from garrison.events import Actor, Event, emit, emit_standalone

CODE_PREFIX = "gac_"
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url of a SHA-256, unpadded


def valid_challenge(value: str) -> bool:
    return bool(_CHALLENGE.match(value))


def s256(verifier: str) -> str:
    hashed = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(hashed).rstrip(b"=").decode("ascii")


async def create_code(
    session: AsyncSession,
    *,
    runtime: AuthRuntime,
    client: OAuthClient,
    user_id: str,
    redirect_uri: str,
    scope: list[str],
    code_challenge: str,
    nonce: str | None,
) -> str:
    now = utcnow()
    code = CODE_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=digest(code),
            client_id=client.client_id,
            user_id=user_id,
            redirect_uri=redirect_uri,
            scope=scope,
            code_challenge=code_challenge,
            nonce=nonce,
            created_at=now,
            expires_at=now + timedelta(seconds=runtime.settings.auth.code_ttl),
        )
    )
    await emit(
        session,
        Event(
            action="auth.oauth.code_issued",
            actor=Actor("user", user_id),
            target_type="oauth_client",
            target_id=client.client_id,
            data={"scope": scope},
        ),
    )
    return code


def _invalid_client() -> OAuthError:
    return OAuthError(
        "invalid_client",
        "client authentication failed",
        status=401,
        headers={"WWW-Authenticate": 'Basic realm="garrison"'},
    )


async def authenticate_client(
    runtime: AuthRuntime, *, client_id: str, secret: str | None
) -> OAuthClient:
    """The active client named ``client_id``: a confidential one must present its secret,
    a public one must not present any. Presented secrets are subject to the client lockout
    (a public client has no secret to guess: its codes are bound to a PKCE verifier)."""
    ip = current_context().ip
    if secret is not None:
        await runtime.lockout.check("client", client_id, ip)
    async with runtime.db.read_session() as session:
        client = await clients.active_client(session, client_id=client_id)
    ok = client is not None and (
        clients.secret_matches(client, secret)
        if client.client_type == "confidential"
        else secret is None
    )
    if client is None or not ok:
        if secret is not None:
            await service.count_failure(
                runtime, "client", client_id, ip, target=("oauth_client", None)
            )
        await emit_standalone(
            runtime.db,
            Event(
                action="auth.client.auth_failed",
                actor=Actor.anonymous(),
                target_type="oauth_client",
                target_id=client_id[:64],
                outcome="denied",
            ),
        )
        raise _invalid_client()
    if secret is not None:
        await runtime.lockout.succeeded("client", client_id)
    return client


@dataclass(frozen=True)
class _Reused:
    user_id: str


@dataclass(frozen=True)
class _Refused:
    reason: str


async def authorization_code_grant(
    runtime: AuthRuntime,
    *,
    client: OAuthClient,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
) -> service.TokenPair:
    if not code_verifier:
        raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
    if not code.startswith(CODE_PREFIX) or len(code) > 128:
        raise OAuthError("invalid_grant", "the authorization code is invalid")
    hashed = digest(code)
    denied: list[tuple[str, datetime]] = []

    async def work(
        session: AsyncSession,
    ) -> _Reused | _Refused | tuple[service.TokenPair, str]:
        now = utcnow()
        result = await session.execute(
            update(AuthorizationCode)
            .where(
                AuthorizationCode.code_hash == hashed,
                AuthorizationCode.used_at.is_(None),
                AuthorizationCode.expires_at > now,
            )
            .values(used_at=now)
            .execution_options(synchronize_session=False)
        )
        assert isinstance(result, CursorResult)
        row = await session.get(AuthorizationCode, hashed)
        if row is None:
            return _Refused("unknown")
        if result.rowcount != 1:
            if row.used_at is None:
                return _Refused("expired")
            # A second use: the code leaked. What the first use issued is revoked (RFC 6749
            # §4.1.2, RFC 9700 §4.2.4), in this transaction, although the request fails.
            if row.family_id is not None:
                await refresh.revoke_family(session, family_id=row.family_id)
            if row.access_jti is not None and row.access_expires_at is not None:
                until = aware(row.access_expires_at)
                await runtime.deny_list.deny(session, jti=row.access_jti, expires_at=until)
                denied.append((row.access_jti, until))
            await emit(
                session,
                Event(
                    action="auth.oauth.code_reused",
                    actor=Actor.anonymous(),
                    target_type="user",
                    target_id=row.user_id,
                    outcome="denied",
                    data={"client_id": row.client_id, "family_id": row.family_id},
                ),
            )
            return _Reused(row.user_id)
        # The code is spent from here on, whatever else is wrong with the request.
        if row.client_id != client.client_id:
            return _Refused("client")
        if redirect_uri is not None and redirect_uri != row.redirect_uri:
            return _Refused("redirect_uri")
        if not _VERIFIER.match(code_verifier) or not secrets.compare_digest(
            s256(code_verifier), row.code_challenge
        ):
            return _Refused("pkce")
        user = await users.get_user(session, user_id=row.user_id)
        if user.status != "active":
            return _Refused("disabled")
        _roles, permissions = await rbac.permissions_of(session, user_id=user.id)
        granted = service.delegated_scope(permissions, list(row.scope))
        family = await refresh.start_family(
            session,
            user_id=user.id,
            settings=runtime.settings.auth,
            client_id=client.client_id,
            scope=list(row.scope),
        )
        issued = await tokens.issue(
            runtime.keyring,
            runtime.settings,
            subject=user.id,
            client_id=client.client_id,
            scope=granted,
            generation=user.token_generation,
            now=int(now.timestamp()),
        )
        id_token = None
        if "openid" in row.scope:
            id_token = await openid.id_token(
                runtime,
                user=user,
                client_id=client.client_id,
                scope=list(row.scope),
                nonce=row.nonce,
                access_token=issued.token,
                now=int(now.timestamp()),
            )
        row.family_id = family.family_id
        row.access_jti = issued.jti
        row.access_expires_at = now + timedelta(
            seconds=issued.expires_in + runtime.settings.auth.leeway
        )
        await emit(
            session,
            Event(
                action="auth.oauth.token_issued",
                actor=Actor("user", user.id),
                target_type="oauth_client",
                target_id=client.client_id,
                data={"family_id": family.family_id, "scope": granted},
            ),
        )
        pair = service.TokenPair(
            issued.token, issued.expires_in, family.token, " ".join(granted), id_token
        )
        return pair, user.id

    result = await transact(runtime.db, work)
    for jti, until in denied:
        await runtime.deny_list.publish(jti=jti, expires_at=until)
    if isinstance(result, _Reused | _Refused):
        if isinstance(result, _Refused):
            await emit_standalone(
                runtime.db,
                Event(
                    action="auth.oauth.code_refused",
                    actor=Actor.anonymous(),
                    target_type="oauth_client",
                    target_id=client.client_id,
                    outcome="denied",
                    data={"reason": result.reason},
                ),
            )
        raise OAuthError("invalid_grant", "the authorization code is invalid, expired or used")
    pair, user_id = result
    runtime.db.note_write(f"user:{user_id}")
    return pair


async def revoke(runtime: AuthRuntime, *, client: OAuthClient, token: str) -> None:
    """RFC 7009: end ``token`` if it was issued to ``client``; silent otherwise (the answer
    is 200 either way, so it reveals nothing about the token)."""
    if len(token) > 4096:
        return
    if token.startswith("grt_"):
        async with runtime.db.read_session() as session:
            state = await refresh.state_of(session, token=token)
        if state is None or state.client_id != client.client_id:
            return
        family_id = state.family_id

        async def end_family(session: AsyncSession) -> None:
            await refresh.revoke_family(session, family_id=family_id)
            await emit(
                session,
                Event(
                    action="auth.oauth.token_revoked",
                    actor=Actor("service", client.client_id),
                    target_type="user",
                    target_id=state.user_id,
                    data={"family_id": family_id, "kind": "refresh_token"},
                ),
            )

        await transact(runtime.db, end_family)
        return
    try:
        claims = await tokens.verify(token, runtime.keyring, runtime.settings)
    except InvalidToken:
        return
    if claims.client_id != client.client_id:
        return
    until = datetime.fromtimestamp(claims.exp + runtime.settings.auth.leeway, UTC)

    async def deny(session: AsyncSession) -> None:
        await runtime.deny_list.deny(session, jti=claims.jti, expires_at=until)
        await emit(
            session,
            Event(
                action="auth.oauth.token_revoked",
                actor=Actor("service", client.client_id),
                target_type="user",
                target_id=claims.sub,
                data={"jti": claims.jti, "kind": "access_token"},
            ),
        )

    await transact(runtime.db, deny)
    await runtime.deny_list.publish(jti=claims.jti, expires_at=until)


INACTIVE: dict[str, Any] = {"active": False}


async def introspect(runtime: AuthRuntime, *, token: str) -> dict[str, Any]:
    """RFC 7662: whether ``token`` is active now (every current-state check of an API
    request applies: logout, revocation, a disabled user, a changed password)."""
    if len(token) > 4096 or not token:
        return INACTIVE
    settings = runtime.settings
    if token.startswith("grt_"):
        async with runtime.db.read_session() as session:
            state = await refresh.state_of(session, token=token)
        if state is None or not state.active:
            return INACTIVE
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": state.client_id or tokens.FIRST_PARTY_CLIENT,
            "sub": state.user_id,
            "scope": " ".join(state.scope),
            "exp": int(state.expires_at.timestamp()),
            "iat": int(state.created_at.timestamp()),
            "iss": settings.issuer,
        }
    try:
        claims = await tokens.verify(token, runtime.keyring, settings)
        principal = await authenticate(runtime, {"authorization": f"Bearer {token}"})
    except InvalidToken:
        return INACTIVE
    if principal is None:
        return INACTIVE
    return {
        "active": True,
        "token_type": "Bearer",
        "client_id": claims.client_id,
        "sub": claims.sub,
        "scope": " ".join(sorted(claims.scope)),
        "exp": claims.exp,
        "iat": claims.iat,
        "jti": claims.jti,
        "iss": settings.issuer,
        "aud": settings.auth.audience,
    }
