"""Turning a request's credential into a ``Principal``.

Accepted: ``Authorization: Bearer <access token>``, ``Authorization: Bearer gar_…`` (an API
key) and ``X-API-Key: gar_…``. Every check that can change after issuance is made against
current state: a user token needs an active user whose token generation still matches and
a ``jti`` that logout did not deny; permissions come from the user's roles now; a service
token needs its client still active; an API key must be unrevoked, unexpired and its owner
active.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from garrison.auth import apikeys, clients, rbac, tokens
from garrison.auth.clock import aware, utcnow
from garrison.auth.errors import InvalidToken
from garrison.auth.models import Role, User, UserRole
from garrison.auth.oauth import clients as oauth_clients
from garrison.auth.opaque import API_KEY_PREFIX
from garrison.auth.principal import Principal
from garrison.auth.runtime import AuthRuntime
from garrison.auth.state import UserState
from garrison.db.fastread import AnySelect
from garrison.db.retry import transact, with_retry


def credential(headers: dict[str, str]) -> tuple[str, str] | None:
    """("jwt" | "api_key", value) from the headers, or None when there is none."""
    api_key = headers.get("x-api-key")
    if api_key:
        return "api_key", api_key.strip()
    value = headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise InvalidToken("use Authorization: Bearer <token>")
    return ("api_key" if token.startswith(API_KEY_PREFIX) else "jwt"), token


def _user_state() -> AnySelect:
    """A user's status, token generation and roles with their permissions: one row per
    role (or one with no role), in one statement."""
    return (
        select(User.status, User.token_generation, Role.name, Role.permissions)
        .select_from(User)
        .outerjoin(UserRole, UserRole.user_id == User.id)
        .outerjoin(Role, Role.name == UserRole.role_name)
        .where(User.id == bindparam("user_id"))
    )


async def _load_user_state(runtime: AuthRuntime, user_id: str) -> UserState | None:
    # On the hot-path reader: one round trip, no ORM session (see db.fastread).
    # Right after a login or a change the user's row may not be on a replica yet.
    async def read() -> list[dict[str, Any]]:
        reader = await runtime.db.reader_for(f"user:{user_id}")  # picked each attempt
        return await reader.all_by_shape("auth.user_state", _user_state, {"user_id": user_id})

    rows = await with_retry(read, deadline=runtime.db.settings.retry_deadline)
    if not rows:
        return None
    permissions: set[str] = set()
    for row in rows:
        permissions.update(row["permissions"] or ())
    return UserState(
        status=rows[0]["status"],
        generation=rows[0]["token_generation"],
        roles=tuple(sorted(row["name"] for row in rows if row["name"] is not None)),
        permissions=frozenset(permissions),
    )


async def user_state(runtime: AuthRuntime, user_id: str) -> UserState | None:
    """The user's current authorisation state: this process's copy when it may answer
    (see ``auth.state``), else the database's."""
    cache = runtime.user_states
    hit, state = cache.get(user_id)
    if hit:
        return state
    epoch = cache.epoch
    state = await _load_user_state(runtime, user_id)
    cache.put(user_id, state, epoch=epoch)
    return state


async def _user_principal(runtime: AuthRuntime, claims: tokens.AccessClaims) -> Principal:
    state = await user_state(runtime, claims.sub)
    if state is None or state.status != "active":
        raise InvalidToken("the access token's user is not active")
    if claims.generation != state.generation:
        raise InvalidToken("the access token has been revoked")
    held = state.permissions
    if claims.is_delegated:  # an OAuth client's token: what the user holds and granted it
        held = rbac.narrow(held, claims.scope)
    return Principal(
        kind="user",
        id=claims.sub,
        user_id=claims.sub,
        permissions=held,
        roles=state.roles,
        token_id=claims.jti,
        token_expires=claims.exp,
    )


async def _service_principal(session: AsyncSession, claims: tokens.AccessClaims) -> Principal:
    client = await clients.get_client(session, client_id=claims.client_id)
    if client is None or client.status != "active" or claims.sub != client.client_id:
        raise InvalidToken("the access token's client is not active")
    return Principal(
        kind="service",
        id=client.client_id,
        user_id=None,
        permissions=rbac.narrow(client.scopes, claims.scope),
        token_id=claims.jti,
        token_expires=claims.exp,
    )


async def _jwt(
    runtime: AuthRuntime,
    token: str,
    verified: tokens.AccessClaims | None,
    in_store: bool | None,
) -> Principal:
    claims = verified or await tokens.verify(token, runtime.keyring, runtime.settings)
    # The deny list answers without the store when it is down (see auth.denylist).
    if await runtime.deny_list.is_denied(claims.jti, in_store=in_store if verified else None):
        raise InvalidToken("the access token has been revoked")
    if claims.is_delegated:  # an OAuth client's token stops when the client is disabled
        async with runtime.db.read_session() as session:
            if await oauth_clients.active_client(session, client_id=claims.client_id) is None:
                raise InvalidToken("the access token's client is disabled")
    if not claims.is_service:
        return await _user_principal(runtime, claims)
    async with runtime.db.read_session() as session:
        return await _service_principal(session, claims)


async def _api_key(runtime: AuthRuntime, secret: str) -> Principal:
    if not secret.startswith(API_KEY_PREFIX) or len(secret) > 128:
        raise InvalidToken("the API key is invalid")
    async with runtime.db.read_session() as session:
        row = await apikeys.find_active(session, secret=secret)
        if row is None:
            raise InvalidToken("the API key is invalid, expired or revoked")
        owner = await session.get(User, row.user_id)
        if owner is None or owner.status != "active":
            raise InvalidToken("the API key's owner is not active")
        _roles, held = await rbac.permissions_of(session, user_id=row.user_id)
        last = row.last_used_at
        stale = last is None or aware(last) < utcnow() - apikeys.LAST_USED_RESOLUTION
    if stale:
        await transact(runtime.db, lambda s: apikeys.touch(s, key_id=row.id))
    return Principal(
        kind="api_key",
        id=row.id,
        user_id=row.user_id,
        permissions=rbac.narrow(held, row.scopes),
    )


async def authenticate(
    runtime: AuthRuntime,
    headers: dict[str, str],
    *,
    verified: tuple[str, tokens.AccessClaims] | None = None,
    denied_in_store: bool | None = None,
) -> Principal | None:
    """The principal behind ``headers`` (from ``gateway.credentials``). ``verified`` is the
    (token, claims) the rate limiter's identification already checked for this request:
    the signature is not verified twice; every current-state check still runs.
    ``denied_in_store`` is the store's deny-list answer for that token, when the rate
    limiter's round trip brought one."""
    found = credential(headers)
    if found is None:
        return None
    kind, value = found
    if kind == "api_key":
        return await _api_key(runtime, value)
    claims = verified[1] if verified is not None and verified[0] == value else None
    return await _jwt(runtime, value, claims, denied_in_store)
